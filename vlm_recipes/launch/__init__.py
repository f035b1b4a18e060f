"""The top layer: what happens between a recipe script's command line and its flow.

Every recipe script (recipes/*.py) parses its YAML plus overrides through `parse` here, which
1. registers the offline model sources (`import vlm_recipes.tiny`: `tiny:<name>` resolves to a cached checkpoint);
2. refuses, before the dataclasses are built, the TRL / Trainer fields the training method does not honour (the
   method record's `refuses`, vlm_recipes.training.methods);
3. parses the dataclasses (vlm_recipes.settings.parse: allowed values, the recipe check, named unknown keys);
4. validates every name that needs a registry, in one step (`validate`): metrics, benchmarks and their data source,
   reward functions, box conventions, and that the box convention is the model family's own (`check_box_format`);
   GRPO's `use_vllm` against the model family (training.vllm_prompts).
Then, before the run flow loads or writes anything, `check_environment` refuses what this machine cannot run
(`use_vllm` without a CUDA GPU or the vllm package): a config stays valid, and parses, on a machine without one.
The settings types import nothing above them, so these checks live here, above every registry.

The training recipes share one flow (vlm_recipes.training.run); `training_recipe` gives a script its `main`, and
`load_config` / `train` are the same two steps for notebooks and tests.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

from .. import tiny  # noqa: F401  (registers the tiny: model source)
from ..evaluation.benchmarks.tasks import check_benchmark_names, check_data_source
from ..evaluation.metrics import check_metric_names
from ..models.families import check_box_format
from ..models.sources import resolve
from ..paths import REPO_ROOT
from ..processes import ends_process_group
from ..settings import (
    BenchmarkArguments,
    DataArguments,
    EvaluateArguments,
    GRPOConfig,
    RewardFields,
    VLMModelConfig,
    VLMTrainingFields,
    settings_of,
)
from ..settings import parse as parse_settings
from ..training.methods import METHODS, Method, get_method
from ..training.rewards import get_reward_funcs
from ..training.run import run
from ..training.vllm_prompts import check_vllm_environment, check_vllm_settings, family_of_name

__all__ = [
    "check_box_format",
    "check_environment",
    "load_config",
    "parse",
    "recipe_script_module",
    "resolve",
    "run_recipe",
    "train",
    "training_recipe",
    "validate",
]


def validate(*parsed) -> None:
    """Check every registry-backed name of parsed settings objects (any mix of the recipes' dataclasses), before
    any model is loaded: an unknown metric, benchmark, benchmark data source, reward function or box convention is
    refused, naming the known ones (box conventions: by the data settings), and so is a box convention that is not the
    model family's own (`check_box_format`)."""
    data = next((a for a in parsed if isinstance(a, DataArguments)), None)
    model = next((a for a in parsed if isinstance(a, VLMModelConfig)), None)
    if data is not None and model is not None:
        check_box_format(data, model)
    for args in parsed:
        if isinstance(args, DataArguments):
            check_metric_names(args.eval_metrics)
        if isinstance(args, VLMTrainingFields):
            check_benchmark_names(args.benchmarks)
            check_data_source(args.benchmark_data, "benchmark_data")
        if isinstance(args, RewardFields):  # GRPO, RLOO
            get_reward_funcs(args.reward_funcs)  # unknown names first, then their weights
            args.check_reward_weights()
        if isinstance(args, EvaluateArguments):
            check_metric_names(args.metrics)
        if isinstance(args, BenchmarkArguments):
            check_benchmark_names(args.benchmarks)
            check_data_source(args.dataset_source, "dataset_source")
    _check_vllm(parsed)


def _check_vllm(parsed) -> None:
    """GRPO's `use_vllm` against the model family and its image settings, when the family can be told from the model
    name without loading anything (the trainer checks again with the processor)."""
    training = next((a for a in parsed if isinstance(a, GRPOConfig)), None)
    model = next((a for a in parsed if hasattr(a, "model_name_or_path")), None)
    if training is None or model is None or not training.use_vllm:
        return
    family = family_of_name(model.model_name_or_path)
    if family:  # None: not told from the name
        check_vllm_settings(family, training, model)


def check_environment(method: Method, training_args) -> None:
    """Refuse, before anything is loaded or written, settings the method cannot run (its `check_args`, so that
    RLOO's own refusal of `use_vllm` speaks first), then what this machine cannot run: `use_vllm` without a CUDA GPU
    or without the vllm package (vlm_recipes.training.vllm_prompts.check_vllm_environment)."""
    if method.check_args is not None:
        method.check_args(training_args)
    check_vllm_environment(training_args)


def _refusals(dataclass_types: tuple, recipe: str | None):
    """The pre-parse hook: reward names, then the training method's refused fields, for each of its
    training-arguments classes."""

    def check(settings: dict, where: str) -> None:
        if "reward_funcs" in settings:  # a misspelt reward is named before TRL's own config checks speak
            names = settings["reward_funcs"]
            get_reward_funcs(names if isinstance(names, list) else [names])
        name = recipe or settings.get("recipe")
        method = METHODS.get(name) if isinstance(name, str) else None
        if method is None:
            return
        method.check_fixed(settings, where)
        for cls in dataclass_types:
            if isinstance(cls, type) and issubclass(cls, VLMTrainingFields):
                method.refuse(cls, settings, where)

    return check


def parse(
    dataclass_types: tuple, default_config: str | Path, argv: list[str] | None = None, recipe: str | None = None
):
    """A recipe's settings from `--config <yaml>` (default: `default_config`) plus overrides: refused fields named
    first, then the dataclasses' own checks, then `validate`."""
    parsed = parse_settings(
        dataclass_types, default_config, argv, recipe=recipe, check_settings=_refusals(dataclass_types, recipe)
    )
    validate(*parsed)
    return parsed


def load_config(recipe: str, path: str | Path, **overrides) -> tuple:
    """A training recipe's YAML parsed into its (data, training, model) arguments, with `overrides` applied as on
    the command line (`max_steps=5` is `--max_steps 5`; a list gives several values)."""
    argv = ["--config", str(path)]
    for key, value in overrides.items():
        values = value if isinstance(value, list | tuple) else [value]
        argv += [f"--{key}", *(str(v) for v in values)]
    method = get_method(recipe)
    return parse(method.parser_types, path, argv, recipe=method.name)


def train(method: str | Method, data_args, training_args, model_args) -> dict:
    """Validate arguments built in Python (as `parse` validates parsed ones) and run the training flow
    (vlm_recipes.training.run.run): train, evaluate before/after, save."""
    validate(data_args, training_args, model_args)
    method = get_method(method) if isinstance(method, str) else method
    check_environment(method, training_args)
    return run(method, data_args, training_args, model_args)


def method_of_config(script_method: Method, default_config: str | Path, argv: list[str] | None) -> Method:
    """The method a training script runs for this config: the variant the config declares (`recipe: <variant>`)
    when it is a variant of the script's method, else the script's own method. A config for a method that runs
    through another script is refused, naming that script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    config = argv[argv.index("--config") + 1] if "--config" in argv[:-1] else default_config
    declared = settings_of(config, argv).get("recipe")
    method = METHODS.get(declared) if isinstance(declared, str) else None
    if method is None or method is script_method:
        return script_method
    if method.script_name != script_method.name:
        raise ValueError(
            f"{config} is a config for recipe {declared!r} (its `recipe:` field), not {script_method.name!r}: launch "
            f"it with recipes/{method.script_name}.py, or pick a {script_method.name} config."
        )
    return method


@ends_process_group
def main(method: str, default_config: str | Path, argv: list[str] | None = None) -> dict:
    """The body of every training recipe script: parse its YAML (plus overrides) for `method` (or the variant of it
    the config declares), and run it; under several processes the process group is destroyed on the way out
    (vlm_recipes.processes)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    record = method_of_config(get_method(method), default_config, argv)
    data_args, training_args, model_args = parse(record.parser_types, default_config, argv, recipe=record.name)
    check_environment(record, training_args)
    return run(record, data_args, training_args, model_args)


def training_recipe(method: str, default_config: str) -> tuple:
    """What a training recipe script exposes: `(METHOD, PARSER_TYPES, DEFAULT_CONFIG, main)` for `method`, whose
    offline default is `recipes/configs/<default_config>`; `main(argv=None)` parses and runs."""
    record = get_method(method)
    config = REPO_ROOT / "recipes" / "configs" / default_config

    @ends_process_group
    def script_main(argv: list[str] | None = None) -> dict:
        return main(record.name, config, argv)

    return record, record.parser_types, config, script_main


def recipe_script_module(name: str):
    """The recipe script `recipes/<name>.py` loaded as a module (its `main`, `PARSER_TYPES`, `DEFAULT_CONFIG`); for
    a variant of a training method (e.g. grpo_dapo), the script of the method it varies."""
    if name in METHODS:
        name = METHODS[name].script_name
    path = REPO_ROOT / "recipes" / f"{name}.py"
    if not path.is_file():
        raise ValueError(f"No recipe script {path}.")
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_recipe(name: str, config: str | Path, output_dir: str | Path, *overrides: str) -> dict:
    """Run recipe `name` in this process through its script's entry point on `config`, writing to `output_dir`,
    without loggers (`report_to none`); `overrides` as on the command line."""
    argv = ["--config", str(config), "--output_dir", str(output_dir), "--report_to", "none", *overrides]
    return recipe_script_module(name).main(argv)

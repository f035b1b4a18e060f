"""Every YAML under recipes/configs parses with its recipe's parser and names only real fields."""

from pathlib import Path

import pytest
import yaml
from helpers import (
    BASELINE_RECIPES,
    BENCHMARK_RECIPES,
    CONFIGS,
    INFERENCE_RECIPES,
    RECIPES,
    VLM_CONFIGS,
    parse_config,
    recipe_module,
    recipe_of,
)

from vlm_recipes.launch import parse
from vlm_recipes.paths import REPO_ROOT

pytestmark = pytest.mark.unit


def test_there_are_configs_for_every_model_and_variant():
    dirs = {p.parent.name for p in CONFIGS}
    for model in [
        "tiny-smolvlm",
        "tiny-qwen2-vl",
        "smolvlm-256m-instruct",
        "smolvlm-500m-instruct",
        "smolvlm-2.2b-instruct",
        "smolvlm2-2.2b-instruct",
        "qwen2-vl-2b-instruct",
        "qwen2-vl-7b-instruct",
        "qwen2.5-vl-3b-instruct",
        "tiny-llava",
        "tiny-llava-onevision",
        "llava-1.5-7b-hf",
        "llava-onevision-qwen2-0.5b-ov-hf",
        "llava-v1.6-mistral-7b-hf",
    ]:
        assert model in dirs


@pytest.mark.parametrize("path", VLM_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_config_parses_with_only_real_fields(path):
    assert recipe_of(path) in RECIPES, f"{path}: declares unknown recipe {recipe_of(path)!r}"
    if recipe_of(path) in INFERENCE_RECIPES:
        check_inference_config(path)
        return
    if recipe_of(path) in BENCHMARK_RECIPES:
        check_benchmark_config(path)
        return
    # GPU configs ask for bf16, which transformers refuses to even parse on a GPU-less machine unless use_cpu.
    overrides = [] if path.parent.name.startswith("tiny-") else ["--use_cpu", "true"]
    data_args, training_args, model_args = parse_config(path, *overrides)
    if path.parent.name.startswith("tiny-"):
        # A chained offline recipe (grpo_grounding) starts from an earlier offline recipe's output under outputs/.
        assert model_args.model_name_or_path.startswith(("tiny:", "outputs/"))
        assert data_args.dataset_name in ("synthetic", "synthetic_video")
        assert training_args.use_cpu
    else:
        assert "/" in model_args.model_name_or_path
        assert training_args.bf16 and training_args.activation_checkpointing
        assert training_args.activation_checkpointing_kwargs == {"use_reentrant": False}
        assert data_args.on_overflow == "error"
    assert model_args.use_peft == (not path.stem.endswith("_full"))  # sft_full: full fine-tuning
    assert model_args.load_in_4bit == path.stem.endswith("qlora")
    if path.stem == "mpo":  # MPO is DPO with a mixed loss, nothing else
        assert training_args.loss_type == ["sigmoid", "bco_pair", "sft"] and len(training_args.loss_weights) == 3
    elif path.stem.startswith("dpo"):
        assert training_args.loss_type == ["sigmoid"]


def check_inference_config(path: Path) -> None:
    """generate / evaluate_models configs: tiny ones run offline on the CPU, real ones name a Hub model."""
    data_args, args, model_args = parse_config(path)
    if path.parent.name.startswith("tiny-"):
        assert model_args.model_name_or_path.startswith("tiny:") and args.device == "cpu"
        inputs = [p for p in (getattr(args, "image_dir", None), getattr(args, "video", None)) if p]
        assert all((REPO_ROOT / p).exists() for p in inputs), inputs
        assert inputs or data_args.dataset_name == "synthetic"
    else:
        assert "/" in model_args.model_name_or_path and args.device == "auto"
    if recipe_of(path) == "evaluate_models":
        assert args.metrics and (data_args.answer_column or data_args.dataset_name == "synthetic")


def check_benchmark_config(path: Path) -> None:
    """benchmark configs: tiny ones run offline on the stand-ins, real ones read the Hub; every benchmark is known."""
    args, model_args = parse_config(path)
    if path.parent.name.startswith("tiny-"):
        assert model_args.model_name_or_path.startswith("tiny:") and args.device == "cpu"
        assert args.dataset_source == "standins"
    else:
        assert "/" in model_args.model_name_or_path and args.device == "auto" and args.dataset_source == "hub"
    assert args.benchmarks and args.output_dir.startswith("outputs/") and not args.trust_remote_code


def test_unknown_yaml_key_is_refused(tmp_path):
    bad = tmp_path / "sft_lora.yaml"
    bad.write_text((REPO_ROOT / "recipes/configs/tiny-smolvlm/sft_lora.yaml").read_text() + "lora_rank: 8\n")
    with pytest.raises(ValueError, match="lora_rank"):
        parse_config(bad)


def test_command_line_overrides_yaml():
    path = REPO_ROOT / "recipes/configs/tiny-smolvlm/sft_lora.yaml"
    _, training_args, model_args = parse_config(path, "--learning_rate", "0.123", "--lora_r", "4")
    assert training_args.learning_rate == 0.123 and model_args.lora_r == 4


def test_no_config_means_the_offline_default():
    module = recipe_module("sft")
    data_args, _, model_args = parse(module.PARSER_TYPES, module.DEFAULT_CONFIG, [])
    assert model_args.model_name_or_path == "tiny:smolvlm" and data_args.dataset_name == "synthetic"


BASELINE_CONFIGS = [p for p in CONFIGS if recipe_of(p) in BASELINE_RECIPES]


@pytest.mark.parametrize("path", BASELINE_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_baseline_config_parses(path):
    module = recipe_module(recipe_of(path))
    overrides = [] if path.parent.name.startswith("tiny-") else ["--use_cpu", "true"]
    data_args, model_args, args = parse(
        module.PARSER_TYPES, module.DEFAULT_CONFIG, ["--config", str(path), *overrides], recipe_of(path)
    )
    offline = path.parent.name.startswith("tiny-")
    assert (
        model_args.model_name_or_path.startswith("tiny:") or model_args.model_name_or_path == "scratch" or not offline
    )
    assert offline == (data_args.dataset_name in ("synthetic", "digits"))
    assert not model_args.trust_remote_code
    assert args.output_dir.startswith("outputs/")


def test_every_baseline_recipe_has_an_offline_default_and_a_real_config():
    for recipe in BASELINE_RECIPES:
        module = recipe_module(recipe)
        assert module.DEFAULT_CONFIG.parent.name.startswith("tiny-") and module.DEFAULT_CONFIG.exists()
        assert any(not p.parent.name.startswith("tiny-") for p in BASELINE_CONFIGS if recipe_of(p) == recipe), recipe


# -- TRL / Trainer fields the flow bypasses --------------------------------------------------------------------------
AUDITED = [
    "assistant_only_loss", "batch_eval_metrics", "chat_template_kwargs", "chat_template_path", "completion_only_loss",
    "dataset_kwargs", "dataset_num_proc", "dataset_text_field", "do_predict", "eos_token", "eval_accumulation_steps",
    "eval_delay", "eval_do_concat_batches", "eval_on_start", "eval_packing", "eval_steps", "eval_strategy",
    "eval_use_gather_object", "greater_is_better", "include_for_metrics", "label_smoothing_factor",
    "load_best_model_at_end", "metric_for_best_model", "model_init_kwargs",
    "num_generations_eval", "packing_strategy", "pad_token", "padding_free", "precompute_ref_batch_size",
    "precompute_ref_log_probs", "prediction_loss_only", "remove_unused_columns", "shuffle_dataset",
    "train_sampling_strategy", "truncation_mode",
]  # fmt: skip
TINY = {m: REPO_ROOT / f"recipes/configs/tiny-smolvlm/{m}.yaml" for m in ("sft_lora", "dpo", "mpo", "grpo", "rloo")}


def audited_cases():
    from dataclasses import fields

    from vlm_recipes.training.bypassed import BYPASSED

    for name, entry in sorted(BYPASSED.items()):
        for config in TINY.values():
            method = recipe_of(config)
            config_class = recipe_module(method).METHOD.config_class
            if name in {f.name for f in fields(config_class)} and name in recipe_module(method).METHOD.refuses:
                yield pytest.param(name, entry, config, id=f"{name}-{method}")


def test_the_audited_fields_are_these():
    from vlm_recipes.training.bypassed import BYPASSED

    assert sorted(BYPASSED) == AUDITED
    covered = {case.values[0] for case in audited_cases()}
    assert covered == set(AUDITED)  # each applies to at least one recipe


@pytest.mark.parametrize("name, entry, config", list(audited_cases()))
def test_an_audited_field_set_in_a_yaml_is_refused_naming_it(tmp_path, name, entry, config):
    path = tmp_path / config.name
    path.write_text(config.read_text() + yaml.safe_dump({name: entry.example}))
    with pytest.raises(ValueError, match=rf"{path.name} \(or the command line\): {name}: .* has no effect") as info:
        parse_config(path)
    assert entry.instead in str(info.value)


def test_audited_fields_are_refused_on_the_command_line_and_honoured_values_accepted():
    path = TINY["sft_lora"]
    with pytest.raises(ValueError, match="train_sampling_strategy: 'batch_rebalance' has no effect"):
        parse_config(path, "--train_sampling_strategy", "batch_rebalance")
    with pytest.raises(ValueError, match="train_sampling_strategy: 'group_by_length' has no effect in the .* grpo"):
        parse_config(TINY["grpo"], "--train_sampling_strategy", "group_by_length")  # GRPO samples prompts itself
    with pytest.raises(ValueError, match="padding_free: True has no effect in the vlm-recipes dpo recipe"):
        parse_config(TINY["dpo"], "--padding_free", "true")
    with pytest.raises(ValueError, match="eval_strategy: 'epoch' has no effect"):
        parse_config(path, "--eval_strategy=epoch")
    # What the flow does anyway is fine, set or not.
    _, args, _ = parse_config(
        path, "--assistant_only_loss", "true", "--remove_unused_columns", "false", "--eval_strategy", "no",
        "--truncation_mode", "keep_start", "--packing", "false", "--dataset_text_field", "text",
        "--train_sampling_strategy", "sequential", "--packing_strategy", "bfd",
    )  # fmt: skip
    assert args.assistant_only_loss and not args.packing
    # What our batching honours (vlm_recipes.training.batching).
    _, args, _ = parse_config(
        path, "--packing", "true", "--padding_free", "true", "--length_column_name", "n_tokens",
    )  # fmt: skip
    assert args.packing and args.padding_free and args.length_column_name == "n_tokens"
    _, args, _ = parse_config(TINY["dpo"], "--train_sampling_strategy", "group_by_length")
    assert args.train_sampling_strategy == "group_by_length"
    _, args, _ = parse_config(TINY["grpo"], "--shuffle_dataset", "false")  # GRPO honours it


def test_training_arguments_built_in_python_are_checked_too(tmp_path):
    from vlm_recipes.launch import load_config
    from vlm_recipes.training.run import run

    data_args, training_args, model_args = load_config("sft", TINY["sft_lora"], output_dir=str(tmp_path / "out"))
    training_args.train_sampling_strategy = "batch_rebalance"
    with pytest.raises(ValueError, match="train_sampling_strategy: 'batch_rebalance' has no effect in the"):
        run("sft", data_args, training_args, model_args)
    assert not (tmp_path / "out").exists()


def test_label_smoothing_is_refused_with_a_loss_that_does_not_read_it():
    # TRL 1.16 smooths only its robust / exo_pair / aot losses: the sigmoid default and MPO's mix ignore it.
    for config in (TINY["dpo"], TINY["mpo"]):
        with pytest.raises(ValueError, match=r"label_smoothing: 0.1 has no effect with loss_type .*add `robust`"):
            parse_config(config, "--label_smoothing", "0.1")
    _, args, _ = parse_config(TINY["dpo"], "--label_smoothing", "0.1", "--loss_type", "robust")
    assert args.label_smoothing == 0.1

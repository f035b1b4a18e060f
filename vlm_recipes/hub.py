"""Sharing a run on the Hugging Face Hub: a model card built from the run's own figures, and the push.

huggingface_hub does the transfer (`HfApi.create_repo`, `create_commit`) and reads the token from `HF_TOKEN` or
`huggingface-cli login` (or `--hub_token`), never from us: the token is not written anywhere. What we add is the
choice of files (the adapter or model as safetensors, its config, the processor files, eval_results.json, the
token-redacted training_config.json, training_data_hashes.npz: the contamination check's record of the training data,
image hashes and question keys only; never checkpoints' optimizer state, pickles or TensorBoard logs), a model
card that states the base model, data, method, key hyperparameters and held-out figures, and a push after every
save when asked (`hub_strategy: every_save`). Trainer's own pushing is turned off so that only this card is
published.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from transformers import TrainerCallback

logger = logging.getLogger(__name__)

# Never published: pickles (optimizer/scheduler/RNG state, training_args.bin), checkpoints and logs.
EXCLUDED_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle"}
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HYPERPARAMETERS = (
    "learning_rate",
    "max_steps",
    "num_train_epochs",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "lr_scheduler_type",
    "warmup_steps",
    "weight_decay",
    "beta",
    "loss_type",
    "loss_weights",
    "num_generations",
    "reward_funcs",
    "max_length",
    "seed",
    "bf16",
)


def check_push_settings(training_args) -> None:
    """Fail before any model is loaded if a push was asked for without a usable repository id."""
    if not getattr(training_args, "push_to_hub", False):
        return
    repo_id = training_args.hub_model_id
    if not repo_id or not REPO_ID.match(repo_id):
        raise ValueError(
            f"push_to_hub needs hub_model_id as '<user or org>/<name>' (got {repo_id!r}): "
            "pass --hub_model_id you/my-adapter."
        )


def take_over_push(training_args) -> bool:
    """Check the push settings, turn Trainer's own pushing off (it would publish its own card) and return whether
    to push ourselves, at the end of the run and, with hub_strategy every_save, after every save."""
    check_push_settings(training_args)
    push = bool(training_args.push_to_hub)
    training_args.push_to_hub = False
    return push


def callbacks(training_args, push: bool) -> list:
    if push and training_args.hub_strategy in ("every_save", "checkpoint", "all_checkpoints"):
        private = bool(training_args.hub_private_repo)
        return [PushEverySave(training_args.hub_model_id, private, training_args.hub_token)]
    return []


def publish(out: Path, training_args, push: bool, card: str) -> None:
    """Write the model card into `out` and, if asked, push `out`'s publishable files (main process only)."""
    (out / "README.md").write_text(card)
    if push:
        private = bool(training_args.hub_private_repo)
        push_folder(out, training_args.hub_model_id, private, "Upload final model and card", training_args.hub_token)
        print(f"Pushed to {training_args.hub_model_id} ({'private' if private else 'public'})")


def is_hub_id(name: str) -> bool:
    return bool(REPO_ID.match(name)) and not Path(name).exists()


def files_to_push(folder: Path) -> list[Path]:
    """The files of `folder` worth publishing (see EXCLUDED_*), sorted."""
    keep = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or path.suffix in EXCLUDED_SUFFIXES:
            continue
        if any(part == "runs" or part.startswith("checkpoint-") for part in relative.parts[:-1]):
            continue
        keep.append(path)
    return keep


def push_folder(folder: Path, repo_id: str, private: bool, commit_message: str, token: str | None = None):
    """Create the repository if needed (private when asked) and commit the publishable files of `folder`."""
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    operations = [
        CommitOperationAdd(path_in_repo=path.relative_to(folder).as_posix(), path_or_fileobj=str(path))
        for path in files_to_push(folder)
    ]
    info = api.create_commit(repo_id, operations=operations, commit_message=commit_message)
    logger.info("Pushed %d files to %s (%s)", len(operations), repo_id, info.commit_url)
    return info


def _yaml_list(values) -> str:
    return "".join(f"\n- {v}" for v in values)


def model_card(
    *,
    repo_id: str,
    base_model: str,
    method: str,
    tags: list[str],
    datasets: list[str],
    results: dict,
    training_args,
    adapter: bool,
    pipeline_tag: str = "image-text-to-text",
    usage: str | None = None,
) -> str:
    """README.md for the Hub: YAML metadata (base model, library, tags, datasets) and a body a person can read.
    `usage`: the card's code snippet, for models the default (Auto* classes) does not load (e.g. BLIP's heads)."""
    tags = ["vlm-recipes", *tags, *(["lora", "peft"] if adapter else [])]
    header = ["---", f"library_name: {'peft' if adapter else 'transformers'}", f"pipeline_tag: {pipeline_tag}"]
    if is_hub_id(base_model):
        header.append(f"base_model: {base_model}")
    hub_datasets = [d for d in datasets if is_hub_id(d)]
    if hub_datasets:
        header.append("datasets:" + _yaml_list(hub_datasets))
    header += ["tags:" + _yaml_list(tags), "---"]

    hyper = {k: getattr(training_args, k) for k in HYPERPARAMETERS if getattr(training_args, k, None) is not None}
    steps = hyper.get("max_steps", -1)
    hyper = {
        k: getattr(v, "value", v) for k, v in hyper.items() if k != ("num_train_epochs" if steps > 0 else "max_steps")
    }
    figures = sorted(k for k in results if isinstance(results[k], int | float) and not isinstance(results[k], bool))
    before_after = sorted({k[: -len("_before")] for k in figures if k.endswith("_before")})
    rows = [
        f"| {name} | {results[name + '_before']:.4g} | {results[name + '_after']:.4g} |"
        for name in before_after
        if name + "_after" in results
    ]
    other = [k for k in figures if not k.endswith(("_before", "_after"))]
    name = repo_id.split("/")[-1]
    if usage is None and adapter:
        usage = f"""```python
from peft import PeftModel
from transformers import AutoModelForImageTextToText, AutoProcessor

base = AutoModelForImageTextToText.from_pretrained("{base_model}")
model = PeftModel.from_pretrained(base, "{repo_id}")
processor = AutoProcessor.from_pretrained("{repo_id}")
```

To deploy without PEFT, merge the adapter into the base: `python recipes/merge_adapter.py --adapter {repo_id}`."""
    elif usage is None:
        usage = f"""```python
from transformers import AutoModel, AutoProcessor

model = AutoModel.from_pretrained("{repo_id}")
processor = AutoProcessor.from_pretrained("{repo_id}")
```"""
    body = [
        f"# {name}",
        "",
        f"{'A LoRA adapter for' if adapter else 'A fine-tuned version of'} `{base_model}`, trained with "
        f"**{method}** with vlm-recipes on "
        f"{', '.join(f'`{d}`' for d in datasets)}.",
        "",
        "## Held-out evaluation",
        "",
        f"Measured on {results.get('num_eval_samples', results.get('num_eval_pairs', 'the'))} held-out samples "
        "before and after training (from `eval_results.json`):",
        "",
        "| metric | before | after |",
        "|---|---|---|",
        *rows,
        "",
        *(f"- {k}: {results[k]:.6g}" for k in other),
        *(
            [f"- generations scored with `{results['generation_metric']}`: {results['generation_metric_reason']}"]
            if results.get("generation_metric_reason")
            else []
        ),
        "",
        *benchmark_section(results.get("benchmarks")),
        *overlap_section(results.get("contamination")),
        "## Training",
        "",
        "| hyperparameter | value |",
        "|---|---|",
        *(f"| {k} | {json.dumps(v) if isinstance(v, list) else v} |" for k, v in hyper.items()),
        "",
        "## Usage",
        "",
        usage,
        "",
    ]
    return "\n".join(header + [""] + body)


def overlap_section(overlaps: list | None) -> list[str]:
    """The card's "Training-data overlap" section: the contamination check's figures (eval_results.json's
    `contamination`, vlm_recipes/data/contamination.py), a figure above the threshold marked."""
    if not overlaps:
        return []
    lines = ["## Training-data overlap", "", "Scored rows whose image, question or both were trained on:", ""]
    for o in overlaps:
        mark = f" **{o['mark']}**" if o.get("mark") else ""
        lines.append(
            f"- {o['scored']}: image {o['image_overlap']}/{o['rows']}{mark}, question {o['question_overlap']}/"
            f"{o['rows']}, both {o['same_item_overlap']}/{o['rows']}"
        )
    return [*lines, ""]


def benchmark_section(benchmarks: dict | None) -> list[str]:
    """The card's "Benchmarks" section: each benchmark's score before and after training (eval_results.json's
    `benchmarks`, measured as recipes/benchmark.py measures them), with the share of unparsable answers."""
    if not benchmarks:
        return []

    def percent(value) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}"

    lines = [
        "## Benchmarks",
        "",
        "Scores in % before and after training (`benchmarks:` in the training config; prompts and scoring rules of "
        "vlm-recipes' benchmark task files, rule-based answer extraction, unparsable answers score 0):",
        "",
        "| benchmark | metric | questions | before | after | unparsable before / after |",
        "|---|---|---|---|---|---|",
    ]
    for figures in benchmarks.values():
        unparsable = f"{percent(figures['unparsable_before'])} / {percent(figures['unparsable_after'])}"
        lines.append(
            f"| {figures['title']} (`{figures['dataset_name']}`) | {figures['metric']} | {figures['num_questions']} | "
            f"{percent(figures['before'])} | {percent(figures['after'])} | {unparsable} |"
        )
    if any(f["dataset_source"] == "standins" for f in benchmarks.values()):
        lines += ["", "Measured on offline stand-ins of the datasets (a few synthetic rows): no benchmark results."]
    return [*lines, ""]


class PushEverySave(TrainerCallback):
    """Push the newest checkpoint's publishable files (adapter/model, config, trainer state; no optimizer state) to
    the repository after every save, so a crash loses at most one save interval."""

    def __init__(self, repo_id: str, private: bool, token: str | None = None):
        self.repo_id, self.private, self.token = repo_id, private, token

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if checkpoint.is_dir():
                message = f"Training in progress, step {state.global_step}"
                push_folder(checkpoint, self.repo_id, self.private, message, self.token)
        return control


def main(argv: list[str] | None = None) -> None:
    """Push a finished run's folder (its model card included): python -m vlm_recipes.hub --folder ... --repo_id ..."""
    import argparse

    parser = argparse.ArgumentParser(description="Push a finished vlm-recipes run to the Hugging Face Hub.")
    parser.add_argument("--folder", required=True, help="the run's output_dir")
    parser.add_argument("--repo_id", required=True, help="<user or org>/<name>")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    if not (folder / "README.md").exists():
        raise SystemExit(f"{folder} has no README.md model card: is it the output_dir of a finished recipe run?")
    if not REPO_ID.match(args.repo_id):
        raise SystemExit(f"--repo_id must be '<user or org>/<name>', got {args.repo_id!r}.")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    info = push_folder(folder, args.repo_id, args.private, "Upload model and card")
    print(f"Pushed {folder} to {info.commit_url}")


if __name__ == "__main__":
    main()

"""What bench_memory_planner and bench_logits_at_labels share: the recipe's own SFT trainer on a real-size
architecture (random weights, vlm_recipes.tiny.real_size, built in the process and handed to the recipe's trainer
as `load_model_for_training` hands it a loaded checkpoint) and rows at the real processor settings
(vlm_recipes.data.length_mix: photos of 640x427, 427x640 and 640x200, a quarter text-only). Not a bench itself."""

from __future__ import annotations

import tempfile
from pathlib import Path

from datasets import Dataset

from vlm_recipes.data.length_mix import mix_rows
from vlm_recipes.launch import load_config
from vlm_recipes.models.modeling import apply_freezing, build_peft_config, load_processor
from vlm_recipes.paths import REPO_ROOT
from vlm_recipes.tiny import real_size
from vlm_recipes.training.methods import get_method
from vlm_recipes.training.run import Run, build_trainer, load_model_for_training

CONFIGS = {  # the LoRA configs our recipes ship for these checkpoints (LoRA on the language model, tower frozen)
    "smolvlm-256m": "recipes/configs/smolvlm-256m-instruct/sft_lora.yaml",
    "qwen2-vl-2b": "recipes/configs/qwen2-vl-2b-instruct/sft_lora.yaml",
    "qwen3.5-0.8b": "recipes/configs/qwen3.5-0.8b/sft_lora.yaml",  # LoRA also on the Gated DeltaNet projections
}


def trainer(
    name: str, *, rows: int, batch: int, training: str = "lora", checkpointing: bool = False, max_words: int = 40,
    images_per_row: int = 1, seed: int = 0, out: Path | None = None, **overrides,
):  # fmt: skip
    """(trainer, model_args, rows) of the recipe's SFT trainer for `name` in float32 on the CPU; `training` "lora"
    (the shipped config) or "full" (the same, without LoRA: the vision tower stays frozen, as the config says).
    `tiny:<family>`: the family's tiny LoRA config with random weights and its synthetic rows (the test's cases)."""
    tiny = name.startswith("tiny:")
    settings = {
        **({"model_name_or_path": f"{name}-random"} if tiny else {}),
        "dtype": "float32",
        "bf16": "false",
        "use_cpu": "true",
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": 100,
        "per_device_train_batch_size": batch,
        "gradient_accumulation_steps": 1,
        "activation_checkpointing": str(checkpointing).lower(),
        "lora_dropout": 0.0,
        "output_dir": str(out or tempfile.mkdtemp(prefix="real-size-run-")),
        **({"use_peft": "false"} if training == "full" else {}),
        **overrides,
    }
    family = name.removeprefix("tiny:").replace("_", "-")
    config = f"recipes/configs/tiny-{family}/sft_lora.yaml" if tiny else CONFIGS[name]
    if tiny and not (REPO_ROOT / config).exists():  # tiny-qwen2.5-vl, tiny-qwen3.5
        config = config.replace("-5", ".5")
    data_args, args, model_args = load_config("sft", REPO_ROOT / config, **settings)
    r = Run(get_method("sft"), data_args, args, model_args, Path(args.output_dir))
    if tiny:  # the config's synthetic task (64x64 images), as tests/test_memory.py
        r.processor = load_processor(model_args)
        r.train_ds, _ = r.method.load_splits(data_args, seed=args.seed, processor=r.processor)
        r.train_ds = r.train_ds.select(range(rows))
        model = load_model_for_training(r)
    else:  # built here, not loaded: the config's Hub id is never read
        r.processor = real_size.build_processor(name)
        r.train_ds = Dataset.from_list(with_images(mix_rows(rows, seed=seed, max_words=max_words), images_per_row))
        model = real_size.build_model(name, r.processor).train()
        r.peft_config = build_peft_config(model, model_args)
        if r.peft_config is None:
            apply_freezing(model, model_args)
    return build_trainer(r, model), model_args, [r.train_ds[i] for i in range(rows)]


def with_images(rows: list[dict], n: int) -> list[dict]:
    """`rows` with each photo repeated `n` times (n placeholders): longer rows at the same answer lengths."""
    for row in rows:
        if row["images"] and n > 1:
            row["images"] = row["images"] * n
            content = row["messages"][0]["content"]
            row["messages"][0]["content"] = [{"type": "image"}] * (n - 1) + content
    return rows

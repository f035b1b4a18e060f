"""vlm-recipes: fine-tuning recipes for vision language models on TRL, runnable offline on tiny models.

The names a notebook needs; the recipes in `recipes/` are thin scripts over the same calls. Train the offline
default for a few steps (run from the repository root; `tmp_dir` is any empty directory):

>>> from vlm_recipes import METHODS, get_method, load_config, train
>>> data_args, training_args, model_args = load_config(
...     "sft", "recipes/configs/tiny-smolvlm/sft_lora.yaml",
...     max_steps=5, max_eval_samples=8, output_dir=f"{tmp_dir}/run", report_to="none",
... )
>>> import contextlib, io
>>> with contextlib.redirect_stdout(io.StringIO()):  # the run prints its progress and figures
...     results = train("sft", data_args, training_args, model_args)
>>> sorted(k for k in results if k.endswith("_after")), results["train_steps"]
(['accuracy_after'], 5)
>>> sorted(METHODS)  # grpo_*: GRPO's loss variants, launched with recipes/grpo.py
... # doctest: +NORMALIZE_WHITESPACE
['dpo', 'grpo', 'grpo_bnpo', 'grpo_cispo', 'grpo_dapo', 'grpo_dr_grpo', 'grpo_gspo', 'grpo_plain', 'mpo', 'rloo',
 'sft']
>>> get_method("mpo").config_class.__name__
'DPOConfig'

- `load_config(recipe, path, **overrides)`: a training recipe's YAML parsed into (data, training, model) arguments.
- `train(method, data_args, training_args, model_args)`: validate, train, evaluate before/after, save
  (vlm_recipes.launch, over vlm_recipes.training.run).
- `METHODS`, `get_method`, `Method`: the training-method registry (vlm_recipes.training.methods).
- `VisionChatCollator`, `PreferenceCollator`, `PromptCollator`: rows to token batches (vlm_recipes.data.collators);
  `PaddingFreeCollator`: rows to one padding-free sequence with per-row positions (vlm_recipes.data.packing).
- `FAMILIES`, `Family`, `family_of`: what differs between model families (vlm_recipes.models.families).
- `resolve`: a model name to a local directory: a `tiny:<name>` to its offline checkpoint, built once
  (vlm_recipes.models.sources, with vlm_recipes.tiny registered).
"""

from __future__ import annotations

from importlib import import_module

# Public name -> module that defines it. Imported on first use: `import vlm_recipes` stays cheap.
_EXPORTS = {
    "load_config": "vlm_recipes.launch",
    "train": "vlm_recipes.launch",
    "METHODS": "vlm_recipes.training.methods",
    "Method": "vlm_recipes.training.methods",
    "get_method": "vlm_recipes.training.methods",
    "VisionChatCollator": "vlm_recipes.data.collators",
    "PreferenceCollator": "vlm_recipes.data.collators",
    "PromptCollator": "vlm_recipes.data.collators",
    "PaddingFreeCollator": "vlm_recipes.data.packing",
    "FAMILIES": "vlm_recipes.models.families",
    "Family": "vlm_recipes.models.families",
    "family_of": "vlm_recipes.models.families",
    "resolve": "vlm_recipes.launch",  # vlm_recipes.models.sources.resolve, with the tiny: source registered
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vlm_recipes' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

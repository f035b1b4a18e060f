"""Every setting of every recipe, in one folder: dataclasses that extend TRL's and transformers', parsed by `parse`
(`TrlParser`: a YAML file plus command-line overrides).

TRL already gives us `ModelConfig` (model path, dtype, LoRA and quantisation fields) and its trainer configs (every
training argument). We add only what VLM recipes need, one module per concern:

- `data`: where the data comes from and how columns become conversations (`DataArguments`);
- `model`: image resolution, freezing and QLoRA controls (`VLMModelConfig`);
- `training`: per-part learning rates, the output-dir guard, benchmarks during training (`SFTConfig`, `DPOConfig`,
  `GRPOConfig`, `RLOOConfig`; `RewardFields`: the reward functions of GRPO and RLOO);
- `inference`: generation, evaluation and benchmark recipes; `blip`: the BLIP recipes; `baselines`: CLIP / SigLIP,
  ViT and their image data;
- `parsing`: `parse`, with the recipe check and named unknown keys.

This is the bottom layer of the package: it imports nothing of vlm_recipes above it. Allowed values are `Literal`
types (`common.check_choices`); names that need a registry (metrics, benchmarks, rewards, box conventions, refused
fields) are checked in one step when a recipe parses its config (vlm_recipes.launch.validate).
"""

from .common import RecipeField, check_choices
from .data import GROUNDING_TASKS, IMAGE_PROCESSING, DataArguments
from .inference import BenchmarkArguments, EvaluateArguments, GenerateArguments
from .model import VLMModelConfig
from .parsing import parse, settings_of
from .training import DPOConfig, GRPOConfig, RewardFields, RLOOConfig, SFTConfig, VLMTrainingFields

__all__ = [
    "BenchmarkArguments",
    "DPOConfig",
    "DataArguments",
    "EvaluateArguments",
    "GRPOConfig",
    "GROUNDING_TASKS",
    "GenerateArguments",
    "IMAGE_PROCESSING",
    "RLOOConfig",
    "RecipeField",
    "RewardFields",
    "SFTConfig",
    "VLMModelConfig",
    "VLMTrainingFields",
    "check_choices",
    "parse",
    "settings_of",
]

"""The model to load and how (`VLMModelConfig`): TRL's `ModelConfig` plus image resolution, freezing and QLoRA
controls. Which resolution controls a family honours is the family's business (vlm_recipes.models.families)."""

from __future__ import annotations

from dataclasses import dataclass, field

import trl


@dataclass
class VLMModelConfig(trl.ModelConfig):
    freeze_vision_tower: bool = field(
        default=False, metadata={"help": "Keep the vision encoder frozen (no LoRA on it, no gradient)."}
    )
    freeze_projector: bool = field(
        default=False, metadata={"help": "Keep the projector/connector frozen (not trained, not in modules_to_save)."}
    )
    min_pixels: int | None = field(default=None, metadata={"help": "Qwen2-VL: minimum pixels per image."})
    max_pixels: int | None = field(
        default=None, metadata={"help": "Qwen2-VL: maximum pixels per image (caps image tokens: pixels / 28^2)."}
    )
    longest_edge: int | None = field(
        default=None, metadata={"help": "SmolVLM: resize the longest image edge to this before splitting into tiles."}
    )
    image_splitting: bool | None = field(
        default=None, metadata={"help": "SmolVLM: split images into tiles (more tokens, more detail)."}
    )
    video_min_pixels: int | None = field(
        default=None, metadata={"help": "Qwen2-VL: minimum pixels per video frame (the video processor's)."}
    )
    video_max_pixels: int | None = field(
        default=None,
        metadata={
            "help": "Qwen2-VL: maximum pixels per video frame; a video costs frames / 2 x pixels / 28^2 tokens (two "
            "frames per temporal patch)."
        },
    )
    max_image_tiles: int | None = field(
        default=None,
        metadata={
            "help": "LLaVA-OneVision, LLaVA-NeXT: encode an image as at most this many anyres tiles (plus the base "
            "image); caps image tokens at about (tiles + 1) x 729 (OneVision) or 576 (NeXT) on the real "
            "checkpoints. Set on the processor and the model."
        },
    )
    enable_thinking: bool | None = field(
        default=None,
        metadata={
            "help": "Qwen3.5 (3.6, 3.8): render every prompt (generation, GRPO, held-out evaluation) with the chat "
            "template's enable_thinking set to this; default false: the prompt ends in an empty think block and the "
            "model answers directly (the form SFT rows without reasoning train). true for a model that should reason "
            "first. Refused for families whose template has no thinking switch."
        },
    )
    quantize_vision_tower: bool = field(
        default=False,
        metadata={
            "help": "QLoRA (load_in_4bit / load_in_8bit): quantize the vision tower too. By default the vision tower, "
            "the projector and the output head stay in the compute dtype (dtype): 4-bit vision towers are reported "
            "to degrade what the model sees."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.model_name_or_path is None:
            raise ValueError(
                "model_name_or_path is required (a Hub id, a local path, or a tiny model such as tiny:smolvlm)."
            )
        if self.quantize_vision_tower and not (self.load_in_4bit or self.load_in_8bit):
            raise ValueError(
                "quantize_vision_tower only applies to quantized (QLoRA) loading: set load_in_4bit (or load_in_8bit), "
                "or remove it."
            )

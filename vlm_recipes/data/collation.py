"""One factory for every collator the package builds: training (padded, padding-free, packed), preflight, row
length counting, throughput measurement and held-out evaluation.

Each collator class (vlm_recipes.data.collators, vlm_recipes.data.packing) takes its settings as constructor
arguments and is never changed after it is built; this module says once which settings come from a recipe's
`DataArguments` (image size guard, overflow policy, padding side, video sampling, where images are processed) and
which from the training arguments (`max_length`, `pad_to_multiple_of`), so that every place that encodes rows encodes
them the same way and applies the same truncation rule (`collators.overflow`).

>>> from vlm_recipes.tiny.vlm import build_processor
>>> from vlm_recipes.settings import DataArguments
>>> collator = build_collator(VisionChatCollator, build_processor("qwen2_vl"), DataArguments(padding_side="left"))
>>> type(collator).__name__, collator.padding_side, collator.image_processing
('VisionChatCollator', 'left', 'processor')
"""

from __future__ import annotations

from ..settings import DataArguments
from .collators import PreferenceCollator, PromptCollator, VisionChatCollator
from .packing import PaddingFreeCollator

__all__ = ["build_collator", "PreferenceCollator", "PromptCollator", "VisionChatCollator", "PaddingFreeCollator"]


def build_collator(
    collator_class: type,
    processor,
    data_args: DataArguments | None = None,
    *,
    max_length: int | None = None,
    pad_to_multiple_of: int | None = None,
    padding_free: bool = False,
    image_processing: str | None = None,
    messages_key: str | None = None,
    video: dict | None = None,
):
    """A collator of `collator_class` (VisionChatCollator, PreferenceCollator or PromptCollator) for `processor`.

    Args:
        data_args: the recipe's data settings (None: the defaults): `max_image_pixels`, `on_overflow`,
            `padding_side`, the video sampling and `image_processing` come from here.
        max_length, pad_to_multiple_of: the training arguments' truncation and padding (None: neither).
        padding_free: rows concatenated into one sequence (PaddingFreeCollator: padding-free and packed batches).
        image_processing: overrides `data_args.image_processing` (e.g. the throughput probe tries each mode).
        messages_key: the column holding the conversation (default `messages`).
        video: overrides `data_args.video_settings` (frame sampling, `vlm_recipes.data.video.load_video`'s settings),
            for callers that hold only those.
    """
    data_args = data_args or DataArguments()
    mode = image_processing or data_args.image_processing
    video = data_args.video_settings if video is None else video
    if collator_class is PromptCollator:
        if mode != "processor":
            raise ValueError(
                f"image_processing: {mode} applies to training batches; prompts for generation are processed by the "
                "processor itself."
            )
        return PromptCollator(processor, messages_key=messages_key or "messages", video=video)
    settings = {
        "max_length": max_length,
        "on_overflow": data_args.on_overflow,
        "max_image_pixels": data_args.max_image_pixels,
        "pad_to_multiple_of": pad_to_multiple_of,
        "video": video,
        "image_processing": mode,
    }
    if messages_key is not None:
        settings["messages_key"] = messages_key
    if padding_free:
        if collator_class is not VisionChatCollator:
            raise ValueError(f"padding-free batches are built from chat rows; {collator_class.__name__} has none.")
        return PaddingFreeCollator(processor, **settings)
    return collator_class(processor, padding_side=data_args.padding_side, **settings)

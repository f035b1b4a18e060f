"""What differs between the model families we support, in one place.

Everything family-specific the rest of the package needs (which special tokens are image tokens, which
token ends an assistant turn, how the modules of the model are named, how image resolution is set on the
processor) lives here, so collators, model loading and evaluation stay family-agnostic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    name: str
    model_types: tuple[str, ...]
    # Every special token that belongs to an image (placeholders, separators, tile markers). None of them is
    # ever a training target: the model must not learn to "predict" the image it is given.
    image_tokens: tuple[str, ...]
    image_token_patterns: tuple[str, ...]  # regexes for token families such as <row_1_col_2>
    end_of_turn: str
    # Regexes on parameter/module names. Order matters: projector is checked before vision tower, because
    # Qwen2-VL's projector (`visual.merger`) sits inside its vision module.
    projector_pattern: str
    vision_tower_pattern: str
    # The same parts as module-name regexes the way transformers' `llm_int8_skip_modules` reads them (matched from
    # the start of a module name): QLoRA keeps these modules out of 4-bit.
    vision_tower_modules: tuple[str, ...]
    projector_modules: tuple[str, ...]
    # Qwen2-VL's M-RoPE: image tokens get 3-D (temporal, height, width) positions, so a padding-free batch needs
    # them per row (vlm_recipes.data.packing); other families use 1-D positions.
    multimodal_rope: bool = False

    def part_of(self, name: str) -> str:
        """Which part of the model a parameter belongs to: 'projector', 'vision_tower' or 'language_model'."""
        if re.search(self.projector_pattern, name):
            return "projector"
        if re.search(self.vision_tower_pattern, name):
            return "vision_tower"
        return "language_model"

    def image_token_ids(self, tokenizer) -> list[int]:
        vocab = tokenizer.get_vocab()
        ids = {vocab[tok] for tok in self.image_tokens if tok in vocab}
        for pattern in self.image_token_patterns:
            ids.update(i for tok, i in vocab.items() if re.fullmatch(pattern, tok))
        return sorted(ids)


SMOLVLM = Family(
    name="smolvlm",
    model_types=("smolvlm", "idefics3"),
    image_tokens=("<image>", "<fake_token_around_image>", "<global-img>", "<video>"),
    image_token_patterns=(r"<row_\d+_col_\d+>",),
    end_of_turn="<end_of_utterance>",
    projector_pattern=r"(^|\.)connector\.",
    vision_tower_pattern=r"(^|\.)vision_model\.",
    vision_tower_modules=(r"(.*\.)?vision_model",),
    projector_modules=(r"(.*\.)?connector",),
)

QWEN2_VL = Family(
    name="qwen2_vl",
    model_types=("qwen2_vl", "qwen2_5_vl"),
    image_tokens=("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"),
    image_token_patterns=(),
    end_of_turn="<|im_end|>",
    projector_pattern=r"(^|\.)visual\.merger\.",
    vision_tower_pattern=r"(^|\.)visual\.",
    vision_tower_modules=(r"(.*\.)?visual",),  # holds the merger too: quantizing the tower leaves it out
    projector_modules=(r"(.*\.)?visual\.merger",),
    multimodal_rope=True,
)

FAMILIES = (SMOLVLM, QWEN2_VL)


def family_for_model_type(model_type: str) -> Family:
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    known = sorted(t for f in FAMILIES for t in f.model_types)
    raise ValueError(f"Unsupported model_type {model_type!r}: vlm-recipes supports {known}.")


def family_of(processor_or_model) -> Family:
    """The family of a processor (by class name) or a model/config (by model_type)."""
    config = getattr(processor_or_model, "config", processor_or_model)
    model_type = getattr(config, "model_type", None)
    if model_type:
        return family_for_model_type(model_type)
    cls = type(processor_or_model).__name__
    if cls in ("SmolVLMProcessor", "Idefics3Processor"):
        return SMOLVLM
    if cls in ("Qwen2VLProcessor", "Qwen2_5_VLProcessor"):
        return QWEN2_VL
    raise ValueError(f"Cannot tell the model family of {cls}; supported: SmolVLM/Idefics3 and Qwen2-VL/Qwen2.5-VL.")


def set_image_resolution(
    processor,
    *,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    longest_edge: int | None = None,
    image_splitting: bool | None = None,
) -> None:
    """Apply the YAML's resolution controls to a processor in place.

    Qwen2-VL resizes every image so that its pixel count lies in [min_pixels, max_pixels]; SmolVLM resizes the
    longest edge and optionally splits the image into tiles (each tile costs as many tokens as the global image).
    A control that does not apply to the family raises, so a misplaced setting is never silently ignored.
    """
    family = family_of(processor)
    ip = processor.image_processor
    if family is QWEN2_VL:
        if longest_edge is not None or image_splitting is not None:
            raise ValueError(
                "longest_edge / image_splitting are SmolVLM controls; for Qwen2-VL use min_pixels/max_pixels."
            )
        size = dict(ip.size)
        if min_pixels is not None:
            size["shortest_edge"] = min_pixels
        if max_pixels is not None:
            size["longest_edge"] = max_pixels
        if size["shortest_edge"] > size["longest_edge"]:
            raise ValueError(
                f"min_pixels ({size['shortest_edge']}) is larger than max_pixels ({size['longest_edge']})."
            )
        ip.size = size
        for attr, key in (("min_pixels", "shortest_edge"), ("max_pixels", "longest_edge")):
            if hasattr(ip, attr):
                setattr(ip, attr, size[key])
    else:
        if min_pixels is not None or max_pixels is not None:
            raise ValueError(
                "min_pixels / max_pixels are Qwen2-VL controls; for SmolVLM use longest_edge and image_splitting."
            )
        if longest_edge is not None:
            tile = ip.max_image_size["longest_edge"]
            if longest_edge < tile:
                raise ValueError(
                    f"longest_edge ({longest_edge}) is smaller than the vision encoder's tile ({tile}); "
                    f"use a multiple of {tile}, or image_splitting: false for one tile per image."
                )
            # With splitting on, the image is resized to this edge and cut into tiles of `tile` pixels:
            # (longest_edge / tile)^2 tiles + 1 global image, each costing image_seq_len tokens.
            ip.size = {"longest_edge": longest_edge}
        if image_splitting is not None:
            ip.do_image_splitting = image_splitting

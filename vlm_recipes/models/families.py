"""What differs between the model families we support, in one place: one record per family, data and behaviour.

Everything family-specific the rest of the package needs lives here: which special tokens are image tokens, which
token ends an assistant turn, how the modules of the model are named, which image- and video-resolution controls
apply and how they are set on the processor, which settings the model must share with its processor, how its image
inputs are laid out (`pixel_layout`, which the split image pipeline implements per layout), how a padding-free row
gets its positions and whether packing is proven exact, and the patches its chat template needs. Code outside
`models/` asks the record; it never compares a family by identity or name. Adding a family is one `Family` record in
`FAMILIES` (plus a tiny model in vlm_recipes/tiny and its chat template, if TRL does not ship it, in
vlm_recipes/models/chat_templates).

>>> family_for_model_type("llava_onevision").label, family_for_model_type("llava").resolution_controls
('LLaVA-OneVision', ())
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..settings.data import BOX_FORMAT_AUTO
from .positions import mrope_positions
from .sources import resolve

logger = logging.getLogger(__name__)

# The fields of VLMModelConfig that set image resolution; each family accepts the ones it lists.
RESOLUTION_CONTROLS = ("min_pixels", "max_pixels", "longest_edge", "image_splitting", "max_image_tiles")


@dataclass(frozen=True)
class Family:
    """A model family.

    Args:
        name: short name (also the tiny model's, `tiny:<name>`).
        label: the family as messages name it.
        model_types: the `model_type` values of its configs.
        processor_classes: the class names of its processors.
        image_tokens: every special token that belongs to an image (placeholders, separators, tile markers). None of
            them is ever a training target: the model must not learn to "predict" the image it is given.
        image_token_patterns: regexes for token families such as <row_1_col_2>.
        end_of_turn: the token that ends an assistant turn (trained with the answer).
        projector_pattern, vision_tower_pattern: regexes on parameter/module names. Order matters: the projector is
            checked before the vision tower, because Qwen2-VL's projector (`visual.merger`) sits inside its vision
            module.
        vision_tower_modules, projector_modules: the same parts as module-name regexes the way transformers'
            `llm_int8_skip_modules` reads them (matched from the start of a module name): QLoRA keeps these out of
            4-bit.
        resolution_controls: the image-resolution fields of the model config this family honours (any other one set
            is refused); `set_resolution(processor, **controls)` applies them.
        resolution_help: how image resolution works in this family (said when a control is refused).
        model_settings: `(processor) -> dict` of config values the model must share with its processor (read by
            the processor to count image tokens, by the model to lay out image features); the model is loaded with
            them, so a resolution control can never leave the two disagreeing.
        video_resolution_controls: the video-frame resolution fields this family honours (`video_min_pixels`,
            `video_max_pixels`); `set_video_resolution` applies them.
        pixel_layout: how the processor lays out image inputs: "tiles" (SmolVLM / Idefics3: per row a stack of
            tiles and frames, `pixel_values` (rows, images, C, H, W) with a `pixel_attention_mask`), "patches"
            (Qwen2-VL: every image's patches flat in row order, with `image_grid_thw`), or "images" (one tensor per
            image, LLaVA). The split image pipeline (vlm_recipes.data.pipeline) implements "tiles" and "patches".
        image_processor_classes: the image processor classes the split pipeline reproduces for this layout.
        packed_positions: `(token_types, grids, merge_size) -> (3, n)` positions of one row of a padding-free batch
            beyond the plain text positions (Qwen2-VL's M-RoPE, vlm_recipes.models.positions); None: 1-D positions.
        packing_exact: whether padding-free / packed batches are proven exact (tests/test_packing.py: per-row losses
            and LoRA gradients equal to the rows run one at a time); `packing_refusal` says why not, when not.
        video_time_scale: `(model config) -> factor` for families whose padding-free / packed batches take videos
            (proven exact too): a video's temporal positions step by factor x its `second_per_grid_ts` (Qwen2.5-VL:
            the vision config's tokens_per_second). None: a video row is refused in a padding-free batch.
        template_patches: (old, new) text replacements applied to the family's chat templates before use (e.g. the
            `<video>` branch SmolVLM's template lacks).
        checkpoints: prefixes of the Hub ids of the family's real checkpoints our configs name (the longest
            matching prefix of any family wins): which tiny model stands in for a real config offline.
        box_formats: (model_type, box convention) pairs: the grounding answer format each model type of the family
            was pre-trained on (vlm_recipes/grounding/boxes.py), its default (`box_format: auto`); another convention
            is refused before the model loads unless the config sets box_format_override. A model type not listed
            has no native box format: every convention needs the override.
        checkpoint_types: (Hub id prefix, model_type) pairs: the model type of a real checkpoint, known without
            downloading its config (the longest matching prefix wins), so that its box format is checked offline.
        claims_processor: `(processor) -> bool` for a processor class several families share (Qwen3-VL's serves
            Qwen3-VL and Qwen3.5): whether this processor is this family's (`family_of`). Among the families listing
            a processor's class, one whose predicate claims it wins; one without a predicate takes the rest.
        thinking: the chat template takes `enable_thinking` (Qwen3.5): its generation prompt opens a reasoning block
            (true) or writes an empty one (false). Every prompt is rendered with the model config's `enable_thinking`
            (default false: `template_variables`); a family without it refuses the setting.
        token_types_input: the model input that takes the per-token modality ids (1 on image tokens) of a processor
            that makes them (`return_mm_token_type_ids`): Qwen2-VL's `mm_token_type_ids` (M-RoPE), Gemma 3's
            `token_type_ids` (its bidirectional image attention; under another name the model ignores them).
        untrained_modules: module-name regexes (matched from the start of a name, like `vision_tower_modules`) of
            parts no recipe trains (Gemma 4's audio tower and its embedder: we train no audio): LoRA never targets them
            and full fine-tuning freezes them.
        eager_sub_configs: sub-configs whose model transformers 5.23 runs with eager attention only (Gemma 4's
            `audio_config`: its audio tower has no SDPA or FlashAttention kernel, so `attn_implementation: sdpa`
            alone fails to load an E-size checkpoint); the model loads with the config's implementation everywhere
            else and eager there.
    """

    name: str
    label: str
    model_types: tuple[str, ...]
    processor_classes: tuple[str, ...]
    image_tokens: tuple[str, ...]
    image_token_patterns: tuple[str, ...]
    end_of_turn: str
    projector_pattern: str
    vision_tower_pattern: str
    vision_tower_modules: tuple[str, ...]
    projector_modules: tuple[str, ...]
    # Qwen2-VL's M-RoPE: image tokens get 3-D (temporal, height, width) positions, so a padding-free batch needs
    # them per row (vlm_recipes.data.packing); other families use 1-D positions.
    resolution_controls: tuple[str, ...] = ()
    set_resolution: Callable | None = None
    resolution_help: str = ""
    model_settings: Callable | None = None
    video_resolution_controls: tuple[str, ...] = ()
    pixel_layout: str = "images"
    image_processor_classes: tuple[str, ...] = ()
    packed_positions: Callable | None = None
    packing_exact: bool = False
    packing_refusal: str = ""
    video_time_scale: Callable | None = None
    template_patches: tuple[tuple[str, str], ...] = ()
    checkpoints: tuple[str, ...] = ()
    box_formats: tuple[tuple[str, str], ...] = ()
    checkpoint_types: tuple[tuple[str, str], ...] = ()
    claims_processor: Callable | None = None
    thinking: bool = False
    token_types_input: str = "mm_token_type_ids"
    untrained_modules: tuple[str, ...] = ()
    eager_sub_configs: tuple[str, ...] = ()

    def box_format_for(self, model_type: str) -> str | None:
        """The box convention `model_type` was pre-trained on, or None when it has none."""
        return dict(self.box_formats).get(model_type)

    def patch_template(self, template):
        """`template` (text) with this family's `template_patches` applied (each only where it is not applied yet)."""
        if not isinstance(template, str):
            return template
        for old, new in self.template_patches:
            if new not in template:
                template = template.replace(old, new)
        return template

    def untrained(self, name: str) -> bool:
        """Whether a module or parameter name lies in a part no recipe trains (`untrained_modules`)."""
        return any(re.match(rf"{pattern}(\.|$)", name) for pattern in self.untrained_modules)

    def part_of(self, name: str) -> str:
        """Which part of the model a parameter belongs to: 'projector', 'vision_tower' or 'language_model'."""
        if re.search(self.projector_pattern, name):
            return "projector"
        if re.search(self.vision_tower_pattern, name):
            return "vision_tower"
        return "language_model"

    def stop_token_ids(self, tokenizer) -> list[int]:
        """The tokens generation stops at: the tokenizer's eos and the family's end-of-turn token (the one training
        teaches the answer to end with; Gemma's `<end_of_turn>` is not its eos)."""
        ids = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(self.end_of_turn)]
        return [i for k, i in enumerate(ids) if i is not None and i not in ids[:k]]

    def image_token_ids(self, tokenizer) -> list[int]:
        vocab = tokenizer.get_vocab()
        ids = {vocab[tok] for tok in self.image_tokens if tok in vocab}
        for pattern in self.image_token_patterns:
            ids.update(i for tok, i in vocab.items() if re.fullmatch(pattern, tok))
        return sorted(ids)


def set_pixel_bounds(part, min_pixels: int | None, max_pixels: int | None, prefix: str = "") -> None:
    """Qwen2-VL's pixel bounds on an image or video processor (`part`), in place (None: unchanged): they live in
    `size` (shortest_edge / longest_edge) and, in older processors, in attributes as well. `prefix` names the YAML
    fields in the error (`video_` for the video processor)."""
    size = dict(part.size)
    if min_pixels is not None:
        size["shortest_edge"] = min_pixels
    if max_pixels is not None:
        size["longest_edge"] = max_pixels
    if size["shortest_edge"] > size["longest_edge"]:
        raise ValueError(
            f"{prefix}min_pixels ({size['shortest_edge']}) is larger than {prefix}max_pixels ({size['longest_edge']})."
        )
    part.size = size
    for attr, key in (("min_pixels", "shortest_edge"), ("max_pixels", "longest_edge")):
        if hasattr(part, attr):
            setattr(part, attr, size[key])


def _qwen2_vl_resolution(processor, min_pixels: int | None = None, max_pixels: int | None = None) -> None:
    set_pixel_bounds(processor.image_processor, min_pixels, max_pixels)


def _smolvlm_resolution(processor, longest_edge: int | None = None, image_splitting: bool | None = None) -> None:
    ip = processor.image_processor
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


def _anyres_resolution(processor, max_image_tiles: int | None = None) -> None:
    """Anyres (LLaVA-OneVision, LLaVA-NeXT): an image is resized to the best-fitting grid of `image_grid_pinpoints`
    (each a multiple of the vision tower's tile) and encoded as that many tiles plus one base image. `max_image_tiles`
    keeps the grids of at most that many tiles, and caps OneVision's `anyres_max_<n>` (the number of tiles' worth of
    features kept before they are scaled down) at it too."""
    if max_image_tiles is None:
        return
    ip = processor.image_processor
    tile = ip.size.get("height") or ip.size.get("shortest_edge")
    kept = [[h, w] for h, w in ip.image_grid_pinpoints if (h // tile) * (w // tile) <= max_image_tiles]
    if max_image_tiles < 1 or not kept:
        smallest = min((h // tile) * (w // tile) for h, w in ip.image_grid_pinpoints)
        raise ValueError(
            f"max_image_tiles ({max_image_tiles}) leaves no grid of the processor's image_grid_pinpoints (the "
            f"smallest has {smallest} tile(s) of {tile} px): set it to {smallest} or more."
        )
    ip.image_grid_pinpoints = kept
    aspect = getattr(processor, "vision_aspect_ratio", None)
    if aspect is not None:
        processor.vision_aspect_ratio = f"anyres_max_{min(max_image_tiles, int(aspect.removeprefix('anyres_max_')))}"


def _anyres_settings(processor) -> dict:
    settings = {"image_grid_pinpoints": processor.image_processor.image_grid_pinpoints}
    if getattr(processor, "vision_aspect_ratio", None) is not None:
        settings["vision_aspect_ratio"] = processor.vision_aspect_ratio
    return settings


SMOLVLM = Family(
    name="smolvlm",
    label="SmolVLM",
    model_types=("smolvlm", "idefics3"),
    processor_classes=("SmolVLMProcessor", "Idefics3Processor"),
    image_tokens=("<image>", "<fake_token_around_image>", "<global-img>", "<video>"),
    image_token_patterns=(r"<row_\d+_col_\d+>",),
    end_of_turn="<end_of_utterance>",
    projector_pattern=r"(^|\.)connector\.",
    vision_tower_pattern=r"(^|\.)vision_model\.",
    vision_tower_modules=(r"(.*\.)?vision_model",),
    projector_modules=(r"(.*\.)?connector",),
    resolution_controls=("longest_edge", "image_splitting"),
    set_resolution=_smolvlm_resolution,
    resolution_help="SmolVLM resizes the longest edge and optionally splits the image into tiles",
    pixel_layout="tiles",
    # SmolVLMImageProcessor is generated from Idefics3's (transformers' modular files): the same processing.
    image_processor_classes=("Idefics3ImageProcessor", "SmolVLMImageProcessor"),
    checkpoints=("HuggingFaceTB/SmolVLM",),
    # SmolVLM has no documented grounding format: ours (0-100 grid, vlm_recipes/grounding/boxes.py) is its default.
    box_formats=(("smolvlm", "smolvlm"), ("idefics3", "smolvlm")),
    checkpoint_types=(("HuggingFaceTB/SmolVLM2", "smolvlm"), ("HuggingFaceTB/SmolVLM", "idefics3")),
    packing_exact=True,
    # TRL's SmolVLM template (and its training variant) writes no video placeholder; transformers'
    # `SmolVLMProcessor.apply_chat_template` swaps in a template with a `<video>` branch when a conversation holds a
    # video. The same branch is added to whichever SmolVLM template is used, so video and image rows render alike.
    template_patches=(
        (
            "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}",
            "{% elif line['type'] == 'image' %}{{ '<image>' }}{% elif line['type'] == 'video' %}{{ '<video>' }}"
            "{% endif %}",
        ),
    ),
)

QWEN2_VL = Family(
    name="qwen2_vl",
    label="Qwen2-VL",
    model_types=("qwen2_vl",),
    processor_classes=("Qwen2VLProcessor",),
    image_tokens=("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"),
    image_token_patterns=(),
    end_of_turn="<|im_end|>",
    projector_pattern=r"(^|\.)visual\.merger\.",
    vision_tower_pattern=r"(^|\.)visual\.",
    vision_tower_modules=(r"(.*\.)?visual",),  # holds the merger too: quantizing the tower leaves it out
    projector_modules=(r"(.*\.)?visual\.merger",),
    resolution_controls=("min_pixels", "max_pixels"),
    set_resolution=_qwen2_vl_resolution,
    resolution_help="Qwen2-VL resizes every image so that its pixel count lies in [min_pixels, max_pixels]",
    video_resolution_controls=("video_min_pixels", "video_max_pixels"),
    pixel_layout="patches",
    image_processor_classes=("Qwen2VLImageProcessor",),
    checkpoints=("Qwen/Qwen2-VL",),
    # <|box_start|>(x1,y1),(x2,y2)<|box_end|> on a 0-1000 grid (the model card / technical report;
    # vlm_recipes/grounding/boxes.py).
    box_formats=(("qwen2_vl", "qwen2-vl"),),
    checkpoint_types=(("Qwen/Qwen2-VL", "qwen2_vl"),),
    packed_positions=mrope_positions,
    packing_exact=True,
)

# LLaVA: a vision tower (`vision_tower`), a two-layer MLP projector (`multi_modal_projector`) and a language model
# (`language_model`); the image placeholder `<image>` is expanded to one token per image feature. Padding-free
# batches are refused: a row's loss differs from the row run alone (measured 0.23).
_LLAVA_PARTS = dict(
    packing_refusal="a row's loss in a padding-free batch differs from the row run alone (measured 0.23)",
    projector_pattern=r"(^|\.)(multi_modal_projector\.|image_newline$)",  # OneVision's row separator: projector side
    vision_tower_pattern=r"(^|\.)vision_tower\.",
    vision_tower_modules=(r"(.*\.)?vision_tower",),
    projector_modules=(r"(.*\.)?multi_modal_projector",),
)

LLAVA = Family(
    name="llava",
    label="LLaVA-1.5",
    model_types=("llava",),
    processor_classes=("LlavaProcessor",),
    image_tokens=("<image>",),
    image_token_patterns=(),
    end_of_turn="</s>",  # Vicuna's eos; our training template ends an assistant turn with it (chat_templates/)
    checkpoints=("llava-hf/llava-1.5",),
    **_LLAVA_PARTS,
    resolution_help="LLaVA-1.5 resizes and crops every image to the vision tower's fixed size (336 px: 576 image "
    "tokens); it has no resolution control",
)

LLAVA_ONEVISION = Family(
    name="llava_onevision",
    label="LLaVA-OneVision",
    model_types=("llava_onevision",),
    processor_classes=("LlavaOnevisionProcessor",),
    image_tokens=("<image>", "<video>"),
    image_token_patterns=(),
    end_of_turn="<|im_end|>",
    checkpoints=("llava-hf/llava-onevision",),
    **_LLAVA_PARTS,
    resolution_controls=("max_image_tiles",),
    set_resolution=_anyres_resolution,
    resolution_help="LLaVA-OneVision encodes an image as a base image plus the tiles of its best-fitting grid "
    "(anyres, image_grid_pinpoints: up to 6x6 tiles of 384 px, features of at most 9 tiles kept)",
    model_settings=_anyres_settings,
)

LLAVA_NEXT = Family(
    name="llava_next",
    label="LLaVA-NeXT",
    model_types=("llava_next",),
    processor_classes=("LlavaNextProcessor",),
    image_tokens=("<image>",),
    image_token_patterns=(),
    end_of_turn="</s>",  # TRL's training template of LLaVA-NeXT (Mistral) ends an answer with it
    checkpoints=("llava-hf/llava-v1.6",),
    **_LLAVA_PARTS,
    resolution_controls=("max_image_tiles",),
    set_resolution=_anyres_resolution,
    resolution_help="LLaVA-NeXT encodes an image as a base image plus the tiles of its best-fitting grid (anyres, "
    "image_grid_pinpoints: up to 2x2 tiles of 336 px)",
    model_settings=_anyres_settings,
)

# --- Qwen2.5-VL (issue 28) ---


def _qwen2_5_vl_video_time_scale(config) -> float:
    """M-RoPE positions per second of video: the vision config's tokens_per_second (2 in Qwen2.5-VL checkpoints)."""
    return config.vision_config.tokens_per_second


# Its own architecture (Qwen2_5_VLForConditionalGeneration): a vision tower with window attention, full attention at
# `fullatt_block_indexes`, RMSNorm and SwiGLU; the language model and the processor's image layout are Qwen2-VL's, and
# so are its image positions (M-RoPE). Videos differ: temporal positions step by tokens_per_second x
# second_per_grid_ts (absolute time). Module names are Qwen2-VL's (`visual`, `visual.merger`).
QWEN2_5_VL = Family(
    name="qwen2_5_vl",
    label="Qwen2.5-VL",
    model_types=("qwen2_5_vl",),
    processor_classes=("Qwen2_5_VLProcessor",),
    image_tokens=QWEN2_VL.image_tokens,
    image_token_patterns=(),
    end_of_turn="<|im_end|>",
    projector_pattern=QWEN2_VL.projector_pattern,
    vision_tower_pattern=QWEN2_VL.vision_tower_pattern,
    vision_tower_modules=QWEN2_VL.vision_tower_modules,
    projector_modules=QWEN2_VL.projector_modules,
    resolution_controls=("min_pixels", "max_pixels"),
    set_resolution=_qwen2_vl_resolution,
    resolution_help="Qwen2.5-VL resizes every image so that its pixel count lies in [min_pixels, max_pixels]",
    video_resolution_controls=("video_min_pixels", "video_max_pixels"),
    pixel_layout="patches",
    image_processor_classes=("Qwen2VLImageProcessor",),
    checkpoints=("Qwen/Qwen2.5-VL",),
    # JSON bbox_2d in absolute pixels of the image after the processor's resize (Qwen's process_bbox notebook and
    # maintainers; vlm_recipes/grounding/boxes.py).
    box_formats=(("qwen2_5_vl", "qwen2.5-vl"),),
    checkpoint_types=(("Qwen/Qwen2.5-VL", "qwen2_5_vl"),),
    packed_positions=mrope_positions,
    packing_exact=True,
    video_time_scale=_qwen2_5_vl_video_time_scale,
)

# --- Qwen3-VL (issue 28) ---
# Qwen3VLForConditionalGeneration: Qwen2-VL's layout of image inputs (patches of 16 px, 2x2 merged, `image_grid_thw`)
# and the same M-RoPE positions per row (get_rope_index, modeling_qwen3_vl.py), with the frequencies interleaved over
# (t, h, w) instead of in contiguous sections; DeepStack adds vision features to the first LLM layers at the image
# positions (position-free). Packing: exact (tests/test_packing.py). Video: per temporal patch a text timestamp and a
# <|vision_start|>...<|vision_end|> block (transformers 5.23's processor); packing refuses video rows for every family.
QWEN3_VL = Family(
    name="qwen3_vl",
    label="Qwen3-VL",
    model_types=("qwen3_vl",),
    processor_classes=("Qwen3VLProcessor",),
    image_tokens=("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"),
    image_token_patterns=(),
    end_of_turn="<|im_end|>",
    projector_pattern=r"(^|\.)visual\.(merger|deepstack_merger_list)\.",
    vision_tower_pattern=r"(^|\.)visual\.",
    vision_tower_modules=(r"(.*\.)?visual",),  # holds the mergers too: quantizing the tower leaves them out
    projector_modules=(r"(.*\.)?visual\.merger", r"(.*\.)?visual\.deepstack_merger_list"),
    resolution_controls=("min_pixels", "max_pixels"),
    set_resolution=_qwen2_vl_resolution,
    resolution_help="Qwen3-VL resizes every image so that its pixel count lies in [min_pixels, max_pixels] (one token "
    "per 32x32 pixels)",
    # Qwen3VLVideoProcessor bounds the pixels of a whole clip (frames x height x width), not of one frame.
    video_resolution_controls=("video_min_pixels", "video_max_pixels"),
    pixel_layout="patches",
    image_processor_classes=("Qwen2VLImageProcessor",),
    checkpoints=("Qwen/Qwen3-VL",),
    # JSON bbox_2d on a 0-1000 grid of the image, whatever the resize (QwenLM/Qwen3-VL README; vlm_recipes/grounding).
    box_formats=(("qwen3_vl", "qwen3-vl"),),
    checkpoint_types=(("Qwen/Qwen3-VL", "qwen3_vl"),),
    packed_positions=mrope_positions,
    packing_exact=True,
)


# --- Qwen3.5 (issue 28) ---
def _is_qwen3_5_processor(processor) -> bool:
    """A `Qwen3VLProcessor` of a Qwen3.5 (3.6, 3.8) checkpoint rather than a Qwen3-VL one: Qwen3.5's tokenizer class
    (`Qwen3_5Tokenizer`, named by their tokenizer_config.json; Qwen3-VL's is `Qwen2Tokenizer`), or, loaded under
    another class, Qwen3.5's vocabulary (248,077 tokens; Qwen3-VL's 151,669)."""
    tokenizer = getattr(processor, "tokenizer", None)
    return type(tokenizer).__name__ == "Qwen3_5Tokenizer" or tokenizer is not None and len(tokenizer) > 200_000


# Measured by tests/test_family_qwen3_5.py: a padding-free batch of 5 rows (exact per-row M-RoPE positions) against
# each row run alone, random tiny model, float32.
QWEN3_5_PACKING_REFUSAL = (
    "transformers 5.23 does not restart the Gated DeltaNet layers' recurrent state or their 4-token conv window at "
    "row boundaries (their CPU kernels take no sequence boundaries), so every row reads the rows before it: measured, "
    "each row after the first differs from the row run alone by 0.04 to 0.06 in summed loss (the first row and, with "
    "the DeltaNet layers run row by row, every row match within 1e-5). Exact packing would need "
    "flash-linear-attention's kernel given cu_seqlens and causal-conv1d's given seq_idx, which transformers 5.23 does "
    "not pass"
)

QWEN3_5 = Family(
    name="qwen3_5",
    label="Qwen3.5",
    model_types=("qwen3_5",),
    processor_classes=("Qwen3VLProcessor",),  # Qwen3.5 has no processor of its own: `claims_processor` tells
    image_tokens=("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"),
    image_token_patterns=(),
    end_of_turn="<|im_end|>",
    projector_pattern=r"(^|\.)visual\.merger\.",
    vision_tower_pattern=r"(^|\.)visual\.",
    vision_tower_modules=(r"(.*\.)?visual",),
    projector_modules=(r"(.*\.)?visual\.merger",),
    resolution_controls=("min_pixels", "max_pixels"),
    set_resolution=_qwen2_vl_resolution,
    resolution_help="Qwen3.5 resizes every image so that its pixel count lies in [min_pixels, max_pixels] (one "
    "token per 32x32 pixels)",
    pixel_layout="patches",
    packed_positions=mrope_positions,  # the same per-row M-RoPE rule (get_rope_index); the DeltaNet layers leak
    packing_refusal=QWEN3_5_PACKING_REFUSAL,
    checkpoints=("Qwen/Qwen3.5", "Qwen/Qwen3.6", "Qwen/Qwen3.8"),
    checkpoint_types=(("Qwen/Qwen3.5", "qwen3_5"), ("Qwen/Qwen3.6", "qwen3_5"), ("Qwen/Qwen3.8", "qwen3_5")),
    # Qwen3-VL's convention: JSON bbox_2d on a 0-1000 grid ("grounding coordinates should still be relative coordinates
    # normalized to [0, 1000]", a Qwen maintainer on Qwen3.8, QwenLM/Qwen3.8-Flash-Next#4; no cookbook literal found).
    box_formats=(("qwen3_5", "qwen3-vl"),),
    claims_processor=_is_qwen3_5_processor,
    thinking=True,
)


# --- Gemma 3 (issue 29) ---
def _gemma3_resolution(processor, image_splitting: bool | None = None) -> None:
    """Gemma 3's pan-and-scan crops (`image_splitting`): besides the whole image, up to
    `pan_and_scan_max_num_crops` crops of a long image, each encoded like an image (`mm_tokens_per_image` tokens).
    Gemma3Processor passes its own class defaults (pan-and-scan off, crops of at least 256 px) to the image processor
    on every call, over the image processor's settings; the processor instance's defaults are set here instead,
    with the crop settings of its image processor where that has them (the tiny model's crops are scaled to 64 px).
    The saved processor does not keep this: set image_splitting again wherever the model is loaded."""
    if image_splitting is None:
        return
    ip = processor.image_processor
    defaults = dict(type(processor).images_kwargs)
    for key in ("pan_and_scan_min_crop_size", "pan_and_scan_max_num_crops", "pan_and_scan_min_ratio_to_activate"):
        if getattr(ip, key, None) is not None:
            defaults[key] = getattr(ip, key)
    ip.do_pan_and_scan = image_splitting
    processor.images_kwargs = {**defaults, "do_pan_and_scan": image_splitting}


GEMMA3 = Family(
    name="gemma3",
    label="Gemma 3",
    model_types=("gemma3",),
    processor_classes=("Gemma3Processor",),
    # An image is "\n\n<start_of_image>" + mm_tokens_per_image soft tokens + "<end_of_image>\n\n"; the template
    # writes <start_of_image> as the placeholder (Gemma3Processor.image_token).
    image_tokens=("<start_of_image>", "<end_of_image>", "<image_soft_token>"),
    image_token_patterns=(),
    end_of_turn="<end_of_turn>",
    projector_pattern=r"(^|\.)multi_modal_projector\.",
    vision_tower_pattern=r"(^|\.)vision_tower\.",
    vision_tower_modules=(r"(.*\.)?vision_tower",),
    projector_modules=(r"(.*\.)?multi_modal_projector",),
    resolution_controls=("image_splitting",),
    set_resolution=_gemma3_resolution,
    resolution_help="Gemma 3 resizes every image to the vision tower's fixed square (896 px: 256 tokens) and can "
    "add pan-and-scan crops of long images (image_splitting), each 256 tokens more",
    checkpoints=("google/gemma-3-",),
    checkpoint_types=(("google/gemma-3-", "gemma3"),),
    token_types_input="token_type_ids",
    packing_refusal="transformers 5.23 looks up the image blocks of a padding-free batch's sliding-window layers by "
    "each row's own positions, not by place in the sequence, so a row's image tokens get another row's bidirectional "
    "mask there (measured on the tiny model: 0.1 nats per trained token off the row run alone, for the second row of "
    "two)",
)


# --- Gemma 4 (issue 29) ---
GEMMA4_PACKING_REFUSAL = (
    "transformers 5.23 builds a padding-free batch's sliding-window masks of the checkpoints with bidirectional image "
    "attention (use_bidirectional_attention: vision, the 31B and 26B-A4B) from each row's own positions, so a row's "
    "image tokens get another row's image blocks there (measured on the tiny model: 0.072 nats per trained token off "
    "the row run alone, for the second row of two); the E-sizes, causal over images, gave equal per-row losses there, "
    "but exactness is recorded per family, not per checkpoint, and their gradients are not proven"
)


GEMMA4 = Family(
    name="gemma4",
    label="Gemma 4",
    model_types=("gemma4",),
    processor_classes=("Gemma4Processor",),
    # An image is "<|image>" + its soft tokens + "<image|>" (the template writes "<|image|>", the processor expands
    # it); a video frame the same with "<|video|>"; audio "<|audio>" + "<|audio|>"... + "<audio|>" (never trained).
    image_tokens=("<|image>", "<|image|>", "<image|>", "<|video|>", "<|audio>", "<|audio|>", "<audio|>"),
    image_token_patterns=(),
    end_of_turn="<turn|>",
    projector_pattern=r"(^|\.)embed_vision\.",
    vision_tower_pattern=r"(^|\.)vision_tower\.",
    vision_tower_modules=(r"(.*\.)?vision_tower",),
    projector_modules=(r"(.*\.)?embed_vision",),
    resolution_help="Gemma 4 resizes every image (aspect ratio kept) to fit its processor's soft-token budget "
    "(max_soft_tokens: 70, 140, 280, 560 or 1120 tokens; 280 in the checkpoints' processor config), which no "
    "vlm-recipes control sets yet",
    checkpoints=("google/gemma-4-",),
    checkpoint_types=(("google/gemma-4-", "gemma4"),),
    # Gemma4Model reads `mm_token_type_ids` (1 image, 2 video, 3 audio): the processor's own name.
    token_types_input="mm_token_type_ids",
    untrained_modules=(r"(.*\.)?audio_tower", r"(.*\.)?embed_audio"),
    eager_sub_configs=("audio_config",),
    packing_refusal=GEMMA4_PACKING_REFUSAL,
)

FAMILIES = (SMOLVLM, QWEN2_VL, LLAVA, LLAVA_ONEVISION, LLAVA_NEXT, QWEN2_5_VL, QWEN3_VL, QWEN3_5, GEMMA3, GEMMA4)


def family_for_model_type(model_type: str) -> Family:
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    known = sorted(t for f in FAMILIES for t in f.model_types)
    raise ValueError(f"Unsupported model_type {model_type!r}: vlm-recipes supports {known}.")


def family_of_checkpoint(hub_id: str) -> Family:
    """The family of a real checkpoint by its Hub id (`Family.checkpoints`, longest matching prefix)."""
    matches = [(len(p), f) for f in FAMILIES for p in f.checkpoints if hub_id.startswith(p)]
    if not matches:
        known = sorted(p for f in FAMILIES for p in f.checkpoints)
        raise ValueError(f"No model family lists checkpoint {hub_id!r}; known prefixes: {known}.")
    return max(matches, key=lambda m: m[0])[1]


def model_type_of_checkpoint(hub_id: str) -> str | None:
    """The model_type of a real checkpoint by its Hub id (`Family.checkpoint_types`, longest matching prefix), or
    None when no family lists it."""
    matches = [(len(p), t) for f in FAMILIES for p, t in f.checkpoint_types if hub_id.startswith(p)]
    return max(matches)[1] if matches else None


def family_of(processor_or_model) -> Family:
    """The family of a processor (by class name; `Family.claims_processor` where families share one) or a
    model/config (by model_type)."""
    config = getattr(processor_or_model, "config", processor_or_model)
    model_type = getattr(config, "model_type", None)
    if model_type:
        return family_for_model_type(model_type)
    cls = type(processor_or_model).__name__
    listing = [f for f in FAMILIES if cls in f.processor_classes]
    claimed = [f for f in listing if f.claims_processor is not None and f.claims_processor(processor_or_model)]
    rest = [f for f in listing if f.claims_processor is None]
    if claimed or rest:
        return (claimed or rest)[0]
    names = ", ".join(f.label for f in FAMILIES)
    raise ValueError(f"Cannot tell the model family of {cls}; supported: {names}.")


# The processor attribute that carries the template variables of a run (not saved with the processor: transformers
# saves only its constructor's arguments).
_TEMPLATE_VARIABLES = "vlm_recipes_template_variables"


def set_thinking(processor, enable_thinking: bool | None = None) -> None:
    """The model config's `enable_thinking` (None: the family's default, false) on the processor, in place: every
    prompt our code renders (training, generation, GRPO, preflight) then passes it to the chat template. A family
    whose template has no thinking switch refuses it."""
    family = family_of(processor)
    if not family.thinking:
        if enable_thinking is not None:
            owners = ", ".join(f.label for f in FAMILIES if f.thinking)
            raise ValueError(
                f"enable_thinking is a setting of {owners} chat templates; {family.label}'s has no thinking switch: "
                "remove it."
            )
        return
    setattr(processor, _TEMPLATE_VARIABLES, {"enable_thinking": bool(enable_thinking)})


def template_variables(processor) -> dict:
    """The variables every render of `processor`'s chat template gets: `{"enable_thinking": ...}` for a family with
    a thinking switch (false unless `set_thinking` said true), else none."""
    if hasattr(processor, _TEMPLATE_VARIABLES):
        return dict(getattr(processor, _TEMPLATE_VARIABLES))
    return {"enable_thinking": False} if family_of(processor).thinking else {}


def set_video_resolution(processor, video_min_pixels: int | None = None, video_max_pixels: int | None = None) -> None:
    """Per-frame pixel bounds of the processor's video processor (None: unchanged), set in place; a family without
    video resolution controls refuses them, naming it.

    The frames given are the frames used (`do_sample_frames=False` at call time). Qwen2-VL's video processor can
    also shrink frames to fit a whole-video token budget (`cap_pixels_per_frame`, after qwen-vl-utils); it is turned
    off here so that the per-frame bounds of the YAML are the ones applied (and transformers' warning about the
    default changing is answered).
    """
    vp = getattr(processor, "video_processor", None)
    given = video_min_pixels is not None or video_max_pixels is not None
    if vp is None:
        if given:
            raise ValueError(
                f"{type(processor).__name__} has no video processor: this model family cannot take videos."
            )
        return
    if hasattr(vp, "cap_pixels_per_frame"):
        vp.cap_pixels_per_frame = False
    if not given:
        return
    family = family_of(processor)
    if not family.video_resolution_controls:
        owners = ", ".join(f.label for f in FAMILIES if f.video_resolution_controls)
        raise ValueError(
            f"video_min_pixels / video_max_pixels are {owners} settings; {family.label} ({type(vp).__name__}) sizes "
            "frames like its images: remove them."
        )
    set_pixel_bounds(vp, video_min_pixels, video_max_pixels, prefix="video_")


def set_image_resolution(processor, **controls) -> None:
    """Apply the YAML's resolution controls (`min_pixels`, `max_pixels`, `longest_edge`, `image_splitting`,
    `max_image_tiles`; None: unset) to a processor in place.

    Each family honours its own controls (`Family.resolution_controls`): Qwen2-VL a pixel range, SmolVLM an edge and
    tiling, LLaVA-OneVision a cap on anyres tiles, LLaVA-1.5 none. A control that does not apply to the family raises,
    so a misplaced setting is never silently ignored.
    """
    family = family_of(processor)
    unknown = set(controls) - set(RESOLUTION_CONTROLS)
    if unknown:
        raise TypeError(f"Unknown resolution control(s) {sorted(unknown)}; known: {list(RESOLUTION_CONTROLS)}.")
    given = {name: value for name, value in controls.items() if value is not None}
    refused = [name for name in given if name not in family.resolution_controls]
    if refused:
        owners = sorted({f.label for f in FAMILIES for name in refused if name in f.resolution_controls})
        own = family.resolution_controls
        raise ValueError(
            f"{' / '.join(refused)}: {' / '.join(owners)} controls, not {family.label}'s. {family.resolution_help}"
            + (f"; use {' / '.join(own)}." if own else ": remove the setting.")
        )
    if given:
        family.set_resolution(processor, **given)


def model_type_of(name_or_path: str, load: bool = False) -> str | None:
    """The model_type of a model without loading its weights: a tiny model's family (`tiny:<family>...`), a local
    checkpoint's config.json, or a real checkpoint's Hub id (`Family.checkpoint_types`); with `load`, anything else
    by its config (transformers' AutoConfig: a Hub download, or a directory written since). None when it cannot be
    told."""
    tiny = "tiny:"  # the offline tiny models' prefix (sources.KNOWN_PREFIXES): `tiny:<family>[-<stage>]`
    if name_or_path.startswith(tiny):
        name = name_or_path.removeprefix(tiny).partition("-")[0]
        family = next((f for f in FAMILIES if f.name == name), None)
        return family.model_types[0] if family else None
    config = Path(name_or_path) / "config.json"
    if config.is_file():
        return json.loads(config.read_text()).get("model_type")
    known = model_type_of_checkpoint(name_or_path)
    if known or not load:
        return known
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(resolve(name_or_path)).model_type
    except (OSError, ValueError):
        return None


def check_box_format(data_args, model_args, load: bool = False) -> None:
    """Grounding answers in the convention the model family was pre-trained on (`Family.box_formats`), checked before
    the model loads: `box_format: auto` becomes it (in place); another convention is refused unless
    `box_format_override: true`, which in turn is refused when the convention is the family's own.

    When a recipe parses its config (`load` False) a model whose type cannot be told offline (a directory an earlier
    recipe has not written yet, a Hub id no family lists) is left to the run, which checks again with `load` True
    before the weights load, and refuses it then if its config cannot be read."""
    if data_args.box_format is None or model_args.model_name_or_path is None:
        return
    name = model_args.model_name_or_path
    model_type = model_type_of(name, load=load)
    if model_type is None and not load:
        logger.info("box_format %s: the model type of %s is checked when the run starts.", data_args.box_format, name)
        return
    family = next((f for f in FAMILIES if model_type in f.model_types), None) if model_type else None
    native = family.box_format_for(model_type) if family else None
    known = ", ".join(sorted({n for f in FAMILIES for _, n in f.box_formats}))
    if family is None:
        what = f"the model type of {name!r} cannot be told ({model_type or 'no readable config'})"
    else:
        what = f"{name} ({family.label}, {model_type})"
    if data_args.box_format == BOX_FORMAT_AUTO:
        if native is None:
            raise ValueError(
                f"box_format auto: {what} has no box format of its own; set box_format to a convention ({known}) "
                "and box_format_override: true."
            )
        data_args.box_format = native
        return
    if data_args.box_format == native:
        if data_args.box_format_override:
            raise ValueError(
                f"box_format_override: true, but box_format {native} is {family.label}'s own ({model_type}): remove "
                "box_format_override."
            )
        return
    if data_args.box_format_override:
        logger.warning(
            "box_format %s is not the format %s was pre-trained on (%s); trained anyway (box_format_override).",
            data_args.box_format,
            name,
            native or "none known",
        )
        return
    if native is None:
        raise ValueError(
            f"box_format {data_args.box_format}: {what} has no box format of its own; set box_format_override: true "
            "to train this convention anyway."
        )
    raise ValueError(
        f"box_format {data_args.box_format} is not the format {what} was pre-trained on: use box_format {native} "
        f"(or auto), or set box_format_override: true to train {data_args.box_format} anyway (the model then learns "
        "a new format)."
    )

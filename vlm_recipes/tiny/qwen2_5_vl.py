"""Tiny Qwen2.5-VL checkpoints, built offline like the others (tiny/vlm.py registers them as `tiny:qwen2_5_vl`).

The real classes, scaled down; what `Qwen/Qwen2.5-VL-3B-Instruct` has and the tiny one mirrors (facts and sources:
docs/families.md#qwen25-vl):

- `Qwen2_5_VLForConditionalGeneration`. Its vision tower differs from Qwen2-VL's: RMSNorm and a SwiGLU MLP
  (`gate_proj` / `up_proj` / `down_proj`, `hidden_act` silu) in every block, and window attention (windows of
  `window_size` pixels, i.e. window_size / patch / merge merged tokens per side) everywhere except the blocks at
  `fullatt_block_indexes`, which attend over the whole image. Real: 32 blocks of 1280, full attention at 7/15/23/31,
  windows of 112 px (4x4 merged tokens). Tiny: 4 blocks of 128, full attention at 1 and 3 (the same window, window,
  window, full period shortened to window, full), windows of 56 px (2x2 merged tokens): a 112x112 image is four
  windows.
- The language model with M-RoPE `mrope_section` [4, 6, 6] (real [16, 24, 24], the same 1:1.5:1.5 split of the
  rotary frequencies over time, height, width), not interleaved; `tokens_per_second` 2 as the real one: a video's
  temporal positions step by tokens_per_second x second_per_grid_ts (absolute time), an image's by 1.
- `Qwen2_5_VLProcessor` with `Qwen2VLImageProcessor` / `Qwen2VLVideoProcessor` (min_pixels = max_pixels = 112x112
  here: an 8x8 patch grid, 16 image tokens), the real tokenizer class `Qwen2Tokenizer` (byte-level BPE with NFC and
  Qwen's pre-tokenizer regex) over a vocabulary trained locally, with the real special tokens, and TRL's copy of the
  real chat template (`qwen2_5_vl.jinja`; Qwen2-VL ships the same bytes).
"""

from __future__ import annotations

from .common import train_qwen_bpe

_VISION_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
# In the real vocabulary; Qwen2.5-VL's own box format (JSON bbox_2d) no longer uses them, Qwen2-VL's did.
_BOX_TOKENS = ["<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>"]
_BOX_TOKENS += ["<|quad_start|>", "<|quad_end|>"]

SPEC = {
    "vocab_size": 640,
    "text": {
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    },
    # head_dim / 2 = 16 rotary frequencies over (time, height, width)
    "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]},
    "vision": {
        "depth": 4,
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_heads": 4,
        "out_hidden_size": 128,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 56,
        "fullatt_block_indexes": [1, 3],
        "tokens_per_second": 2,
        "hidden_act": "silu",
    },
    # 112x112 pixels -> 8x8 patches of 14 px -> 16 image tokens after the 2x2 merge.
    "min_pixels": 112 * 112,
    "max_pixels": 112 * 112,
}

SPECIAL_TOKENS = {
    "bos": None,
    "eos": "<|im_end|>",
    "pad": "<|endoftext|>",
    "extra": ["<|im_start|>", *_VISION_TOKENS, *_BOX_TOKENS],
}


def build_tokenizer(corpus: list[str], vocab_size: int, special_tokens: dict = SPECIAL_TOKENS):
    """The real tokenizer class (`Qwen2Tokenizer`: byte-level BPE, NFC, Qwen's pre-tokenizer regex, which keeps a run
    of newlines together) with a vocabulary and merges trained here on `corpus`, and the real special tokens."""
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    return train_qwen_bpe(Qwen2Tokenizer, PRETOKENIZE_REGEX, corpus, vocab_size, special_tokens)


def qwen2_5_vl_processor(tokenizer, min_pixels: int, max_pixels: int):
    """The real Qwen2.5-VL processor classes at these pixel bounds, with `tokenizer` and TRL's real chat template."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor
    from trl.chat_template_utils import qwen2_5_vl_chat_template

    pixels = {"min_pixels": min_pixels, "max_pixels": max_pixels}
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**pixels),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**pixels),
        chat_template=qwen2_5_vl_chat_template,
    )


def check_rope(config) -> None:
    """M-RoPE sections must cover head_dim / 2 exactly (transformers does not check it)."""
    text = config.text_config
    head_dim = text.hidden_size // text.num_attention_heads
    if sum(text.rope_parameters["mrope_section"]) != head_dim // 2:
        raise ValueError(f"mrope_section {text.rope_parameters['mrope_section']} must sum to {head_dim // 2}.")


def model_config(spec: dict, tokenizer, text_ids: dict, tie_word_embeddings: bool = False):
    """`Qwen2_5_VLConfig` from a spec (`SPEC`, or a real-size one) and the tokenizer's special-token ids."""
    from transformers import Qwen2_5_VLConfig

    conv = tokenizer.convert_tokens_to_ids
    text = dict(bos_token_id=None, rope_parameters=dict(spec["rope_parameters"]), **text_ids, **spec["text"])
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config=dict(spec["vision"], out_hidden_size=spec["text"]["hidden_size"]),
        image_token_id=conv("<|image_pad|>"),
        video_token_id=conv("<|video_pad|>"),
        vision_start_token_id=conv("<|vision_start|>"),
        vision_end_token_id=conv("<|vision_end|>"),
        tie_word_embeddings=tie_word_embeddings,
    )
    check_rope(config)
    return config


def _processor(spec: dict, tokenizer):
    return qwen2_5_vl_processor(tokenizer, spec["min_pixels"], spec["max_pixels"])


def _model(spec: dict, tokenizer, ids: dict):
    from transformers import Qwen2_5_VLForConditionalGeneration

    text_ids = dict(
        vocab_size=len(tokenizer), max_position_embeddings=4096, eos_token_id=ids["eos"], pad_token_id=ids["pad"]
    )
    return Qwen2_5_VLForConditionalGeneration(model_config(spec, tokenizer, text_ids))


def tiny_family(spec: dict, special_tokens: dict, record: type):
    """The `TinyFamily` record (vlm_recipes.tiny.vlm) of Qwen2.5-VL."""
    return record(
        spec,
        special_tokens,
        _processor,
        _model,
        lambda corpus, vocab_size: build_tokenizer(corpus, vocab_size, special_tokens),
    )

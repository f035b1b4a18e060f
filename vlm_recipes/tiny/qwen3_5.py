"""Tiny Qwen3.5 checkpoints (`tiny:qwen3_5`), built offline like the others (tiny/vlm.py), from the real classes.

`Qwen3_5ForConditionalGeneration` is the one architecture of the Qwen3.5, Qwen3.6 and Qwen3.8 checkpoints
(`Qwen/Qwen3.5-0.8B`, `Qwen/Qwen3.5-4B`, ...). What the tiny model keeps of `Qwen/Qwen3.5-0.8B` (its config.json:
24 text layers of width 1024, sources in docs/families.md), at widths of 128 (multiples of 64, for bitsandbytes'
4-bit CPU kernels):

- the hybrid text stack: `layer_types` = 3 x `linear_attention` (Gated DeltaNet: a causal depthwise conv of kernel 4
  over q/k/v, a gated delta-rule recurrent state, grouped value heads 4 over key heads 2; real 16 / 16) then 1 x
  `full_attention` (gated attention: the query projection also yields a sigmoid output gate, q/k RMSNorm, head_dim
  64, real 256): one period of the real 3:1 pattern (`full_attention_interval` 4);
- partial rotary (`partial_rotary_factor` 0.25 of head_dim) with interleaved M-RoPE sections [3, 3, 2] (real
  [11, 11, 10]) over the 8 rotary frequencies;
- the Qwen3-VL vision tower (patch 16, 2x2 merge, learned position grid of 8x8 = 64 bilinearly resampled, real 48x48)
  without DeepStack (`deepstack_visual_indexes` [] as in every Qwen3.5 checkpoint), 2 blocks (real 12);
- the real processor classes: `Qwen3VLProcessor` (Qwen3.5 has none of its own) with `Qwen2VLImageProcessor` (mean/std
  0.5) and `Qwen3VLVideoProcessor`, and the real tokenizer class `Qwen3_5Tokenizer` (byte-level BPE, NFC, its own
  pre-tokenizer regex) with a vocabulary trained here, the real special tokens and `<think>` / `</think>` /
  `<tool_call>` / `</tool_call>` as added tokens that are not special (as in the real vocabulary: decoding with
  `skip_special_tokens` keeps them);
- the chat template `Qwen/Qwen3.5-0.8B` ships: TRL's `qwen3_5_nothink` (2B and smaller; 4B and larger ship
  `qwen3_5_think`, which differs only in the default of `enable_thinking`).

Every image is resized to 128x128 pixels: an 8x8 patch grid, 16 image tokens after the 2x2 merge, like tiny Qwen2-VL.
"""

from __future__ import annotations

from .common import train_qwen_bpe

# The width of the tiny text model and its vision tower; the layer pattern of the real checkpoints.
SPEC = {
    "vocab_size": 640,
    "text": {
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "layer_types": ["linear_attention"] * 3 + ["full_attention"],
        "linear_conv_kernel_dim": 4,
        "linear_key_head_dim": 32,
        "linear_value_head_dim": 32,
        "linear_num_key_heads": 2,
        "linear_num_value_heads": 4,
    },
    # rotary dim = 0.25 x 64 = 16: 8 frequencies, interleaved over (time, height, width).
    "rope_parameters": {
        "rope_type": "default",
        "rope_theta": 10000.0,
        "mrope_section": [3, 3, 2],
        "mrope_interleaved": True,
        "partial_rotary_factor": 0.25,
    },
    "vision": {
        "depth": 2,
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_heads": 4,
        "patch_size": 16,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "out_hidden_size": 128,
        "num_position_embeddings": 64,
        "hidden_act": "gelu_pytorch_tanh",
    },
    "pixels": 128 * 128,
}

_VISION = ["<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
_BOXES = [
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
]
# eos / pad as the real tokenizer sets them (`<|im_end|>` ends a turn, `<|endoftext|>` pads); no bos.
SPECIAL_TOKENS = {
    "bos": None,
    "eos": "<|im_end|>",
    "pad": "<|endoftext|>",
    "extra": ["<|im_start|>", *_VISION, *_BOXES],
}
# Added tokens that are not special in the real vocabulary; the template writes <think> / </think> itself.
PLAIN_ADDED = ["<think>", "</think>", "<tool_call>", "</tool_call>"]


def build_tokenizer(corpus: list[str], vocab_size: int):
    """`Qwen3_5Tokenizer` (the class `Qwen/Qwen3.5-0.8B`'s tokenizer_config.json names) over a byte-level BPE trained
    on `corpus` with the real normalizer (NFC) and pre-tokenizer regex, plus the family's special tokens and the
    plain added ones."""
    from transformers import Qwen3_5Tokenizer
    from transformers.models.qwen3_5.tokenization_qwen3_5 import PRETOKENIZE_REGEX

    return train_qwen_bpe(Qwen3_5Tokenizer, PRETOKENIZE_REGEX, corpus, vocab_size, SPECIAL_TOKENS, PLAIN_ADDED)


def processor(tokenizer, image_size: dict, video: dict, chat_template: str | None = None):
    """The real processor classes around `tokenizer`: `Qwen3VLProcessor` with `Qwen2VLImageProcessor` (`size` =
    shortest_edge / longest_edge pixel bounds, mean/std 0.5, patch 16) and `Qwen3VLVideoProcessor` (`video`: its
    size, fps and frame bounds), and TRL's copy of the NoThink template (default)."""
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor
    from trl.chat_template_utils import qwen3_5_nothink_chat_template

    half = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "patch_size": 16}
    return Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=image_size, **half),
        tokenizer=tokenizer,
        video_processor=Qwen3VLVideoProcessor(**video, **half),
        chat_template=chat_template or qwen3_5_nothink_chat_template,
    )


def build_processor(spec: dict, tokenizer):
    """Tiny settings: every image min = max = spec["pixels"] (16 image tokens); a video's pixel budget covers all its
    frames (Qwen3-VL's `size` for videos): up to 8 frames of the tiny image size, fps 2."""
    n = spec["pixels"]
    video = dict(size={"shortest_edge": n, "longest_edge": 8 * n}, fps=2, min_frames=2, max_frames=8)
    return processor(tokenizer, {"shortest_edge": n, "longest_edge": n}, video)


def model_config(text: dict, vision: dict, rope_parameters: dict, tokenizer, *, tie_word_embeddings: bool):
    """`Qwen3_5Config` from text / vision settings, with the special-token ids of `tokenizer`. Refuses M-RoPE sections
    that do not cover the rotary half-dimension (transformers does not check it)."""
    from transformers import Qwen3_5Config

    rotary = int(text["head_dim"] * rope_parameters["partial_rotary_factor"])
    if sum(rope_parameters["mrope_section"]) != rotary // 2:
        raise ValueError(
            f"mrope_section {rope_parameters['mrope_section']} must sum to rotary dim / 2 = {rotary // 2}"
        )
    conv = tokenizer.convert_tokens_to_ids
    return Qwen3_5Config(
        text_config={
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 4096,
            **text,  # a real size's vocab_size and context length win
            "eos_token_id": conv(tokenizer.eos_token),
            "pad_token_id": conv(tokenizer.pad_token),
            "bos_token_id": None,
            "rope_parameters": dict(rope_parameters),
            "tie_word_embeddings": tie_word_embeddings,
        },
        vision_config=dict(vision),  # Qwen3_5VisionConfig has no DeepStack
        image_token_id=conv("<|image_pad|>"),
        video_token_id=conv("<|video_pad|>"),
        vision_start_token_id=conv("<|vision_start|>"),
        vision_end_token_id=conv("<|vision_end|>"),
        tie_word_embeddings=tie_word_embeddings,
    )


def build_model(spec: dict, tokenizer, ids: dict):
    from transformers import Qwen3_5ForConditionalGeneration

    config = model_config(spec["text"], spec["vision"], spec["rope_parameters"], tokenizer, tie_word_embeddings=False)
    return Qwen3_5ForConditionalGeneration(config)


def tiny_family(spec: dict, special_tokens: dict, record: type):
    """The `TinyFamily` record (vlm_recipes.tiny.vlm) of Qwen3.5."""
    return record(spec, special_tokens, build_processor, build_model, build_tokenizer)

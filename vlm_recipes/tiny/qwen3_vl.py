"""Tiny Qwen3-VL checkpoints (`tiny:qwen3_vl`, `-random`, `-sft`), built offline like the others (tiny/vlm.py).

The real classes, scaled down: `Qwen3VLForConditionalGeneration` with `Qwen3VLProcessor` (`Qwen2VLImageProcessor`,
`Qwen3VLVideoProcessor`), the real tokenizer class (`Qwen2Tokenizer`: byte-level BPE, NFC, Qwen's pre-tokenizer
regex) with a vocabulary trained here, and TRL's copy of the real chat template. What the tiny model keeps of
`Qwen/Qwen3-VL-2B-Instruct` (values of the real config.json and their sources: docs/families.md#qwen3-vl):

- the vision tower: patch 16, 2x2 merge, temporal patch 2, a learned position grid bilinearly resampled to each
  image's patch grid (`num_position_embeddings` 64 = 8x8 here, 2304 = 48x48 there), GELU-tanh blocks;
- DeepStack: the merged features of vision blocks `deepstack_visual_indexes` ([0, 1] of 3 here, [5, 11, 17] of 24
  there) are added to the hidden states of the first LLM layers at the image positions;
- interleaved M-RoPE (`mrope_section` [6, 5, 5] over head_dim 32 here, [24, 20, 20] over 128 there; transformers
  interleaves the frequencies unconditionally), head_dim set apart from hidden / heads, q/k RMSNorm;
- video as the 5.23 processor lays it out: per temporal patch a text timestamp `<0.5 seconds>` then a
  `<|vision_start|>…<|vision_end|>` block of that frame's tokens.

Every image is 128x128 pixels after the processor's resize (min_pixels = max_pixels): an 8x8 patch grid, 16 image
tokens after the merge, like tiny Qwen2-VL. Widths are multiples of 64 (bitsandbytes' 4-bit CPU kernels).
"""

from __future__ import annotations

from .common import train_qwen_bpe

# Added tokens that are NOT special in the real Qwen3 vocabularies: `decode(skip_special_tokens=True)` keeps them, and
# the chat template writes them as text (reasoning, tool calls).
PLAIN_ADDED = ["<think>", "</think>", "<tool_call>", "</tool_call>"]
# The grounding tokens of the real vocabulary (Qwen3-VL answers boxes in JSON, but the tokens exist: text that
# contains them must still encode as text, vlm_recipes.data.chat_encoding).
BOX_TOKENS = ["<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>"]
BOX_TOKENS += ["<|quad_end|>"]

SPEC = {
    "vocab_size": 640,
    "text": {
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 32,
    },
    # Interleaved M-RoPE: 16 rotary frequencies, T on most, H on 1, 4, 7, ..., W on 2, 5, 8, ... (the sections say how
    # many of each; transformers' `apply_interleaved_mrope`).
    "rope_parameters": {
        "rope_type": "default",
        "rope_theta": 10000.0,
        "mrope_section": [6, 5, 5],
        "mrope_interleaved": True,
    },
    "vision": {
        "depth": 3,
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_heads": 4,
        "patch_size": 16,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "out_hidden_size": 128,
        "num_position_embeddings": 64,
        "deepstack_visual_indexes": [0, 1],
        "hidden_act": "gelu_pytorch_tanh",
    },
    # 128x128 pixels -> 8x8 patches of 16 px -> 16 image tokens after the 2x2 merge.
    "min_pixels": 128 * 128,
    "max_pixels": 128 * 128,
    # A clip's pixel budget covers all its frames (Qwen3VLVideoProcessor): up to 8 frames of 128x128.
    "video_min_pixels": 128 * 128,
    "video_max_pixels": 8 * 128 * 128,
}

SPECIAL_TOKENS = {
    # As the real tokenizer sets them: <|im_end|> ends a turn (eos), <|endoftext|> pads, no bos.
    "bos": None,
    "eos": "<|im_end|>",
    "pad": "<|endoftext|>",
    "extra": [
        "<|im_start|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|vision_pad|>",
        "<|image_pad|>",
        "<|video_pad|>",
        *BOX_TOKENS,
    ],
}

# The real checkpoints' preprocessor settings (preprocessor_config.json / video_preprocessor_config.json of
# Qwen/Qwen3-VL-*-Instruct): mean/std 0.5, patch 16; images 65,536..16,777,216 pixels, videos 4,096..25,165,824 over
# all frames at 2 fps, 4..768 frames.
REAL_IMAGE_SIZE = {"shortest_edge": 65536, "longest_edge": 16777216}
REAL_VIDEO = dict(size={"shortest_edge": 4096, "longest_edge": 25165824}, fps=2, min_frames=4, max_frames=768)
_HALF = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "patch_size": 16}


def build_tokenizer(corpus: list[str], vocab_size: int, special_tokens: dict = SPECIAL_TOKENS):
    """The real tokenizer class (`Qwen2Tokenizer`: byte-level BPE, NFC, Qwen's pre-tokenizer regex, which keeps a
    run of newlines together) with merges trained on `corpus`, the special tokens and the plain added tokens."""
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    return train_qwen_bpe(Qwen2Tokenizer, PRETOKENIZE_REGEX, corpus, vocab_size, special_tokens, PLAIN_ADDED)


def processor(tokenizer, image_size: dict, video: dict):
    """The real `Qwen3VLProcessor` around `tokenizer` with these image `size` bounds and video processor settings,
    and TRL's copy of the real Qwen3-VL chat template (the collators swap in its training variant)."""
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor
    from trl.chat_template_utils import qwen3_vl_chat_template

    return Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=image_size, **_HALF),
        tokenizer=tokenizer,
        video_processor=Qwen3VLVideoProcessor(**video, **_HALF),
        chat_template=qwen3_vl_chat_template,
    )


def build_processor(spec: dict, tokenizer):
    return processor(
        tokenizer,
        {"shortest_edge": spec["min_pixels"], "longest_edge": spec["max_pixels"]},
        dict(
            size={"shortest_edge": spec["video_min_pixels"], "longest_edge": spec["video_max_pixels"]},
            fps=2,
            min_frames=2,
            max_frames=8,
        ),
    )


def token_ids(tokenizer) -> dict:
    conv = tokenizer.convert_tokens_to_ids
    return dict(
        image_token_id=conv("<|image_pad|>"),
        video_token_id=conv("<|video_pad|>"),
        vision_start_token_id=conv("<|vision_start|>"),
        vision_end_token_id=conv("<|vision_end|>"),
    )


def check_rope(config) -> None:
    """The M-RoPE sections must cover head_dim / 2 rotary frequencies exactly (transformers does not check it)."""
    text = config.text_config
    if sum(text.rope_parameters["mrope_section"]) != text.head_dim // 2:
        raise ValueError(f"mrope_section {text.rope_parameters['mrope_section']} must sum to head_dim / 2.")


def build_model(spec: dict, tokenizer, ids: dict):
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    text = dict(
        vocab_size=len(tokenizer),
        max_position_embeddings=4096,
        eos_token_id=ids["eos"],
        pad_token_id=ids["pad"],
        bos_token_id=None,
        rope_parameters=dict(spec["rope_parameters"]),
        **spec["text"],
    )
    config = Qwen3VLConfig(
        text_config=text, vision_config=dict(spec["vision"]), tie_word_embeddings=False, **token_ids(tokenizer)
    )
    check_rope(config)
    return Qwen3VLForConditionalGeneration(config)


def tiny_family(spec: dict, special_tokens: dict, record: type):
    """The `TinyFamily` record (vlm_recipes.tiny.vlm) of Qwen3-VL."""
    return record(
        spec,
        special_tokens,
        build_processor,
        build_model,
        lambda corpus, vocab_size: build_tokenizer(corpus, vocab_size, special_tokens),
    )


# -- real size (vlm_recipes.tiny.real_size) ---------------------------------------------------------------------------
# Qwen/Qwen3-VL-2B-Instruct's config.json (sources: docs/families.md#qwen3-vl).
REAL_2B = dict(
    tie_word_embeddings=True,
    text=dict(
        vocab_size=151936,
        hidden_size=2048,
        intermediate_size=6144,
        num_hidden_layers=28,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        rms_norm_eps=1e-6,
        max_position_embeddings=262144,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 5000000,
            "mrope_section": [24, 20, 20],
            "mrope_interleaved": True,
        },
    ),
    vision=dict(
        depth=24,
        hidden_size=1024,
        intermediate_size=4096,
        num_heads=16,
        out_hidden_size=2048,
        patch_size=16,
        spatial_merge_size=2,
        temporal_patch_size=2,
        num_position_embeddings=2304,
        deepstack_visual_indexes=[5, 11, 17],
        hidden_act="gelu_pytorch_tanh",
    ),
)


def real_size_model(real: dict, tokenizer, attn_implementation: str = "sdpa"):
    """A real-size Qwen3-VL (`real`: REAL_2B) with random weights; the special-token ids are the local tokenizer's
    (the real vocabulary's ids differ, the shapes do not: the embedding has the real vocabulary's rows)."""
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    text = {**real["text"], "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    config = Qwen3VLConfig(
        text_config=text,
        vision_config=dict(real["vision"]),
        tie_word_embeddings=real["tie_word_embeddings"],
        **token_ids(tokenizer),
    )
    check_rope(config)
    config._attn_implementation = attn_implementation
    return Qwen3VLForConditionalGeneration(config).eval()

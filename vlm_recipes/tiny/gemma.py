"""Tiny Gemma 3 and Gemma 4 checkpoints, built offline like the SmolVLM / Qwen2-VL ones (tiny/vlm.py).

`tiny:gemma3` is a `Gemma3ForConditionalGeneration` like `google/gemma-3-4b-it`, scaled down; what the real checkpoint
has and the tiny one mirrors:

- a SigLIP vision tower without its head whose patch features are average-pooled to `mm_tokens_per_image` soft tokens
  (896 px / 14 px -> 64x64 patches -> 16x16 = 256 there; 64 px / 8 px -> 8x8 -> 4x4 = 16 here), an RMS-normed linear
  projector (`multi_modal_projector`);
- a Gemma 3 text model of sliding-window and full-attention layers (5:1 there, 1:1 here), each type with its own RoPE
  (local 10k; global 1M with linear scaling x8), `query_pre_attn_scalar` = head_dim, and a sliding window shorter
  than a row so that the sliding layers really slide (1024 tokens there, 32 here);
- image soft tokens that attend to each other bidirectionally (marked by `token_type_ids` = 1; Gemma3Model builds the
  mask from them);
- `Gemma3Processor` + `Gemma3ImageProcessor`: a fixed square resize (mean/std 0.5, bilinear, as
  gemma-3-4b-it's preprocessor_config.json), each image written as "\\n\\n<start_of_image>" + soft tokens +
  "<end_of_image>\\n\\n"; pan-and-scan crops available and off by default, as on the real processor (the
  `image_splitting` control turns them on: vlm_recipes.models.families);
- a byte-level BPE with Gemma's special tokens at Gemma's ids (<pad> 0, <eos> 1, <bos> 2, <unk> 3), `<bos>` added in
  front of a sequence as Gemma's tokenizer does, `<start_of_turn>` / `<end_of_turn>`, and the image tokens under the
  names the processor reads (`boi_token`, `image_token`, `eoi_token`);
- TRL's copy of the real chat template (`gemma3.jinja`; TRL also ships its training variant with generation markers).

Widths are multiples of 64 (bitsandbytes' 4-bit CPU blocks), as for the other tiny models.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

# Gemma's own ids for the first four (pad 0, eos 1, bos 2, unk 3: Gemma3TextConfig's defaults and the real vocabulary).
_BASE = ["<pad>", "<eos>", "<bos>", "<unk>"]
GEMMA3_TOKENS = _BASE + [
    "<start_of_turn>",
    "<end_of_turn>",
    "<start_of_image>",
    "<end_of_image>",
    "<image_soft_token>",
]
# The names Gemma3Processor reads from the tokenizer (gemma-3-4b-it's tokenizer_config.json names them the same way).
GEMMA3_NAMED = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"}

SPEC = {
    "vocab_size": 640,
    "text": {
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 32,
        "query_pre_attn_scalar": 32,  # = head_dim, as gemma-3-4b-it (256, its head_dim)
        "sliding_window": 32,
        "layer_types": ["sliding_attention", "full_attention"],
    },
    "vision": {
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "image_size": 64,
        "patch_size": 8,
    },
    # 64 px / 8 px = 8x8 patches, average-pooled 2x2 -> 4x4 = 16 soft tokens per image (or per pan-and-scan crop).
    "mm_tokens_per_image": 16,
    # Instruction-tuned Gemma stops on <eos> and on its end-of-turn token (generation_config.json: [1, 106]).
    "stop_tokens": ["<end_of_turn>"],
    # transformers initialises the projector's matrix to zeros (a checkpoint loads it): a model built from scratch
    # would then give every image the same (zero) features, and no gradient would reach the vision tower. The tiny
    # model draws it like the text embeddings (normal, std = initializer_range), so images count from the first step.
    "projector_init_std": 0.02,
}
SPECIAL_TOKENS = {"bos": "<bos>", "eos": "<eos>", "pad": "<pad>", "extra": GEMMA3_TOKENS[3:]}

# gemma-3-4b-it's RoPE: sliding layers 10k, full layers 1M with linear scaling x8 (its config.json).
GEMMA3_ROPE = {
    "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
    "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1_000_000.0},
}


def build_tokenizer(corpus: list[str], vocab_size: int):
    """A byte-level BPE trained on `corpus` (plus Gemma's `model` role), with Gemma 3's special tokens first, at
    Gemma's ids, `<bos>` added in front of every sequence, and the named image tokens Gemma3Processor looks up."""
    return gemma_tokenizer(corpus, vocab_size, GEMMA3_TOKENS, GEMMA3_NAMED, roles=("model", "user"))


def gemma_tokenizer(corpus: list[str], vocab_size: int, tokens: list[str], named: dict, roles: tuple[str, ...]):
    """The tiny Gemma tokenizers' one recipe: a byte-level BPE trained on `corpus` and the chat `roles`, with the
    family's special `tokens` first (pad, eos, bos, unk at Gemma's ids 0-3), `<bos>` added in front of every
    sequence, the `named` media tokens the processor looks up, and the other special tokens as additional ones."""
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    bos = tokens.index("<bos>")
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", bos)]
            ),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(tokens),
        special_tokens=tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus + [f"{role}\n" for role in roles] * 50, trainer=trainer)
    named_tokens = set(named.values())
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens=named,
        additional_special_tokens=[t for t in tokens[4:] if t not in named_tokens],
        model_max_length=4096,
        clean_up_tokenization_spaces=False,
    )


def gemma3_processor(spec: dict, tokenizer):
    """`Gemma3Processor` with the real chat template (TRL's copy of gemma-3-4b-it's) and a fixed square resize."""
    from transformers import Gemma3ImageProcessor, Gemma3Processor
    from trl.chat_template_utils import gemma3_chat_template

    side = spec["vision"]["image_size"]
    image_processor = Gemma3ImageProcessor(
        size={"height": side, "width": side},
        image_mean=[0.5, 0.5, 0.5],  # gemma-3-4b-it's preprocessor_config.json
        image_std=[0.5, 0.5, 0.5],
        resample=2,  # bilinear
        # Pan-and-scan crops of at least 256 px of an 896 px model there; the same share of 64 px here.
        pan_and_scan_min_crop_size=18,
    )
    return Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=gemma3_chat_template,
        image_seq_length=spec["mm_tokens_per_image"],
    )


def gemma3_config(spec: dict, tokenizer, ids: dict, text_config: dict | None = None):
    """The tiny `Gemma3Config` (`text_config` overrides the text model's sizes)."""
    from transformers import Gemma3Config, Gemma3TextConfig, SiglipVisionConfig

    conv = tokenizer.convert_tokens_to_ids
    text = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=4096,
        pad_token_id=ids["pad"],
        bos_token_id=ids["bos"],
        eos_token_id=ids["eos"],
        rope_parameters=GEMMA3_ROPE,
        **{**spec["text"], **(text_config or {})},
    )
    return Gemma3Config(
        text_config=text.to_dict(),
        vision_config=SiglipVisionConfig(**spec["vision"], vision_use_head=False).to_dict(),
        mm_tokens_per_image=spec["mm_tokens_per_image"],
        boi_token_index=conv(GEMMA3_NAMED["boi_token"]),
        eoi_token_index=conv(GEMMA3_NAMED["eoi_token"]),
        image_token_index=conv(GEMMA3_NAMED["image_token"]),
        tie_word_embeddings=False,
    )


def gemma3_model(spec: dict, tokenizer, ids: dict):
    from transformers import Gemma3ForConditionalGeneration

    model = Gemma3ForConditionalGeneration(gemma3_config(spec, tokenizer, ids))
    with torch.no_grad():
        model.model.multi_modal_projector.mm_input_projection_weight.normal_(0.0, spec["projector_init_std"])
    return model


# --- Gemma 4 (issue 29) --------------------------------------------------------------------------------------------
# `tiny:gemma4` is a `Gemma4ForConditionalGeneration` like `google/gemma-4-E2B-it`, scaled down; what it mirrors:
#
# - the E-size text model: per-layer embeddings (a second, packed embedding table `embed_tokens_per_layer` feeding
#   every decoder layer a small per-layer input), sliding-window and full-attention layers with their own head sizes
#   (global_head_dim) and RoPE (sliding 10k default; full 1M "proportional", a quarter of the dimensions rotated), the
#   last layers reusing the KV states of earlier ones (`num_kv_shared_layers`: 20 of 35 there, 2 of 4 here) and, in
#   those shared layers, a double-wide MLP; tied embeddings; the final-logit soft cap (30);
# - the Gemma 4 vision tower (patch embedder with a learned 2-D position table, clipped linears
#   `Gemma4ClippableLinear` around every projection, a spatial average pool to soft tokens) and its projector
#   `embed_vision`: an image is resized (aspect kept) to fit `max_soft_tokens` x pool^2 patches (280 soft tokens
#   of 3x3 pooled 16 px patches there; 70 of 2x2 pooled 4 px patches here: a 64 px image is 16x16 patches -> 64 soft
#   tokens), written "<|image>" + soft tokens + "<image|>";
# - an audio tower (conformer; 12 layers there, 1 here) that our recipes never train (no audio training: rows with
#   audio are refused, the tower gets no LoRA and stays frozen in full fine-tuning, `Family.untrained_modules`);
# - `Gemma4Processor` with its image, video and audio processors, the real chat template (TRL's copy of
#   gemma-4-E2B-it's current revision, `gemma4_v5.jinja`), and a tokenizer with Gemma's ids for pad/eos/bos/unk and
#   Gemma 4's turn, thinking, tool and media tokens under the names the processor reads.
#
# E2B is causal over images (its config has no `use_bidirectional_attention`); the 31B and 26B-A4B configs set it to
# "vision", which makes image tokens attend to each other in the sliding-window layers only (transformers 5.23,
# `create_masks_for_vision_model`). The tiny model is E2B's: causal; tests/test_family_gemma4.py checks both.
GEMMA4_TOKENS = _BASE + [
    "<|turn>",
    "<turn|>",
    "<|think|>",
    "<|channel>",
    "<channel|>",
    "<|tool>",
    "<tool|>",
    "<|tool_call>",
    "<tool_call|>",
    "<|tool_response>",
    "<tool_response|>",
    '<|"|>',
    "<|image>",
    "<|image|>",
    "<image|>",
    "<|audio>",
    "<|audio|>",
    "<audio|>",
    "<|video|>",
]
# The names Gemma4Processor reads from the tokenizer (gemma-4-E2B-it's tokenizer_config.json names them the same way).
GEMMA4_NAMED = {
    "boi_token": "<|image>",
    "image_token": "<|image|>",
    "eoi_token": "<image|>",
    "boa_token": "<|audio>",
    "audio_token": "<|audio|>",
    "eoa_token": "<audio|>",
}

GEMMA4_SPEC = {
    "vocab_size": 640,
    "text": {
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,  # multi-query, as E2B (8 heads, 1 KV head)
        "head_dim": 32,
        "global_head_dim": 64,  # the full-attention layers' heads are twice as wide (E2B: 256 / 512)
        "hidden_size_per_layer_input": 16,  # per-layer embeddings (E2B: 256 per layer)
        "num_kv_shared_layers": 2,  # the last 2 of 4 layers reuse the KV states of the first two
        "use_double_wide_mlp": True,
        "sliding_window": 32,
        "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
        "final_logit_softcapping": 30.0,
    },
    "vision": {
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "head_dim": 32,
        "patch_size": 4,
        "pooling_kernel_size": 2,
        "position_embedding_size": 64,
        "use_clipped_linears": True,
    },
    "audio": {
        "hidden_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "subsampling_conv_channels": [16, 8],
        "output_proj_dims": 64,
    },
    # 64 px / 4 px = 16x16 patches, pooled 2x2 -> 8x8 = 64 soft tokens (the budget, 70, is one the processor allows).
    "max_soft_tokens": 70,
    # Instruction-tuned Gemma 4 stops on <eos> and on its end-of-turn token (generation_config.json).
    "stop_tokens": ["<turn|>"],
    # transformers initialises the patch embedder's position table to ones (a checkpoint loads it): every patch would
    # get the same position. The tiny model draws it (normal, std 0.02) so that where a patch is counts from the start.
    "position_init_std": 0.02,
}
GEMMA4_SPECIAL_TOKENS = {"bos": "<bos>", "eos": "<eos>", "pad": "<pad>", "extra": GEMMA4_TOKENS[3:]}

# gemma-4-E2B-it's RoPE (Gemma4TextConfig's defaults, as its config.json): sliding 10k; full 1M, "proportional" with a
# quarter of the dimensions rotated.
GEMMA4_ROPE = {
    "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
    "full_attention": {"rope_type": "proportional", "partial_rotary_factor": 0.25, "rope_theta": 1_000_000.0},
}


def build_gemma4_tokenizer(corpus: list[str], vocab_size: int):
    """A byte-level BPE trained on `corpus`, with Gemma 4's special tokens first (Gemma's ids for pad/eos/bos/unk),
    `<bos>` added in front of every sequence, and the named media tokens Gemma4Processor looks up."""
    return gemma_tokenizer(corpus, vocab_size, GEMMA4_TOKENS, GEMMA4_NAMED, roles=("model", "user", "system"))


def gemma4_processor(spec: dict, tokenizer):
    """`Gemma4Processor` with the real chat template (TRL's copy of gemma-4-E2B-it's current one) and its image,
    video and audio processors at the spec's patch size, pooling and soft-token budget."""
    from transformers import (
        Gemma4AudioFeatureExtractor,
        Gemma4ImageProcessor,
        Gemma4Processor,
        Gemma4VideoProcessor,
    )
    from trl.chat_template_utils import gemma4_v5_chat_template

    vision = spec["vision"]
    sizes = {
        "patch_size": vision["patch_size"],
        "pooling_kernel_size": vision["pooling_kernel_size"],
        "max_soft_tokens": spec["max_soft_tokens"],
    }
    return Gemma4Processor(
        feature_extractor=Gemma4AudioFeatureExtractor(),
        image_processor=Gemma4ImageProcessor(**sizes),
        tokenizer=tokenizer,
        video_processor=Gemma4VideoProcessor(**sizes),
        chat_template=gemma4_v5_chat_template,
        image_seq_length=spec["max_soft_tokens"],
    )


def gemma4_config(spec: dict, tokenizer, ids: dict, bidirectional: str | None = None):
    """The tiny `Gemma4Config`; `bidirectional` sets the text model's `use_bidirectional_attention` (None as E2B,
    "vision" as the 31B / 26B-A4B configs)."""
    from transformers import Gemma4AudioConfig, Gemma4Config, Gemma4TextConfig, Gemma4VisionConfig

    conv = tokenizer.convert_tokens_to_ids
    text = Gemma4TextConfig(
        vocab_size=len(tokenizer),
        vocab_size_per_layer_input=len(tokenizer),
        max_position_embeddings=4096,
        pad_token_id=ids["pad"],
        bos_token_id=ids["bos"],
        eos_token_id=ids["eos"],
        rope_parameters=GEMMA4_ROPE,
        use_bidirectional_attention=bidirectional,
        tie_word_embeddings=True,
        **spec["text"],
    )
    return Gemma4Config(
        text_config=text.to_dict(),
        vision_config=Gemma4VisionConfig(**spec["vision"]).to_dict(),
        audio_config=Gemma4AudioConfig(**spec["audio"]).to_dict(),
        boi_token_id=conv(GEMMA4_NAMED["boi_token"]),
        eoi_token_id=conv(GEMMA4_NAMED["eoi_token"]),
        image_token_id=conv(GEMMA4_NAMED["image_token"]),
        video_token_id=conv("<|video|>"),
        boa_token_id=conv(GEMMA4_NAMED["boa_token"]),
        eoa_token_index=conv(GEMMA4_NAMED["eoa_token"]),
        audio_token_id=conv(GEMMA4_NAMED["audio_token"]),
        tie_word_embeddings=True,
    )


def gemma4_model(spec: dict, tokenizer, ids: dict, bidirectional: str | None = None):
    from transformers import Gemma4ForConditionalGeneration

    model = Gemma4ForConditionalGeneration(gemma4_config(spec, tokenizer, ids, bidirectional))
    with torch.no_grad():
        model.model.vision_tower.patch_embedder.position_embedding_table.normal_(0.0, spec["position_init_std"])
    return model


def tiny_family(name: str, spec: dict, special_tokens: dict, record: type):
    """The `TinyFamily` record (vlm_recipes.tiny.vlm) of Gemma 3 or Gemma 4."""
    if name == "gemma3":
        return record(spec, special_tokens, gemma3_processor, gemma3_model, build_tokenizer)
    if name == "gemma4":
        return record(spec, special_tokens, gemma4_processor, gemma4_model, build_gemma4_tokenizer)
    raise ValueError(f"vlm_recipes.tiny.gemma builds gemma3 and gemma4, not {name!r}.")

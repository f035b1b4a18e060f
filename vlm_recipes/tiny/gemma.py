"""Tiny Gemma 3 checkpoints, built offline like the SmolVLM / Qwen2-VL ones (tiny/vlm.py) and registered there.

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
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    bos = GEMMA3_TOKENS.index("<bos>")
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", bos)]
            ),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(GEMMA3_TOKENS),
        special_tokens=GEMMA3_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus + ["model\n", "user\n"] * 50, trainer=trainer)
    named = set(GEMMA3_NAMED.values())
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens=GEMMA3_NAMED,
        additional_special_tokens=[t for t in GEMMA3_TOKENS[4:] if t not in named],
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


def tiny_family(name: str, spec: dict, special_tokens: dict, record: type):
    """The `TinyFamily` record (vlm_recipes.tiny.vlm) of Gemma 3."""
    if name != "gemma3":
        raise ValueError(f"vlm_recipes.tiny.gemma builds gemma3, not {name!r}.")
    return record(spec, special_tokens, gemma3_processor, gemma3_model, build_tokenizer)

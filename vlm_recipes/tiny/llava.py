"""Tiny LLaVA-1.5 and LLaVA-OneVision checkpoints, built offline like the SmolVLM / Qwen2-VL ones (tiny/vlm.py).

The real classes and processors, scaled down; what each real checkpoint has and the tiny one mirrors:

- `tiny:llava` is a `LlavaForConditionalGeneration` like `llava-hf/llava-1.5-7b-hf`: a CLIP vision tower whose
  second-to-last layer feeds a two-layer MLP projector (`vision_feature_layer: -2`, CLS dropped: `default`), a Llama
  language model, a `LlamaTokenizer` (sentencepiece-style BPE: `▁` for spaces, byte fallback, `<s>` added in front of
  every sequence) with `<image>` and `<pad>` added, `LlavaProcessor` with `CLIPImageProcessor` (resize the shortest
  edge, centre-crop to the tower's fixed size: one image is always (size / patch)^2 tokens; 336 / 14 -> 576 there,
  64 / 8 -> 64 here).
- `tiny:llava_onevision` is a `LlavaOnevisionForConditionalGeneration` like
  `llava-hf/llava-onevision-qwen2-0.5b-ov-hf`: a SigLIP tower without its head (`full`: every patch is a feature), a
  Qwen2 language model, a byte-level BPE with `<|im_start|>` / `<|im_end|>` / `<|endoftext|>` and `<image>` /
  `<video>`, and `LlavaOnevisionProcessor`: anyres tiling over `image_grid_pinpoints` (each image is a base image plus
  the tiles of its best-fitting grid, with a learned newline after each row of features) capped by
  `vision_aspect_ratio: anyres_max_<n>`. There: 384 px tiles, grids up to 6x6, anyres_max_9, 729 tokens per tile;
  here: 32 px tiles, grids up to 3x3, anyres_max_4, 16 tokens per tile (a 64x64 image: 16 + 2x2 tiles of 16 + 8
  newlines = 88 image tokens).

- `tiny:llava_next` (random only) is a `LlavaNextForConditionalGeneration` like `llava-hf/llava-v1.6-mistral-7b-hf`:
  LLaVA-1.5's tower and tokenizer with `LlavaNextProcessor` (anyres over `image_grid_pinpoints`, 1x2 to 2x2 / 3x1
  grids of 32 px tiles here, of 336 px there) and TRL's copy of its chat template.

LLaVA-1.5 and OneVision carry their real chat templates from vlm_recipes/models/chat_templates (TRL ships neither).
"""

from __future__ import annotations

import json

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

from ..models.chat_templates import TEMPLATES

LLAVA_TOKENS = {"unk": "<unk>", "bos": "<s>", "eos": "</s>", "pad": "<pad>", "image": "<image>"}


def build_llama_tokenizer(corpus: list[str], vocab_size: int):
    """A `LlamaTokenizer` trained here: the real class (Metaspace `▁` spaces prepended to the first piece of a text,
    byte fallback, `<s>` added in front of every sequence) over a BPE learned from `corpus`, with `<unk>` `<s>` `</s>`
    and the 256 byte tokens first like Llama's vocabulary, and `<image>` / `<pad>` added after it like llava-hf's."""
    from transformers import AddedToken, LlamaTokenizer

    t = LLAVA_TOKENS
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    head = [t["unk"], t["bos"], t["eos"], *byte_tokens]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(head) - 2, show_progress=False)
    bpe = Tokenizer(models.BPE(unk_token=t["unk"]))
    bpe.normalizer = normalizers.NFC()  # only to train on: the real tokenizer has no normalizer
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    bpe.train_from_iterator(corpus, trainer=trainer)
    learned = json.loads(bpe.to_str())["model"]
    vocab = {token: i for i, token in enumerate(head)}
    for token in sorted(learned["vocab"], key=learned["vocab"].get):
        vocab.setdefault(token, len(vocab))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in learned["merges"]]
    tokenizer = LlamaTokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=t["unk"],
        bos_token=t["bos"],
        eos_token=t["eos"],
        add_bos_token=True,
        add_eos_token=False,
        model_max_length=4096,
    )
    tokenizer.add_special_tokens(
        {"pad_token": AddedToken(t["pad"], special=True, normalized=False)},
    )
    tokenizer.add_tokens([AddedToken(t["image"], special=True, normalized=False)], special_tokens=True)
    return tokenizer


def llava_processor(spec: dict, tokenizer):
    from transformers import CLIPImageProcessor, LlavaProcessor

    vision = spec["vision"]
    side = vision["image_size"]
    image_processor = CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side})
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=vision["patch_size"],
        vision_feature_select_strategy=spec["vision_feature_select_strategy"],
        num_additional_image_tokens=1,  # CLIP's CLS token, dropped again by the `default` strategy
        chat_template=TEMPLATES["llava_1_5"],
    )


def llava_next_processor(spec: dict, tokenizer):
    from transformers import LlavaNextImageProcessor, LlavaNextProcessor
    from trl.chat_template_utils import llava_next_chat_template

    vision = spec["vision"]
    side = vision["image_size"]
    image_processor = LlavaNextImageProcessor(
        size={"shortest_edge": side},
        crop_size={"height": side, "width": side},
        image_grid_pinpoints=spec["image_grid_pinpoints"],
    )
    return LlavaNextProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=vision["patch_size"],
        vision_feature_select_strategy=spec["vision_feature_select_strategy"],
        num_additional_image_tokens=1,
        chat_template=llava_next_chat_template,  # TRL ships it (llava-hf/llava-v1.6-mistral-7b-hf's)
    )


def llava_onevision_processor(spec: dict, tokenizer):
    from transformers import LlavaOnevisionImageProcessor, LlavaOnevisionProcessor, LlavaOnevisionVideoProcessor

    vision = spec["vision"]
    tile = {"height": vision["image_size"], "width": vision["image_size"]}
    return LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size=tile, image_grid_pinpoints=spec["image_grid_pinpoints"]),
        tokenizer=tokenizer,
        video_processor=LlavaOnevisionVideoProcessor(size=tile),
        num_image_tokens=(vision["image_size"] // vision["patch_size"]) ** 2,
        vision_feature_select_strategy=spec["vision_feature_select_strategy"],
        vision_aspect_ratio=spec["vision_aspect_ratio"],
        chat_template=TEMPLATES["llava_onevision"],
    )


def _config_parts(spec: dict, tokenizer, ids: dict) -> tuple[dict, dict]:
    """The settings every LLaVA config shares, and its text model's."""
    common = dict(
        vision_feature_select_strategy=spec["vision_feature_select_strategy"],
        vision_feature_layer=spec["vision_feature_layer"],
        tie_word_embeddings=False,
    )
    text = dict(
        vocab_size=len(tokenizer),
        max_position_embeddings=4096,
        eos_token_id=ids["eos"],
        pad_token_id=ids["pad"],
        bos_token_id=ids.get("bos"),
        tie_word_embeddings=False,
        **spec["text"],
    )
    return common, text


def llava_config(spec: dict, tokenizer, ids: dict):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    common, text = _config_parts(spec, tokenizer, ids)
    conv = tokenizer.convert_tokens_to_ids
    return LlavaConfig(
        vision_config=CLIPVisionConfig(**spec["vision"]).to_dict(),
        text_config=LlamaConfig(**text).to_dict(),
        image_token_index=conv(LLAVA_TOKENS["image"]),
        image_seq_length=(spec["vision"]["image_size"] // spec["vision"]["patch_size"]) ** 2,
        **common,
    )


def llava_next_config(spec: dict, tokenizer, ids: dict):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaNextConfig

    common, text = _config_parts(spec, tokenizer, ids)
    conv = tokenizer.convert_tokens_to_ids
    return LlavaNextConfig(
        vision_config=CLIPVisionConfig(**spec["vision"]).to_dict(),
        text_config=LlamaConfig(**text).to_dict(),
        image_token_index=conv(LLAVA_TOKENS["image"]),
        image_grid_pinpoints=spec["image_grid_pinpoints"],
        **common,
    )


def llava_onevision_config(spec: dict, tokenizer, ids: dict):
    from transformers import LlavaOnevisionConfig, Qwen2Config, SiglipVisionConfig

    common, text = _config_parts(spec, tokenizer, ids)
    conv = tokenizer.convert_tokens_to_ids
    return LlavaOnevisionConfig(
        vision_config=SiglipVisionConfig(**spec["vision"], vision_use_head=False).to_dict(),
        text_config=Qwen2Config(**text).to_dict(),
        image_token_index=conv("<image>"),
        video_token_index=conv("<video>"),
        image_grid_pinpoints=spec["image_grid_pinpoints"],
        vision_aspect_ratio=spec["vision_aspect_ratio"],
        **common,
    )


def tiny_family(name: str, spec: dict, special_tokens: dict, record: type):
    """The `TinyFamily` record (vlm_recipes.tiny.vlm) of a LLaVA family: its processor, config and model class."""
    from transformers import (
        LlavaForConditionalGeneration,
        LlavaNextForConditionalGeneration,
        LlavaOnevisionForConditionalGeneration,
    )

    processor, config, model_class, tokenizer = {
        "llava": (llava_processor, llava_config, LlavaForConditionalGeneration, build_llama_tokenizer),
        "llava_next": (
            llava_next_processor,
            llava_next_config,
            LlavaNextForConditionalGeneration,
            build_llama_tokenizer,
        ),
        "llava_onevision": (
            llava_onevision_processor,
            llava_onevision_config,
            LlavaOnevisionForConditionalGeneration,
            None,
        ),
    }[name]
    return record(
        spec,
        special_tokens,
        processor,
        lambda spec, tokenizer, ids: model_class(config(spec, tokenizer, ids)),
        tokenizer,
    )

"""Tiny SmolVLM, Qwen2-VL and LLaVA checkpoints built offline, so every recipe runs on a CPU without the Hub.

A tiny checkpoint is a real `SmolVLMForConditionalGeneration` / `Qwen2VLForConditionalGeneration` /
`LlavaForConditionalGeneration` / `LlavaOnevisionForConditionalGeneration` / `LlavaNextForConditionalGeneration` with
the real processor classes, a BPE tokenizer trained locally with the family's special tokens (byte-level; LLaVA-1.5's
and LLaVA-NeXT's are a `LlamaTokenizer`), and the family's real chat template (shipped by TRL as data, or by us:
vlm_recipes/models/chat_templates). The LLaVA builders live in vlm_recipes/tiny/llava.py. It is written with
`save_pretrained` to a cache directory and loaded by path, exactly like a downloaded checkpoint, so recipes run the
same code for tiny and real models.

Two flavours per family, named like Hub ids in YAML (`model_name_or_path: tiny:smolvlm`):
- `tiny:<family>-random`: randomly initialised.
- `tiny:<family>-sft`: the pre-trained model after a short supervised warm-up on the colour/shape questions:
  partly trained, the starting point of the preference and RL recipes.
- `tiny:<family>`: the random model pre-trained (full fine-tuning, deterministic) on a different synthetic task,
  captioning ("Describe the image." -> "a red circle"), the way a real base model exists before a LoRA recipe is
  run. LoRA on top of it then has features to build on and gives losses a user can read.

Checkpoints are cached under `$VLM_RECIPES_CACHE` (default `~/.cache/vlm_recipes`), keyed by a hash of the build
recipe, built into a temporary directory and renamed into place, so concurrent ranks and interrupted builds never
see a half-written checkpoint. Rebuild with `python -m vlm_recipes.tiny build --family smolvlm --force`.

"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast
from trl.chat_template_utils import qwen2_5_vl_chat_template, smolvlm_chat_template

from ..data import synthetic
from . import gemma, llava, qwen2_5_vl, qwen3_5, qwen3_vl
from .common import (
    SHIPPED_BASES,
    TINY_PREFIX,
    build_dependencies,
    build_pinned,
    build_seed,
    cache_root,
    copy_shipped,
    in_pinned_process,
    random_build_here,
    reproducible_build,
    runtime_numerics,
    save_atomically,
)

logger = logging.getLogger(__name__)

# Bump when the build recipe changes in a way the spec hash below cannot see (e.g. new tokenizer corpus code).
BUILD_VERSION = 4

# Widths are multiples of 64 so that bitsandbytes' 4-bit CPU kernels (block size 64) can quantise every layer:
# the QLoRA configs run on these models too.
_TEXT = {  # the language model, the same for both families
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}
SPECS = {
    "smolvlm": {
        # The build seed of the trained stages (added to `$VLM_RECIPES_TINY_SEED`): the shipped SmolVLM base is seed 2.
        # Built on an Intel Xeon, seed 0's base failed SFT (0.870), DPO, GRPO and RLOO, seed 1's DPO; seed 2's passes
        # every default-run proof (docs/figures.md, "Tiny bases"). The defaults do not hold on every base.
        "base_seed": 2,
        "vocab_size": 640,
        "text": _TEXT,
        "vision": {
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": 64,
            "patch_size": 8,
        },
        "scale_factor": 2,
    },
    "qwen2_vl": {
        "vocab_size": 640,
        # M-RoPE splits head_dim / 2 = 16 rotary frequencies over (time, height, width).
        "text": {**_TEXT, "mrope_section": [4, 6, 6]},
        "vision": {
            "depth": 2,
            "embed_dim": 128,
            "num_heads": 4,
            "mlp_ratio": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        # 112x112 pixels -> 8x8 patches of 14 px -> 16 image tokens after the 2x2 merge.
        "min_pixels": 112 * 112,
        "max_pixels": 112 * 112,
    },
    # LLaVA-1.5 and LLaVA-OneVision: vlm_recipes/tiny/llava.py says what they mirror of the real checkpoints.
    "llava": {
        "vocab_size": 640,
        "text": _TEXT,
        # 64x64 pixels -> 8x8 patches of 8 px -> 64 image tokens (the CLS token is dropped: `default`). The second-to-
        # last layer feeds the projector (`vision_feature_layer: -2`), as in LLaVA-1.5: one layer more than used.
        "vision": {
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": 3,
            "num_attention_heads": 4,
            "image_size": 64,
            "patch_size": 8,
        },
        "vision_feature_layer": -2,
        "vision_feature_select_strategy": "default",
    },
    "llava_onevision": {
        "vocab_size": 640,
        "text": _TEXT,
        # Tiles of 32 px -> 4x4 patches of 8 px -> 16 tokens per tile; grids up to 3x3 tiles; features of at most 4
        # tiles kept (anyres_max_4). A 64x64 image: base 16 + 2x2 tiles (8x8 features) 64 + 8 row newlines = 88.
        "vision": {
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": 32,
            "patch_size": 8,
        },
        "vision_feature_layer": -1,
        "vision_feature_select_strategy": "full",
        "image_grid_pinpoints": [[32 * rows, 32 * cols] for rows in (1, 2, 3) for cols in (1, 2, 3)],
        "vision_aspect_ratio": "anyres_max_4",
    },
    "llava_next": {
        "vocab_size": 640,
        "text": _TEXT,
        # LLaVA-1.5's CLIP tower on tiles of 32 px (16 tokens each, CLS dropped) and the grids of
        # llava-v1.6-mistral-7b-hf's image_grid_pinpoints (1x2, 2x1, 2x2, 3x1, 1x3 tiles), scaled from 336 to 32 px.
        "vision": {
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": 3,
            "num_attention_heads": 4,
            "image_size": 32,
            "patch_size": 8,
        },
        "vision_feature_layer": -2,
        "vision_feature_select_strategy": "default",
        "image_grid_pinpoints": [[32, 64], [64, 32], [64, 64], [96, 32], [32, 96]],
    },
    "qwen2_5_vl": qwen2_5_vl.SPEC,  # vlm_recipes/tiny/qwen2_5_vl.py
    "qwen3_vl": qwen3_vl.SPEC,  # what it mirrors of Qwen3-VL-2B: vlm_recipes/tiny/qwen3_vl.py
    "qwen3_5": qwen3_5.SPEC,  # Qwen3.5 (Qwen3.6 / 3.8): vlm_recipes/tiny/qwen3_5.py says what it mirrors
    "gemma3": gemma.SPEC,  # Gemma 3: vlm_recipes/tiny/gemma.py says what it mirrors of gemma-3-4b-it
    "gemma4": gemma.GEMMA4_SPEC,  # Gemma 4: what it mirrors of gemma-4-E2B-it, in vlm_recipes/tiny/gemma.py too
}
PRETRAIN = {
    "task": "caption",
    "num_samples": 6000,
    "steps": 3000,
    "batch_size": 16,
    "learning_rate": 5e-4,
    "seed": 1234,
    "image_size": 64,
}

# The short supervised warm-up of the `sft` stage: enough steps to answer some questions, not all.
WARMUP = {
    "task": "color_shape",
    "num_samples": 1000,
    "steps": 40,
    "batch_size": 16,
    "learning_rate": 5e-4,
    "seed": 4321,
    "image_size": 64,
}

FAMILY_SPECIAL_TOKENS = {
    # bos, eos, pad first, then the image tokens the processors look up by name.
    "smolvlm": {
        "bos": "<|im_start|>",
        "eos": "<end_of_utterance>",
        "pad": "<|im_end|>",
        "extra": ["<image>", "<fake_token_around_image>", "<global-img>", "<video>"]
        + [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)],
    },
    "qwen2_vl": {
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
        ],
    },
    "llava": {"bos": "<s>", "eos": "</s>", "pad": "<pad>", "extra": ["<image>"]},  # a LlamaTokenizer: tiny/llava.py
    "llava_next": {"bos": "<s>", "eos": "</s>", "pad": "<pad>", "extra": ["<image>"]},
    "llava_onevision": {
        "bos": None,
        "eos": "<|im_end|>",
        "pad": "<|endoftext|>",
        "extra": ["<|im_start|>", "<image>", "<video>"],
    },
    "qwen2_5_vl": qwen2_5_vl.SPECIAL_TOKENS,
    "qwen3_vl": qwen3_vl.SPECIAL_TOKENS,
    "qwen3_5": qwen3_5.SPECIAL_TOKENS,
    "gemma3": gemma.SPECIAL_TOKENS,
    "gemma4": gemma.GEMMA4_SPECIAL_TOKENS,
}


def _corpus() -> list[str]:
    """Sentences the tokenizer is trained on: the synthetic task's words, chat roles and common English."""
    words = (
        list(synthetic.COLORS)
        + list(synthetic.SHAPES)
        + list(synthetic.POSITIONS)
        + list(synthetic.NUMBER_WORDS)
        + "a an the is are there this that what which where how many color colour shape shapes image picture "
        "describe answer question user assistant system you helpful one word yes no left right top bottom "
        "of in on with and or to it be can see small large big photo product name category".split()
    )
    rng = random.Random(0)
    lines = list(synthetic.QUESTIONS.values()) + list(synthetic.CAPTION_PROMPTS)
    lines += ["User: " + q for q in synthetic.QUESTIONS.values()] + ["Assistant: " + w for w in words]
    lines += ["system\nYou are a helpful assistant.", "user\n", "assistant\n"]
    lines += [" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) for _ in range(3000)]
    return lines


def build_tokenizer(family: str) -> PreTrainedTokenizerFast:
    """The family's tokenizer (`TinyFamily.build_tokenizer`), by default a byte-level BPE (any text encodes) trained on
    `_corpus()`, with the family's special tokens."""
    custom = TINY[family].build_tokenizer
    if custom is not None:
        return custom(_corpus(), SPECS[family]["vocab_size"])
    return bpe_tokenizer(family)


def bpe_tokenizer(family: str) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on `_corpus()`, with `FAMILY_SPECIAL_TOKENS[family]` (bos, eos, pad, then the rest)."""
    spec = FAMILY_SPECIAL_TOKENS[family]
    specials = [t for t in (spec["bos"], spec["eos"], spec["pad"]) if t] + spec["extra"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=SPECS[family]["vocab_size"] - len(specials),
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=spec["bos"],
        eos_token=spec["eos"],
        pad_token=spec["pad"],
        extra_special_tokens=spec["extra"],
        model_max_length=4096,
        clean_up_tokenization_spaces=False,
    )


def build_processor(family: str):
    """The family's real processor class around a locally trained tokenizer (`TinyFamily.build_processor`)."""
    return TINY[family].build_processor(SPECS[family], build_tokenizer(family))


def _smolvlm_processor(spec: dict, tokenizer):
    from transformers import SmolVLMImageProcessor, SmolVLMProcessor, SmolVLMVideoProcessor

    vision = spec["vision"]
    tile = {"longest_edge": vision["image_size"]}
    image_processor = SmolVLMImageProcessor(size=tile, max_image_size=tile, do_image_splitting=False)
    video_processor = SmolVLMVideoProcessor(size=tile, max_image_size=tile)
    seq_len = (vision["image_size"] // vision["patch_size"]) ** 2 // spec["scale_factor"] ** 2
    return SmolVLMProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        image_seq_len=seq_len,
        chat_template=smolvlm_chat_template,
    )


def _qwen2_vl_processor(spec: dict, tokenizer):
    return qwen2_vl_processor(tokenizer, spec["min_pixels"], spec["max_pixels"])


def qwen2_vl_processor(tokenizer, min_pixels: int, max_pixels: int):
    """The real Qwen2-VL processor classes at these pixel bounds, with `tokenizer` and TRL's real chat template."""
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    pixels = {"min_pixels": min_pixels, "max_pixels": max_pixels}
    return Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(**pixels),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**pixels),
        chat_template=qwen2_5_vl_chat_template,
    )


def build_model(family: str, tokenizer, seed: int = 0):
    """A randomly initialised model of the real architecture, sized by SPECS, seeded."""
    spec = SPECS[family]
    torch.manual_seed(seed)
    ids = {
        name: tokenizer.convert_tokens_to_ids(tok)
        for name, tok in (("bos", tokenizer.bos_token), ("eos", tokenizer.eos_token), ("pad", tokenizer.pad_token))
        if tok
    }
    model = TINY[family].build_model(spec, tokenizer, ids)
    gen = model.generation_config
    # A family whose answers end with another token than eos (Gemma's <end_of_turn>) stops on both, as its real
    # generation_config.json says (`stop_tokens` in its spec).
    stops = [ids["eos"], *(tokenizer.convert_tokens_to_ids(t) for t in spec.get("stop_tokens", ()))]
    gen.eos_token_id = stops if len(stops) > 1 else ids["eos"]
    gen.pad_token_id, gen.bos_token_id = ids["pad"], ids.get("bos")
    gen.do_sample = False
    return model


def _smolvlm_model(spec: dict, tokenizer, ids: dict):
    from transformers import LlamaConfig, SmolVLMConfig, SmolVLMForConditionalGeneration, SmolVLMVisionConfig

    text = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=4096,
        bos_token_id=ids["bos"],
        eos_token_id=ids["eos"],
        pad_token_id=ids["pad"],
        tie_word_embeddings=False,
        **spec["text"],
    )
    config = SmolVLMConfig(
        vision_config=SmolVLMVisionConfig(**spec["vision"]).to_dict(),
        text_config=text.to_dict(),
        scale_factor=spec["scale_factor"],
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=ids["pad"],
    )
    return SmolVLMForConditionalGeneration(config)


def _qwen2_vl_model(spec: dict, tokenizer, ids: dict):
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    text_spec = dict(spec["text"])
    mrope = text_spec.pop("mrope_section")
    head_dim = text_spec["hidden_size"] // text_spec["num_attention_heads"]
    assert sum(mrope) == head_dim // 2, "mrope_section must sum to head_dim / 2"
    text = dict(
        vocab_size=len(tokenizer),
        max_position_embeddings=4096,
        eos_token_id=ids["eos"],
        pad_token_id=ids["pad"],
        bos_token_id=None,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope},
        **text_spec,
    )
    vision = dict(spec["vision"], hidden_size=text_spec["hidden_size"])
    conv = tokenizer.convert_tokens_to_ids
    config = Qwen2VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=conv("<|image_pad|>"),
        video_token_id=conv("<|video_pad|>"),
        vision_start_token_id=conv("<|vision_start|>"),
        vision_end_token_id=conv("<|vision_end|>"),
        tie_word_embeddings=False,
    )
    return Qwen2VLForConditionalGeneration(config)


@dataclass(frozen=True)
class TinyFamily:
    """How one family's tiny checkpoint is built: its size, its tokens and its builders (one record per family, looked
    up by the family's name; adding a family is one record here or in a module that registers one with `register`).

    Args:
        spec: sizes of the text and vision models and the processor settings (hashed into the cache key).
        special_tokens: bos, eos, pad (None where the family has none) and the other special tokens (`extra`).
        build_processor: `(spec, tokenizer) -> processor`, the real processor class with the family's chat template.
        build_model: `(spec, tokenizer, ids) -> model`, the real architecture class, randomly initialised; `ids` maps
            bos / eos / pad to token ids.
        build_tokenizer: `(corpus, vocab_size) -> tokenizer` when the family needs another tokenizer class than the
            byte-level BPE (`bpe_tokenizer`), e.g. LLaVA-1.5's `LlamaTokenizer`.
    """

    spec: dict
    special_tokens: dict
    build_processor: Callable
    build_model: Callable
    build_tokenizer: Callable | None = None


def register(name: str, family: TinyFamily) -> None:
    """Add a family's tiny builders (`tiny:<name>`); SPECS and FAMILY_SPECIAL_TOKENS follow."""
    TINY[name] = family
    SPECS[name] = family.spec
    FAMILY_SPECIAL_TOKENS[name] = family.special_tokens


TINY: dict[str, TinyFamily] = {}
for _name, _processor, _model in (
    ("smolvlm", _smolvlm_processor, _smolvlm_model),
    ("qwen2_vl", _qwen2_vl_processor, _qwen2_vl_model),
):
    register(_name, TinyFamily(SPECS[_name], FAMILY_SPECIAL_TOKENS[_name], _processor, _model))
for _name in ("llava", "llava_onevision", "llava_next"):
    register(_name, llava.tiny_family(_name, SPECS[_name], FAMILY_SPECIAL_TOKENS[_name], TinyFamily))
register("qwen2_5_vl", qwen2_5_vl.tiny_family(SPECS["qwen2_5_vl"], FAMILY_SPECIAL_TOKENS["qwen2_5_vl"], TinyFamily))
register("qwen3_vl", qwen3_vl.tiny_family(SPECS["qwen3_vl"], FAMILY_SPECIAL_TOKENS["qwen3_vl"], TinyFamily))
register("qwen3_5", qwen3_5.tiny_family(SPECS["qwen3_5"], FAMILY_SPECIAL_TOKENS["qwen3_5"], TinyFamily))
register("gemma3", gemma.tiny_family("gemma3", SPECS["gemma3"], FAMILY_SPECIAL_TOKENS["gemma3"], TinyFamily))
register("gemma4", gemma.tiny_family("gemma4", SPECS["gemma4"], FAMILY_SPECIAL_TOKENS["gemma4"], TinyFamily))


def pretrain(
    model,
    processor,
    *,
    task: str,
    num_samples: int,
    steps: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    image_size: int,
    log_every: int = 100,
) -> list[float]:
    """Full fine-tuning on a synthetic task with our collator and a plain AdamW loop; returns the losses.

    A plain loop (not a Trainer) keeps this small and bit-for-bit deterministic for the cache.
    """
    from tqdm.auto import tqdm

    from ..data.collators import VisionChatCollator

    data = synthetic.make_dataset(task, num_samples=num_samples, seed=seed, image_size=image_size)
    collator = VisionChatCollator(processor)
    torch.manual_seed(seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / (steps // 20 + 1)) * 0.5 * (1 + torch.cos(torch.tensor(s / steps * 3.14159)))
    )
    rng = random.Random(seed)
    order: list[int] = []
    losses = []
    bar = tqdm(range(steps), desc=f"pre-training tiny base on '{task}'", leave=False)
    for step in bar:
        if len(order) < batch_size:
            order += rng.sample(range(len(data)), len(data))
        idx, order = order[:batch_size], order[batch_size:]
        batch = collator([data[i] for i in idx])
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        losses.append(loss.item())
        if step % log_every == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    return losses


# Stages of a tiny checkpoint: `random` (initialised only), `base` (pre-trained on captions) and `sft` (the base
# after a short supervised warm-up on the colour/shape questions: partly trained, so that preference and RL
# recipes start with room to improve).
STAGES = {"random": (), "base": ("pretrain",), "sft": ("pretrain", "warmup")}
TRAINING = {"pretrain": PRETRAIN, "warmup": WARMUP}


def training_settings(family: str, step: str) -> dict:
    """The settings of a training stage (`pretrain`, `warmup`) for `family`: PRETRAIN / WARMUP, with what the family's
    SPECS entry overrides under the same key (e.g. a shorter pre-training: `"pretrain": {"steps": 1500}`)."""
    return {**TRAINING[step], **SPECS[family].get(step, {})}


def _spec_hash(family: str, stage: str) -> str:
    spec = {
        "version": BUILD_VERSION,
        "family": family,
        "spec": SPECS[family],
        "pretrain": training_settings(family, "pretrain") if "pretrain" in STAGES[stage] else None,
        "dependencies": build_dependencies(),
    }
    if "warmup" in STAGES[stage]:
        spec["warmup"] = training_settings(family, "warmup")
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def checkpoint_dir(name: str) -> Path:
    family, stage = parse_name(name)
    suffix = ("" if stage == "base" else f"-{stage}") + (f"-seed{build_seed()}" if build_seed() else "")
    return cache_root() / "tiny" / f"{family}{suffix}-{_spec_hash(family, stage)}"


def parse_name(name: str) -> tuple[str, str]:
    """'tiny:smolvlm' -> ('smolvlm', 'base'); 'tiny:qwen2_vl-random' -> ('qwen2_vl', 'random')."""
    family, _, stage = name.removeprefix(TINY_PREFIX).partition("-")
    stage = stage or "base"
    if family not in SPECS or stage not in STAGES or stage == "base" and name.endswith("-base"):
        choices = [f"{TINY_PREFIX}{f}{'' if st == 'base' else '-' + st}" for f in SPECS for st in STAGES]
        raise ValueError(f"Unknown tiny model {name!r}; choose one of {', '.join(choices)}")
    return family, stage


def build(name: str, force: bool = False) -> Path:
    """Build (or reuse from cache) the tiny checkpoint `name` and return its directory."""
    family, stage = parse_name(name)
    target = checkpoint_dir(name)
    if not force and (target.exists() or copy_shipped(target)):
        return target
    if not (in_pinned_process() or stage == "random" and random_build_here()):
        return build_pinned(__name__, name, force, settings=("PRETRAIN", "WARMUP"))
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    if stage == "sft":
        base = build(f"{TINY_PREFIX}{family}")
    seed = build_seed() + (0 if stage == "random" else SPECS[family].get("base_seed", 0))
    with reproducible_build():
        if stage == "sft":
            from transformers import AutoModelForImageTextToText, AutoProcessor

            processor, model = AutoProcessor.from_pretrained(base), AutoModelForImageTextToText.from_pretrained(base)
        else:
            processor = build_processor(family)
            model = build_model(family, processor.tokenizer, seed=seed)
        info = {"name": name, "family": family, "num_parameters": model.num_parameters(), **build_dependencies()}
        info["ran_with"] = runtime_numerics()
        for step in STAGES[stage][-1:] if stage == "sft" else STAGES[stage]:
            logger.info("Training %s (%s) once, cached in %s ...", name, step, target)
            settings = training_settings(family, step)
            settings["seed"] += seed
            losses = pretrain(model, processor, **settings)
            info[step] = {**settings, "first_loss": losses[0], "final_loss": sum(losses[-20:]) / 20}
    info["build_seconds"] = round(time.time() - started, 1)
    save_atomically(target, model, processor, info, force)
    logger.info("Built %s in %.0fs: %s", name, info["build_seconds"], target)
    return target


def main(argv: list[str] | None = None) -> argparse.Namespace | None:
    """Run the `build` command; return the parsed `ship` command for vlm_recipes/tiny/__main__.py, which sees every
    builder (CLIP and BLIP too)."""
    parser = argparse.ArgumentParser(description="Build the offline tiny checkpoints.")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build (or rebuild with --force) tiny checkpoints")
    b.add_argument("--family", choices=sorted(SPECS), action="append", help="default: all families")
    b.add_argument("--stage", choices=sorted(STAGES), default="base", help="random, base (default) or sft")
    b.add_argument("--force", action="store_true", help="rebuild even if cached")
    sh = sub.add_parser("ship", help="build the default run's bases and copy them into tiny_bases/ (maintainers)")
    sh.add_argument("names", nargs="*", default=list(SHIPPED_BASES), help="default: %(default)s")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "ship":
        return args
    for family in args.family or sorted(SPECS):
        name = f"{TINY_PREFIX}{family}{'' if args.stage == 'base' else '-' + args.stage}"
        print(f"{name}: {build(name, force=args.force)}")
    return None


if __name__ == "__main__" and main() is not None:
    raise SystemExit("Ship with `python -m vlm_recipes.tiny ship` (it ships the CLIP and BLIP bases too).")

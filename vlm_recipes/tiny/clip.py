"""A tiny CLIP built and trained offline, so the zero-shot recipes have a model that really works on a CPU.

It is a real `CLIPModel` with the real `CLIPProcessor` (a `CLIPImageProcessor` and a byte-level BPE tokenizer trained
locally, lower-casing like CLIP's, with CLIP's start/end tokens added around every text: CLIP pools the text at
the end token). `tiny:clip-random` is the initialised model; `tiny:clip` is that model trained contrastively (our
CLIP loss, transformers' Trainer, the code path of `recipes/clip_train.py`) on synthetic image/caption pairs.
Both are cached like the tiny VLMs (see vlm_recipes.tiny), keyed by a hash of this build recipe.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import tempfile
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, PreTrainedTokenizerFast

from ..data import synthetic
from .common import (
    build_dependencies,
    build_pinned,
    cache_root,
    copy_shipped,
    in_pinned_process,
    random_build_here,
    reproducible_build,
    runtime_numerics,
    save_atomically,
)
from .vlm import SPECS

logger = logging.getLogger(__name__)

BUILD_VERSION = 2
NAMES = ("tiny:clip", "tiny:clip-random")
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
SPEC = {
    "vocab_size": 512,
    "max_text_length": 32,
    "projection_dim": 64,
    "text": {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4},
    "vision": dict(SPECS["smolvlm"]["vision"]),  # the tiny SmolVLM's vision tower size: 64 px, 8 px patches
}
TRAIN = {
    "num_samples": 8000,
    "two_shape_fraction": 0.3,
    "steps": 600,
    "batch_size": 64,
    "learning_rate": 5e-4,
    "seed": 1234,
    "image_size": 64,
}


def _corpus() -> list[str]:
    words = (
        list(synthetic.COLORS)
        + list(synthetic.SHAPES)
        + "a an the one and of photo picture image drawing rendering painting sketch close-up small big large "
        "on in with grey gray background digit number zero two three four five six seven eight nine "
        "dog cat car bird plane ship truck horse frog deer person face flower".split()
    )
    rng = random.Random(0)
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 10))) for _ in range(3000)]
    return lines + [f"a photo of a {c}." for c in synthetic.CLASS_NAMES]


def build_tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=SPEC["vocab_size"],
        special_tokens=[BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    # CLIP's text tower pools the hidden state at the end token: every text must end with it.
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, tok.token_to_id(BOS)), (EOS, tok.token_to_id(EOS))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=EOS, model_max_length=SPEC["max_text_length"]
    )


def build_processor() -> CLIPProcessor:
    side = SPEC["vision"]["image_size"]
    image_processor = CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side})
    return CLIPProcessor(image_processor=image_processor, tokenizer=build_tokenizer())


def build_model(tokenizer, seed: int = 0) -> CLIPModel:
    torch.manual_seed(seed)
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    config = CLIPConfig(
        text_config={
            **SPEC["text"],
            "vocab_size": len(tokenizer),
            "max_position_embeddings": SPEC["max_text_length"],
            "pad_token_id": tokenizer.pad_token_id,
            **ids,
        },
        vision_config=SPEC["vision"],
        projection_dim=SPEC["projection_dim"],
    )
    return CLIPModel(config)


def _spec_hash(name: str) -> str:
    spec = {
        "version": BUILD_VERSION,
        "spec": SPEC,
        "train": TRAIN if name == "tiny:clip" else None,
        "dependencies": build_dependencies(),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def checkpoint_dir(name: str) -> Path:
    return cache_root() / "tiny" / f"{name.removeprefix('tiny:')}-{_spec_hash(name)}"


def build(name: str = "tiny:clip", force: bool = False) -> Path:
    """Build (or reuse from cache) `tiny:clip` or `tiny:clip-random`; returns the checkpoint directory."""
    if name not in NAMES:
        raise ValueError(f"Unknown tiny CLIP {name!r}; choose one of {', '.join(NAMES)}.")
    target = checkpoint_dir(name)
    if not force and (target.exists() or copy_shipped(target)):
        return target
    if not (in_pinned_process() or name == "tiny:clip-random" and random_build_here()):
        return build_pinned(__name__, name, force, settings=("TRAIN",))
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with reproducible_build():  # pinned numerics: the same weights whichever process or machine builds first
        processor = build_processor()
        model = build_model(processor.tokenizer)
        info = {"name": name, "num_parameters": model.num_parameters(), **build_dependencies()}
        info["ran_with"] = runtime_numerics()
        if name == "tiny:clip":
            logger.info("Training %s once (about a minute), cached in %s ...", name, target)
            info["train"] = {**TRAIN, **_train(model, processor)}
    info["build_seconds"] = round(time.time() - started, 1)
    save_atomically(target, model, processor, info, force)
    return target


def _train(model, processor) -> dict:
    from transformers import TrainingArguments

    from ..baselines.contrastive import ContrastiveCollator, ContrastiveTrainer

    data = synthetic.make_caption_dataset(
        TRAIN["num_samples"],
        seed=TRAIN["seed"],
        image_size=TRAIN["image_size"],
        two_shape_fraction=TRAIN["two_shape_fraction"],
    )
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            max_steps=TRAIN["steps"],
            per_device_train_batch_size=TRAIN["batch_size"],
            learning_rate=TRAIN["learning_rate"],
            lr_scheduler_type="cosine",
            warmup_steps=TRAIN["steps"] // 20,
            weight_decay=0.1,
            seed=TRAIN["seed"],
            use_cpu=True,
            save_strategy="no",
            report_to="none",
            logging_steps=50,
            remove_unused_columns=False,
            dataloader_num_workers=0,
            disable_tqdm=False,
        )
        trainer = ContrastiveTrainer(
            model=model, args=args, train_dataset=data, data_collator=ContrastiveCollator(processor), loss_name="clip"
        )
        result = trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    model.eval()
    return {"first_loss": losses[0], "final_loss": losses[-1], "mean_loss": result.training_loss}

"""A tiny BLIP built and pre-trained offline, so the BLIP recipes have models that really work on a CPU.

Three checkpoints of transformers' real BLIP classes, with the real `BlipProcessor` (a `BlipImageProcessor` and a
`BertTokenizer` whose WordPiece vocabulary is trained locally, with BLIP's special tokens: `[DEC]` as the decoder's
start token, `[ENC]`, and BERT's `[CLS]`/`[SEP]`/`[PAD]`/`[MASK]`/`[UNK]`):

- `tiny:blip`: `BlipForConditionalGeneration` (vision encoder + caption decoder), like
  `Salesforce/blip-image-captioning-base`;
- `tiny:blip-itm`: `BlipForImageTextRetrieval` (vision encoder + text encoder with cross-attention, the ITC
  projections and the ITM head), like `Salesforce/blip-itm-base-coco`;
- `tiny:blip-vqa`: `BlipForQuestionAnswering`, assembled from the pre-trained parts (vision encoder, the ITM text
  encoder as question encoder, the caption decoder as answer decoder) and never trained on questions: like a
  pre-trained BLIP before its VQA fine-tuning. Its zero-shot answers are captions or noise.

They come from one pre-training, BLIP's three objectives trained jointly as in ALBEF/BLIP, on a shared vision
encoder: image-text contrastive (ITC, with every caption of the same content counted as a positive), image-text
matching (ITM, binary, on the positives plus one negative text per image and one negative image per text, drawn half
from the ITC similarities as ALBEF's hard negatives and half uniformly: see `pretrain`) and captioning (LM, half of
the captions behind BLIP's prompt "a picture of", which is then not a target). The data are synthetic shapes with
captions that never name a position (`vlm_recipes.captioning.synthetic`, task `caption`). The vision tower starts
from 2-D sine-cosine position embeddings (`_set_sincos_positions`). One build writes all three checkpoints (about
80 s of one CPU core), cached and keyed like the other tiny models (see vlm_recipes.tiny).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import string
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..captioning import synthetic
from .common import (
    TINY_PREFIX,
    build_dependencies,
    build_pinned,
    build_seed,
    cache_root,
    copy_shipped,
    in_pinned_process,
    reproducible_build,
    runtime_numerics,
    save_atomically,
)

logger = logging.getLogger(__name__)

BUILD_VERSION = 3
NAMES = {"tiny:blip": "caption", "tiny:blip-itm": "retrieval", "tiny:blip-vqa": "vqa"}
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # BERT's, ids 0-4 as in bert-base-uncased
BLIP_TOKENS = {"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]}  # what BLIP adds to BERT's
PROMPT = "a picture of"  # BLIP's captioning prompt
SPEC = {
    "vocab_size": 400,
    "max_text_length": 40,
    "image_text_hidden_size": 64,
    "text": {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4},
    "vision": {
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "image_size": 64,
        "patch_size": 16,  # 4 x 4 patches: enough to tell sides apart, and cheap
        "initializer_range": 0.02,  # BLIP's default (1e-10) is meant for loading weights, not training from scratch
    },
}
PRETRAIN = {
    "task": "caption",
    "num_samples": 3000,
    "two_shape_fraction": 0.3,
    "steps": 300,
    "batch_size": 24,
    "learning_rate": 1e-3,
    "itc_temperature": 0.07,
    "prompt_fraction": 0.5,
    "seed": 1234,
    "image_size": 64,
}


def _words() -> list[str]:
    """Every word of the tiny BLIP's vocabulary: the synthetic captions' and questions' words and common ones."""
    extra = (
        "a an the of in on at is are this that what which where how many color colour shape shapes picture photo "
        "image drawing describe question answer yes no one two three four some there here with and or small big "
        "large background grey gray side half left right top bottom middle corner next to".split()
    )
    return sorted(set(synthetic.corpus_words()) | set(extra) | set(PROMPT.split()))


def build_tokenizer():
    """BERT's tokenizer class over a WordPiece vocabulary of `_words()`, with BLIP's added tokens.

    The vocabulary is written out, not trained: `tokenizers`' WordPiece trainer breaks ties between equally frequent
    merges in hash-map order, so two builds of one corpus got different vocabularies (5 of 262 sub-word tokens,
    measured in fresh processes) and the tiny BLIP was another model on every build. Here: BERT's special tokens,
    every ASCII letter, digit and punctuation mark alone and as a `##` continuation (so any English text encodes
    without [UNK]), then each word whole: a word of the synthetic data is one token, as it was with the trainer."""
    from transformers import BertTokenizer

    alphabet = list(string.ascii_lowercase + string.digits + string.punctuation)
    tokens = SPECIAL_TOKENS + alphabet + [f"##{c}" for c in alphabet]
    tokens += [w for w in _words() if w not in tokens]
    if len(tokens) > SPEC["vocab_size"]:
        raise ValueError(f"The tiny BLIP vocabulary has {len(tokens)} tokens; SPEC allows {SPEC['vocab_size']}.")
    tokenizer = BertTokenizer(vocab={t: i for i, t in enumerate(tokens)}, model_max_length=SPEC["max_text_length"])
    tokenizer.add_special_tokens(BLIP_TOKENS)
    return tokenizer


def build_processor():
    from transformers import BlipImageProcessor, BlipProcessor

    side = SPEC["vision"]["image_size"]
    return BlipProcessor(
        image_processor=BlipImageProcessor(size={"height": side, "width": side}), tokenizer=build_tokenizer()
    )


def build_config(tokenizer):
    from transformers import BlipConfig

    ids = {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.convert_tokens_to_ids("[DEC]"),
        "sep_token_id": tokenizer.sep_token_id,
        "eos_token_id": tokenizer.sep_token_id,
    }
    text = {**SPEC["text"], "vocab_size": len(tokenizer), "max_position_embeddings": SPEC["max_text_length"], **ids}
    return BlipConfig(
        text_config=text, vision_config=SPEC["vision"], image_text_hidden_size=SPEC["image_text_hidden_size"]
    )


def _spec_hash() -> str:
    spec = {"version": BUILD_VERSION, "spec": SPEC, "pretrain": PRETRAIN, "dependencies": build_dependencies()}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def checkpoint_dir(name: str) -> Path:
    suffix = f"-seed{build_seed()}" if build_seed() else ""
    return cache_root() / "tiny" / f"{name.removeprefix(TINY_PREFIX)}{suffix}-{_spec_hash()}"


def build(name: str = "tiny:blip", force: bool = False) -> Path:
    """Build (or reuse from cache) a tiny BLIP checkpoint; one pre-training writes all three. Returns its dir."""
    if name not in NAMES:
        raise ValueError(f"Unknown tiny BLIP {name!r}; choose one of {', '.join(NAMES)}.")
    target = checkpoint_dir(name)
    if not force and (target.exists() or copy_shipped(target)):
        return target
    if not in_pinned_process():
        return build_pinned(__name__, name, force, settings=("PRETRAIN",))
    target.parent.mkdir(parents=True, exist_ok=True)
    from transformers import BlipForConditionalGeneration, BlipForImageTextRetrieval, BlipForQuestionAnswering

    started = time.time()
    seed = PRETRAIN["seed"] + build_seed()
    with reproducible_build():
        processor = build_processor()
        config = build_config(processor.tokenizer)
        torch.manual_seed(seed)
        captioner = BlipForConditionalGeneration(config)
        _set_sincos_positions(captioner.vision_model.embeddings)
        matcher = BlipForImageTextRetrieval(config)
        matcher.vision_model = captioner.vision_model  # one vision encoder for the three objectives, as in BLIP
        logger.info("Pre-training the tiny BLIP once (about 80 s), cached in %s ...", target.parent)
        figures = pretrain(captioner, matcher, processor, seed)
        ran_with = runtime_numerics()
        answerer = BlipForQuestionAnswering(config)
        answerer.vision_model.load_state_dict(captioner.vision_model.state_dict())
        answerer.text_encoder.load_state_dict(matcher.text_encoder.state_dict())
        answerer.text_decoder.load_state_dict(captioner.text_decoder.state_dict())
    info = {"pretrain": {**PRETRAIN, "seed": seed, **figures}, **build_dependencies(), "ran_with": ran_with}
    info["build_seconds"] = round(time.time() - started, 1)
    for model_name, model in (("tiny:blip", captioner), ("tiny:blip-itm", matcher), ("tiny:blip-vqa", answerer)):
        gen = getattr(model, "generation_config", None)  # the retrieval head generates nothing and has none
        if gen is not None:
            gen.bos_token_id, gen.eos_token_id, gen.pad_token_id = (
                config.text_config.bos_token_id,
                config.text_config.sep_token_id,
                config.text_config.pad_token_id,
            )
        model.eval()
        path = checkpoint_dir(model_name)
        if force or not path.exists():
            entry = {"name": model_name, "num_parameters": model.num_parameters(), **info}
            save_atomically(path, model, processor, entry, force)
    logger.info("Built the tiny BLIP in %.0fs", info["build_seconds"])
    return target


def _set_sincos_positions(embeddings) -> None:
    """2-D sine-cosine position embeddings (MAE's) for the vision tower, in place of BLIP's initialisation at 0.02.

    A real BLIP's vision tokens carry their position (a pre-trained ViT); ours are pre-trained on captions that never
    need it, and with small random position embeddings the features then hold no usable position: fine-tuning on
    captions that name the side of the shape learned a constant side (measured: 50% correct, LoRA and full). With
    these, of the size of the patch embeddings, the position is in the features from the start."""
    param = embeddings.position_embedding  # [1, 1 + grid * grid, dim]: the class token first
    dim, grid = param.shape[-1], round((param.shape[1] - 1) ** 0.5)
    quarter = dim // 4
    freqs = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float) / quarter)
    ys, xs = torch.meshgrid(
        torch.arange(grid, dtype=torch.float), torch.arange(grid, dtype=torch.float), indexing="ij"
    )
    parts = []
    for coord in (xs.reshape(-1), ys.reshape(-1)):
        angles = coord[:, None] * freqs[None]
        parts += [angles.sin(), angles.cos()]
    table = torch.cat([torch.zeros(1, dim), torch.cat(parts, dim=1)])
    with torch.no_grad():
        param.copy_(table[None])


def _itc_logits(matcher, image_embeds, input_ids, attention_mask, temperature):
    text = matcher.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    image_feat = F.normalize(matcher.vision_proj(image_embeds[:, 0]), dim=-1)
    text_feat = F.normalize(matcher.text_proj(text[:, 0]), dim=-1)
    return image_feat @ text_feat.T / temperature


def _itm_logits(matcher, image_embeds, input_ids, attention_mask):
    atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long)
    hidden = matcher.text_encoder(
        input_ids=input_ids,
        attention_mask=attention_mask,
        encoder_hidden_states=image_embeds,
        encoder_attention_mask=atts,
    ).last_hidden_state
    return matcher.itm_head(hidden[:, 0])


def pretrain(captioner, matcher, processor, seed: int) -> dict:
    """ITC + ITM + LM on synthetic captions with a plain AdamW loop (deterministic for the cache); returns figures."""
    from tqdm.auto import tqdm

    settings = PRETRAIN
    data = synthetic.make_caption_dataset(
        settings["task"],
        settings["num_samples"],
        seed=seed,
        image_size=settings["image_size"],
        two_shape_fraction=settings["two_shape_fraction"],
    )
    tokenizer = processor.tokenizer
    bos = captioner.config.text_config.bos_token_id
    prompt_len = len(tokenizer(PROMPT).input_ids) - 1  # [CLS] + prompt words, without [SEP]
    params = {id(p): p for p in [*captioner.parameters(), *matcher.parameters()]}.values()
    opt = torch.optim.AdamW(params, lr=settings["learning_rate"], weight_decay=0.05)
    steps = settings["steps"]
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / (steps // 20 + 1)) * 0.5 * (1 + torch.cos(torch.tensor(s / steps * 3.14159)))
    )
    rng = random.Random(seed)
    torch.manual_seed(seed)
    captioner.train()
    matcher.train()
    order: list[int] = []
    history = {"itc": [], "itm": [], "lm": []}
    for _ in tqdm(range(steps), desc="pre-training the tiny BLIP", leave=False):
        if len(order) < settings["batch_size"]:
            order += rng.sample(range(len(data)), len(data))
        idx, order = order[: settings["batch_size"]], order[settings["batch_size"] :]
        rows = data.select(idx)
        captions = [rng.choice(c) for c in rows["captions"]]
        canonical = rows["canonical"]
        prompted = [rng.random() < settings["prompt_fraction"] for _ in captions]
        images = [im.convert("RGB") for im in rows["image"]]
        pixels = processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
        text = tokenizer(captions, padding=True, return_tensors="pt")
        image_embeds = captioner.vision_model(pixel_values=pixels).last_hidden_state

        # ITC: captions of the same content are all positives (the synthetic data repeats content).
        same = torch.tensor([[a == b for b in canonical] for a in canonical], dtype=torch.float)
        logits = _itc_logits(matcher, image_embeds, text.input_ids, text.attention_mask, settings["itc_temperature"])
        targets = same / same.sum(dim=1, keepdim=True)
        itc = (
            -(targets * logits.log_softmax(1)).sum(1).mean() - (targets * logits.T.log_softmax(1)).sum(1).mean()
        ) / 2

        # ITM: positives, plus a negative text per image and a negative image per text. ALBEF samples them by ITC
        # similarity (hard negatives); at this size and step budget the ITM head then stays at its prior (the
        # hardest negatives differ by one word of a two-shape caption), so half the draw is uniform over the batch.
        with torch.no_grad():
            other = (~same.bool()).float()
            uniform = other / other.sum(1, keepdim=True).clamp(min=1)
            hard = logits.softmax(1) * other
            weights = 0.5 * hard / hard.sum(1, keepdim=True).clamp(min=1e-9) + 0.5 * uniform + 1e-9
            hard_t = logits.T.softmax(1) * other
            weights_t = 0.5 * hard_t / hard_t.sum(1, keepdim=True).clamp(min=1e-9) + 0.5 * uniform + 1e-9
            neg_text = torch.multinomial(weights, 1).squeeze(1)
            neg_image = torch.multinomial(weights_t, 1).squeeze(1)
        n = len(captions)
        all_images = torch.cat([image_embeds, image_embeds, image_embeds[neg_image]])
        all_ids = torch.cat([text.input_ids, text.input_ids[neg_text], text.input_ids])
        all_mask = torch.cat([text.attention_mask, text.attention_mask[neg_text], text.attention_mask])
        labels = torch.tensor([1] * n + [0] * (2 * n))
        itm = F.cross_entropy(_itm_logits(matcher, all_images, all_ids, all_mask), labels)

        # LM: [DEC] (prompt) caption [SEP]; padding and the prompt are not targets.
        texts = [f"{PROMPT} {c}" if p else c for c, p in zip(captions, prompted)]
        dec = tokenizer(texts, padding=True, return_tensors="pt")
        ids = dec.input_ids.clone()
        ids[:, 0] = bos
        lm_labels = ids.masked_fill(dec.attention_mask == 0, -100)
        for i, p in enumerate(prompted):
            if p:
                lm_labels[i, :prompt_len] = -100
        lm = captioner.text_decoder(
            input_ids=ids, attention_mask=dec.attention_mask, encoder_hidden_states=image_embeds, labels=lm_labels
        ).loss

        loss = itc + itm + lm
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        for key, value in (("itc", itc), ("itm", itm), ("lm", lm)):
            history[key].append(value.item())
    captioner.eval()
    matcher.eval()
    return {
        f"{k}_loss_{w}": round(sum(v[s]) / len(v[s]), 4)
        for k, v in history.items()
        for w, s in (("first", slice(0, 20)), ("final", slice(-20, None)))
    }

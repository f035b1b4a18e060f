"""Can the data pipeline keep the GPU fed? The collator's measured rate against a GPU's FLOP-bound sample rate.

Trainer and the dataloader already run collators in worker processes (`dataloader_num_workers`); nothing says how
many a model needs. What this module adds, for preflight and benches/bench_data_pipeline.py:

- `collate_rate`: examples per second of a collator on given rows, on one thread (what one dataloader worker on one
  core does), the median of a few rounds;
- `flops_per_sample`: the training FLOPs of one sample of a batch (parameter counts from the model, token and patch
  counts from the batch), and the arithmetic as text;
- `gpu_samples_per_second`: what an H100 at 40% of its dense bf16 peak takes at that cost.
"""

from __future__ import annotations

import math
import random
import statistics
import time

import torch

H100_BF16_FLOPS = 989e12
MFU = 0.40  # model FLOP utilisation a well-tuned small-model run reaches


def collate_rate(collate, rows: list[dict], batch_size: int, rounds: int = 3) -> float:
    """Median examples/s of `collate` over `rounds` passes through `rows` in batches of `batch_size`, on one thread."""
    batches = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a dataloader worker: one core
    try:
        collate(batches[0])  # warm-up
        rates = []
        for _ in range(rounds):
            start = time.perf_counter()
            for batch in batches:
                collate(batch)
            rates.append(len(rows) / (time.perf_counter() - start))
    finally:
        torch.set_num_threads(threads)
    return statistics.median(rates)


def _millions(n: float) -> str:
    return f"{n / 1e6:,.0f}" if n >= 1e8 else f"{n / 1e6:.3g}"


def _vision_shape(config) -> tuple[int, int]:
    vision = config.vision_config
    layers = getattr(vision, "num_hidden_layers", None) or vision.depth
    width = getattr(vision, "embed_dim", None) or vision.hidden_size
    return layers, width


def flops_per_sample(model, family, batch: dict, train_vision: bool = False, full: bool = False) -> tuple[float, str]:
    """Training FLOPs of one average sample of `batch` (a collated batch with image inputs) on `model` (its
    parameters may be on the meta device), and the arithmetic.

    A matmul costs 2 FLOPs per parameter and token forward; backward costs 2 more for the activations' gradients and,
    for trained weights, 2 more for the weights' (LoRA adapters: negligible). So: a frozen vision tower 2 x N x T,
    with LoRA 4 x N x T, trained in full 6 x N x T; the language model 4 x N x T with LoRA, 6 x N x T in full; plus
    attention, 4 x layers x width x seq per token forward.
    """
    params = {"vision_tower": 0, "projector": 0, "language_model": 0}
    for name, p in model.named_parameters():
        params[family.part_of(name)] += p.numel()
    text_params = params["language_model"] - model.get_input_embeddings().weight.numel()  # a lookup, not a matmul
    rows = batch["input_ids"].shape[0]
    tokens = float(batch["attention_mask"].sum()) / rows
    config = model.config
    layers, width = _vision_shape(config)
    if "pixel_attention_mask" in batch:  # SmolVLM / Idefics3: tiles of image_size, patch_size patches each
        per_frame = (config.vision_config.image_size // config.vision_config.patch_size) ** 2
        frames = float(batch["pixel_attention_mask"].flatten(2).any(-1).sum()) / rows
        vision_tokens, seq = frames * per_frame, per_frame
    else:  # Qwen2-VL: one row of pixel_values per patch; attention over the whole image
        vision_tokens = batch["pixel_values"].shape[0] / rows
        seq = vision_tokens
    v_factor = (6 if full else 4) if train_vision else 2
    vision = v_factor * params["vision_tower"] * vision_tokens + (v_factor * 2) * layers * width * seq * vision_tokens
    text_config = config.get_text_config()
    t_factor = 6 if full else 4
    t_layers, t_width = text_config.num_hidden_layers, text_config.hidden_size
    text = t_factor * (text_params + params["projector"]) * tokens + t_factor * 2 * t_layers * t_width * tokens**2
    text += 6 * text_config.vocab_size * t_width * tokens  # the logits: output projection forward + backward
    how = (
        f"vision tower {_millions(params['vision_tower'])} M params x {vision_tokens:.0f} patches x {v_factor} "
        f"({'trained' if train_vision else 'frozen: forward only'}) + attention = {vision / 1e12:.3g} TFLOP; "
        f"language model {_millions(text_params)} M params (+ projector, + logits) x {tokens:.0f} tokens x {t_factor} "
        f"({'full' if full else 'LoRA: forward + backward through activations'}) + attention = {text / 1e12:.3g} TFLOP"
    )
    return vision + text, how


def gpu_samples_per_second(flops: float) -> float:
    """Samples/s of an H100 at `MFU` of its dense bf16 peak, at `flops` per sample."""
    return H100_BF16_FLOPS * MFU / flops


def workers_needed(gpu_rate: float, per_worker: float) -> int:
    return math.ceil(gpu_rate / per_worker)


def _model_on_meta(model_args):
    """The model's architecture with its parameters on the meta device (no weights read, no memory)."""
    from transformers import AutoConfig, AutoModelForImageTextToText

    from ..models.sources import resolve

    config = AutoConfig.from_pretrained(resolve(model_args.model_name_or_path), revision=model_args.model_revision)
    with torch.device("meta"):
        return AutoModelForImageTextToText.from_config(config)


def pipeline_text(method, ds, processor, data_args, training_args, model_args, num_rows: int, seed: int = 0) -> str:
    """Preflight's lines on the data pipeline: the collator's measured examples/s per worker on up to `num_rows`
    sampled rows of `ds` that encode, with the config's image_processing and with `device`, and the workers an H100
    would need (FLOP arithmetic from the model's architecture)."""
    from ..data.collation import build_collator
    from ..data.collators import SampleError
    from ..data.images import ImageError, undecoded
    from ..models.families import family_of

    if method.renders_prompts:
        return "data pipeline: not measured (the trainer renders and processes these prompts itself)"

    def collator(mode: str = "processor"):
        return build_collator(
            method.collator_class,
            processor,
            data_args,
            max_length=getattr(training_args, "max_length", None),
            image_processing=mode,
        )

    raw = undecoded(ds)
    probe = collator()
    rows = []
    for index in random.Random(seed).sample(range(len(raw)), min(len(raw), 4 * num_rows)):
        row = dict(raw[index])
        try:
            probe([row])
        except (SampleError, ImageError):
            continue  # reported above, row by row
        rows.append(row)
        if len(rows) == num_rows:
            break
    if not rows:
        return "data pipeline: not measured (no row could be encoded)"
    batch_size = training_args.per_device_train_batch_size
    workers = training_args.dataloader_num_workers
    modes = list(dict.fromkeys([data_args.image_processing, "device"]))
    rates = {}
    for mode in modes:
        try:
            collate = collator(mode)
        except ValueError as err:  # a processor the split pipeline does not implement
            rates[mode] = str(err)
            continue
        rates[mode] = collate_rate(collate, rows, batch_size)
    lines = [f"data pipeline: {len(rows)} sampled train rows in batches of {batch_size}, one worker on one core"]
    for mode, rate in rates.items():
        if isinstance(rate, str):
            lines.append(f"  image_processing {mode}: {rate}")
            continue
        note = " (the worker's share; the rest runs on the training device)" if mode == "device" else ""
        feed = f"{workers} workers: about {rate * workers:.1f}" if workers else "the main process only: about"
        lines.append(
            f"  image_processing {mode}: {rate:.1f} examples/s per worker{note}; with {feed} "
            f"{'' if workers else f'{rate:.1f} '}examples/s (dataloader_num_workers: {workers})"
        )
    try:
        model = _model_on_meta(model_args)
        batch = probe(rows[:batch_size])
        family = family_of(model)
        full = not model_args.use_peft
        flops, how = flops_per_sample(model, family, batch, train_vision=not model_args.freeze_vision_tower, full=full)
    except (OSError, ValueError, KeyError, AttributeError) as err:
        lines.append(f"  GPU estimate skipped: the model's architecture could not be read ({err})")
        return "\n".join(lines)
    gpu = gpu_samples_per_second(flops)
    needed = ", ".join(
        f"{workers_needed(gpu, rate)} with image_processing {mode}"
        for mode, rate in rates.items()
        if not isinstance(rate, str)
    )
    lines.append(f"  GPU: {how}; {flops / 1e12:.3g} TFLOP per sample")
    lines.append(
        f"  an H100 at {MFU:.0%} of its {H100_BF16_FLOPS / 1e12:.0f} TFLOP/s bf16 peak takes {gpu:.0f} samples/s: "
        f"dataloader workers needed (one core each): {needed}"
    )
    return "\n".join(lines)

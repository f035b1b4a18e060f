"""Padded vs length-grouped vs padding-free vs packed SFT batches: padding, real tokens per second, peak RSS, FLOPs.

One run, the same rows in every mode (`vlm_recipes.data.length_mix`: photos of 640x427, 427x640 and 640x200, a
quarter of the rows text-only, answers of 1-80 words), batches of 8 rows:

- padded:         random batches of 8, right-padded (the default);
- length-grouped: transformers' length-grouped order over our counted lengths (one mega-batch of all the rows, as
                  a real data set gets 50 batches per mega-batch), batches of 8, padded;
- padding-free:   the random batches of the padded mode, each flattened into one sequence;
- packed:         rows bin-packed into sequences of at most --max_length tokens (default: the mean tokens of a
                  batch of rows, rounded up to 256), one or more packed sequences per batch, flattened.

For each mode and attention path: the padding fraction (computed positions that hold no real token), real
(non-padding) tokens per second of forward + backward (LoRA r=16 on the language model, the vision tower frozen as in
the real LoRA configs, the loss through TRL's fused LM head as SFTTrainer computes it), the peak RSS while the mode
ran, and the analytic FLOPs per real token of the language model (linear layers + attention scores) for the padded
batches, for the flattened batches under a dense mask (what SDPA / eager compute) and under a varlen kernel (what
FlashAttention-2 varlen or `sdpa_varlen` compute).

Real-size models (`smolvlm-256m`, `qwen2-vl-2b`: random weights, built offline, vlm_recipes.tiny.real_size) are
expensive on a CPU: their frozen vision tower runs once per row, before the modes (the same images and tiles in every
mode), its time is printed, and each mode's end-to-end ratio adds it back. Tiny models run whole in every mode.

    python benches/bench_packing.py                                       # tiny models, about a minute
    python benches/bench_packing.py --models smolvlm-256m --rows 16       # real size: minutes per mode
    python benches/bench_packing.py --models qwen2-vl-2b --rows 8 --modes padded packed --attn sdpa_varlen
"""

from __future__ import annotations

import argparse
import math
import threading
import time
from types import SimpleNamespace

import psutil
import torch
from transformers.trainer_pt_utils import get_length_grouped_indices

from vlm_recipes.data.collators import VisionChatCollator
from vlm_recipes.data.images import undecoded
from vlm_recipes.data.length_mix import mix_dataset
from vlm_recipes.data.packing import PackedRows, PaddingFreeCollator, fill_ratio, pack_rows
from vlm_recipes.models import attention  # noqa: F401  (registers sdpa_varlen)
from vlm_recipes.training.lengths import count_lengths
from vlm_recipes.training.methods import get_method

TINY = {"tiny-smolvlm": "smolvlm", "tiny-qwen2-vl": "qwen2_vl"}
FLATTENED = ("padding-free", "packed")
MODES = ("padded", "length-grouped", "padding-free", "packed")


class PeakRSS:
    """Peak resident memory of this process while the block runs (sampled every 20 ms)."""

    def __enter__(self):
        self.process, self.peak, self._stop = psutil.Process(), 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self._stop.wait(0.02)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def build(name: str):
    """(model, processor, real_size) for a tiny or real-size name; random weights, float32."""
    if name in TINY:
        from vlm_recipes.tiny import vlm as tiny

        processor = tiny.build_processor(TINY[name])
        return tiny.build_model(TINY[name], processor.tokenizer, seed=0).float(), processor, False
    from vlm_recipes.tiny import real_size

    processor = real_size.build_processor(name)
    return real_size.build_model(name, processor), processor, True


def with_lora(model):
    """LoRA r=16 on the language model's projections (as the real configs), after TRL's fused LM head."""
    from peft import LoraConfig, get_peft_model
    from trl.trainer.utils import add_fused_lm_head

    add_fused_lm_head(model)
    projections = "q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj"
    target = rf".*(text_model|language_model)\.layers\.\d+\.(self_attn|mlp)\.({projections})"
    return get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=target))


def language_model_shape(model) -> SimpleNamespace:
    config = model.config.get_text_config()
    layers = config.num_hidden_layers
    per_layer = sum(
        p.numel()
        for n, p in model.named_parameters()
        if ".layers.0." in n and ("text_model" in n or "language_model" in n)
    )
    return SimpleNamespace(layers=layers, layer_params=per_layer, hidden=config.hidden_size)


def lm_flops(shape, positions: int, score_entries: int) -> float:
    """Forward + backward FLOPs of the language model's layers (frozen base, LoRA ignored): linear layers 2 per
    parameter per position forward and 2 backward (input gradients; no weight gradients), attention scores and their
    weighted sum 4 * hidden per (query, key) entry forward, twice that backward."""
    linear = 4 * shape.layer_params * shape.layers * positions
    scores = 12 * shape.hidden * shape.layers * score_entries
    return linear + scores


def vision_features(model, collator, rows):
    """Per row: the frozen vision tower's output for its images (None for a text-only row), and the seconds spent."""
    core = model.base_model.model.model if hasattr(model, "base_model") else model.model
    features, seconds = [], 0.0
    for row in rows:
        batch = collator([row])
        if "pixel_values" not in batch:
            features.append(None)
            continue
        inputs = {k: batch[k] for k in ("pixel_values", "pixel_attention_mask", "image_grid_thw") if k in batch}
        start = time.perf_counter()
        with torch.no_grad():
            out = core.get_image_features(**inputs, return_dict=True).pooler_output
        seconds += time.perf_counter() - start
        features.append([f.detach() for f in out])
    return features, seconds


def step(model, batch, features=None):
    """One forward + backward; with `features`, the vision tower's precomputed outputs replace the pixels."""
    if features is not None:
        batch = {k: v for k, v in batch.items() if k not in ("pixel_values", "pixel_attention_mask")}
        flat = [f for row in features if row is not None for f in row]
        if flat:
            batch["mm_encoder_outputs"] = {"image": SimpleNamespace(pooler_output=flat)}
    out = model(**batch, fused_lm_head=True)
    out.loss.backward()
    model.zero_grad(set_to_none=True)


def plan_batches(lengths, batch_size: int, max_length: int, seed: int) -> dict:
    """Row-index batches of every mode (packed: lists of bins)."""
    n = len(lengths)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator).tolist()
    random_batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    # One mega-batch of all the rows: the trainer sorts mega-batches of min(n / (4 * batch), 50) batches, which on a
    # few dozen rows is one batch (nothing to sort) and on a real data set 50 batches (400 rows at batch 8).
    grouped = get_length_grouped_indices(
        lengths, batch_size, mega_batch_mult=max(1, n // batch_size), generator=torch.Generator().manual_seed(seed)
    )
    bins = pack_rows(lengths, max_length)
    per_batch = max(1, round(batch_size * (sum(lengths) / n) / max_length))
    return {
        "padded": random_batches,
        "length-grouped": [grouped[i : i + batch_size] for i in range(0, n, batch_size)],
        "padding-free": random_batches,
        "packed": [bins[i : i + per_batch] for i in range(0, len(bins), per_batch)],
        "_bins": bins,
    }


def bench_model(name: str, args) -> None:
    model, processor, real_size = build(name)
    model = with_lora(model)
    if real_size:
        model.gradient_checkpointing_enable({"use_reentrant": False})  # as the real configs train
    model.train()
    shape = language_model_shape(model)
    dataset = mix_dataset(args.rows, seed=args.seed)
    rows = [dict(r) for r in undecoded(dataset)]
    lengths = count_lengths(get_method("sft"), dataset, processor, cache=False)
    padded_collator = VisionChatCollator(processor)
    flat_collator = PaddingFreeCollator(processor)
    features, vision_seconds = vision_features(model, padded_collator, rows) if real_size else (None, 0.0)
    max_length = args.max_length or 256 * math.ceil(args.batch_size * sum(lengths) / len(lengths) / 256)
    plans = plan_batches(lengths, args.batch_size, max_length, args.seed)
    bins = plans.pop("_bins")
    print(
        f"\n== {name}: {args.rows} rows, {sum(lengths):,} tokens (min {min(lengths)} / max {max(lengths)}), "
        f"batch {args.batch_size}; packed: {len(bins)} sequences of <= {max_length} tokens, "
        f"{fill_ratio(lengths, bins, max_length):.1%} full, {len(plans['packed'][0])} per batch"
    )
    if real_size:
        print(f"   frozen vision tower, once per row (the same in every mode): {vision_seconds:.1f} s")
    # Warm-up: the first forward allocates; keep it out of every mode's time.
    step(model, padded_collator([rows[0]]), [features[0]] if features else None)
    header = f"{'mode':<15} {'attention':<13} {'padding':>8} {'real tok/s':>11} {'vs padded':>9} {'end-to-end':>10} "
    print(header + f"{'peak RSS':>9} {'GFLOP/real tok: as run':>23} {'varlen':>7}")
    baseline = None
    for mode, batches in plans.items():
        if mode not in args.modes:
            continue
        for attn in args.attn if mode in FLATTENED else ["sdpa"]:
            try:
                model.base_model.model.set_attn_implementation(attn)
            except ValueError as err:  # transformers 5.23: no flex_attention for Qwen2-VL
                print(f"{mode:<15} {attn:<13} not run: {str(err).split('. ')[0]}")
                continue
            real = positions = entries = varlen_entries = 0
            seconds, failed = 0.0, None
            with PeakRSS() as rss:
                for indices in batches:
                    if mode == "packed":
                        items = list(PackedRows(rows, indices))
                        indices = [i for b in indices for i in b]
                        batch = flat_collator(items)
                    elif mode in FLATTENED:
                        batch = flat_collator([rows[i] for i in indices])
                    else:
                        batch = padded_collator([rows[i] for i in indices])
                    row_tokens = [lengths[i] for i in indices]
                    width = batch["input_ids"].shape[1]
                    real += sum(row_tokens)
                    positions += batch["input_ids"].numel()
                    varlen_entries += sum(n * n for n in row_tokens)
                    entries += width * width if mode in FLATTENED else len(indices) * width * width
                    start = time.perf_counter()
                    try:
                        step(model, batch, [features[i] for i in indices] if features else None)
                    except NotImplementedError as err:  # torch 2.14's FlexAttention has no backward on CPU
                        failed = str(err).splitlines()[0]
                        break
                    seconds += time.perf_counter() - start
            if failed:
                print(f"{mode:<15} {attn:<13} not run: {failed}")
                continue
            rate = real / seconds
            dense = lm_flops(shape, positions, entries) / real / 1e9
            varlen = lm_flops(shape, positions, varlen_entries) / real / 1e9
            computed = varlen if attn == "sdpa_varlen" else dense
            if baseline is None:
                baseline = (rate, seconds)
            end_to_end = (baseline[1] + vision_seconds) / (seconds + vision_seconds)
            print(
                f"{mode:<15} {attn:<13} {1 - real / positions:>8.1%} {rate:>11.1f} {rate / baseline[0]:>8.2f}x "
                f"{end_to_end:>9.2f}x {rss.peak / 2**30:>7.2f}G {computed:>23.3f} {varlen:>7.3f}"
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", nargs="+", default=list(TINY), help="tiny-smolvlm, tiny-qwen2-vl, smolvlm-256m, qwen2-vl-2b"
    )
    parser.add_argument("--rows", type=int, default=64, help="rows of the length mix (every mode sees all of them)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--max_length", type=int, default=0, help="packed sequence length (0: a batch's mean)")
    parser.add_argument(
        "--attn", nargs="+", default=["sdpa", "sdpa_varlen"], help="attention paths of the flattened modes"
    )
    parser.add_argument(
        "--modes", nargs="+", default=list(MODES), choices=MODES, help="batching modes (the first is the baseline)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {when}")
    for name in args.models:
        bench_model(name, args)


if __name__ == "__main__":
    main()

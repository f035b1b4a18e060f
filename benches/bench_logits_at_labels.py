"""Peak memory and step time of SFT steps with and without `logits_at_labels`, real-size architectures.

For each model (`smolvlm-256m`, `qwen2-vl-2b`: random weights, vlm_recipes.tiny.real_size) the recipe's own SFT trainer
(the shipped LoRA config, float32 on the CPU) runs `--steps` optimizer steps of one batch of `--rows` rows at the real
processor settings (photos of 640x427 / 427x640 / 640x200 through the real image processor settings, a quarter of the
rows text-only, answers of 1 to `--max_words` words) with `logits_at_labels` on (the default: the head projects the
label positions only) and off (TRL's fused head, which on a CPU projects every position). Reported: the batch's
positions and label positions, the peak above what was alive before the steps (weights, batch: `Peak.added`, i.e.
activations, head and gradients), the whole peak (`cpu_peak`, PyTorch's profiler memory events), and seconds per step
(the mean over the steps, the trainer's start included). The target (issue 33): >= 30% lower peak
activation memory for Qwen2-VL-2B LoRA at 1,024-token rows, step time not worse.

    python benches/bench_logits_at_labels.py --models smolvlm-256m --rows 2
    python benches/bench_logits_at_labels.py --models qwen2-vl-2b --rows 1 --images_per_row 3 --seed 3 --steps 1 \
        --max_length 1280 --settings off   # three 640x427 photos: 1,132 tokens (the config's max_length: 1,024);
    # then the same with --settings on, in another process (two 2.2 B models in one process do not fit in 24 GB)
"""

from __future__ import annotations

import argparse
import gc
import time

import torch
from real_size_steps import trainer

from vlm_recipes.training.planning.measure import measured_peak

MIB = 2**20


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--models", nargs="+", default=["smolvlm-256m", "qwen2-vl-2b"])
    cli.add_argument("--rows", type=int, default=2, help="rows per batch (one batch)")
    cli.add_argument("--max_words", type=int, default=40)
    cli.add_argument("--images_per_row", type=int, default=1, help="each row's photo this many times (longer rows)")
    cli.add_argument("--seed", type=int, default=0, help="which rows of the mix (seed 3: a 640x427 photo first)")
    cli.add_argument("--steps", type=int, default=2)
    cli.add_argument("--checkpointing", choices=["off", "on"], default="on", help="the shipped configs: on")
    cli.add_argument("--max_length", type=int, default=None, help="raise the config's max_length (longer rows)")
    cli.add_argument(
        "--settings", nargs="+", choices=["off", "on"], default=["off", "on"],
        help="logits_at_labels settings to run; one per process where two models do not fit in memory (Qwen2-VL-2B "
        "at 1,132 tokens: the first trainer is not freed before the second is built, and 24 GB ran out)",
    )  # fmt: skip
    args = cli.parse_args()
    print(f"torch threads: {torch.get_num_threads()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{'model':14s} {'logits_at_labels':16s} {'positions':>9s} {'labels':>6s} {'added peak':>11s} "
          f"{'peak':>9s} {'s/step':>7s}")  # fmt: skip
    for name in args.models:
        results = {}
        for on in (setting == "on" for setting in args.settings):
            t, _, rows = trainer(
                name, rows=args.rows, batch=args.rows, checkpointing=args.checkpointing == "on",
                max_words=args.max_words, images_per_row=args.images_per_row, seed=args.seed,
                logits_at_labels=str(on).lower(), **({"max_length": args.max_length} if args.max_length else {}),
            )  # fmt: skip
            batch = t.data_collator(rows)
            positions, labels = batch["input_ids"].numel(), int((batch["labels"][:, 1:] != -100).sum())
            peak, seconds = measured_peak(t, steps=args.steps)
            results[on] = (peak, seconds)
            print(
                f"{name:14s} {str(on).lower():16s} {positions:9d} {labels:6d} {peak.added / MIB:7.0f} MiB "
                f"{peak.peak / MIB:5.0f} MiB {seconds:7.1f}",
                flush=True,
            )
            del t
            gc.collect()  # the trainer's cycles hold the model: free it before the next one is built
        if len(results) < 2:
            continue
        (off, t_off), (on_, t_on) = results[False], results[True]
        print(
            f"{name}: added peak {1 - on_.added / off.added:+.1%} lower with logits_at_labels, "
            f"step time {t_on / t_off - 1:+.1%}",
            flush=True,
        )


if __name__ == "__main__":
    main()

"""The memory planner's prediction vs the measured CPU peak of real training steps, real-size architectures.

For each model (`smolvlm-256m`, `qwen2-vl-2b`: random weights, vlm_recipes.tiny.real_size), LoRA and full fine-tuning
(the shipped LoRA config, and the same without LoRA), with and without gradient checkpointing: the recipe's own SFT
trainer runs `--steps` optimizer steps (2: the first creates the optimizer states) of one batch of `--rows` rows at
the real processor settings under `cpu_peak` (PyTorch's profiler memory events: every CPU tensor allocation and free;
see vlm_recipes/training/planning/measure.py for why not the resident set), and the planner predicts the peak of the
same rows. The target: within 15% in every case (tests/test_memory.py checks the same on the tiny models).

    python benches/bench_memory_planner.py --models smolvlm-256m            # about 5 minutes on 2 CPU cores
    python benches/bench_memory_planner.py --models tiny:smolvlm tiny:qwen2_vl --rows 8   # the test's cases, a minute
    python benches/bench_memory_planner.py --models qwen2-vl-2b --rows 1    # 2.2 B parameters: long, and full
                                                                            # fine-tuning needs ~40 GB of memory
"""

from __future__ import annotations

import argparse
import gc
import time

import torch
from real_size_steps import trainer

from vlm_recipes.training.planning.measure import measured_peak
from vlm_recipes.training.planning.recipe import plan_of_trainer

MIB = 2**20


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--models", nargs="+", default=["smolvlm-256m", "qwen2-vl-2b"])
    cli.add_argument("--training", nargs="+", default=["lora", "full"], choices=["lora", "full"])
    cli.add_argument("--checkpointing", nargs="+", default=["off", "on"], choices=["off", "on"])
    cli.add_argument("--rows", type=int, default=2, help="rows per batch (one batch)")
    cli.add_argument("--max_words", type=int, default=40, help="answer length: 1 to this many words")
    cli.add_argument("--steps", type=int, default=2)
    args = cli.parse_args()
    torch.manual_seed(0)
    print(f"torch threads: {torch.get_num_threads()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    header = f"{'model':14s} {'training':8s} {'ckpt':4s} {'batch (seq x len)':18s} {'predicted':>10s} "
    print(header + f"{'measured':>10s} {'error':>7s} {'s/step':>7s}  moment")
    for name in args.models:
        for training in args.training:
            for ckpt in args.checkpointing:
                t, model_args, rows = trainer(
                    name, rows=args.rows, batch=args.rows, training=training, checkpointing=ckpt == "on",
                    max_words=args.max_words,
                )  # fmt: skip
                _, _, batch, plan = plan_of_trainer(t, model_args, rows)
                peak, seconds = measured_peak(t, steps=args.steps)
                error = plan.peak / peak.peak - 1
                print(
                    f"{name:14s} {training:8s} {ckpt:4s} {f'{batch.sequences} x {batch.length}':18s} "
                    f"{plan.peak / MIB:8.1f} MiB {peak.peak / MIB:6.1f} MiB {error:+7.1%} {seconds:7.1f}  "
                    f"{plan.moment}",
                    flush=True,
                )
                print("    " + ", ".join(f"{n} {v / MIB:.0f}" for n, v in plan.rows()), flush=True)
                del t
                gc.collect()  # the trainer's cycles hold the model: free it before the next one is built


if __name__ == "__main__":
    main()

"""One CPU training step of the real-size Qwen3.5-0.8B architecture (random weights, vlm_recipes.tiny.real_size) with
its shipped SFT LoRA config, on one realistic row: step time, peak memory and the memory planner's prediction.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benches/bench_real_size_qwen3_5.py [--checkpointing on|off] [--steps 2]

The row: a 640x427 photo (scikit-learn's, vlm_recipes.data.length_mix) at the config's min_pixels / max_pixels
(65,536 / 524,288: 260 image tokens), a question and a short answer. The recipe's own SFT trainer
(benches/real_size_steps.py) runs `--steps` optimizer steps of batch 1 in float32 (the config's bf16 is for a GPU; on
this CPU float32 is the measured path) with LoRA r=16 as the config sets it (dropout 0 here), its gradient
checkpointing setting by default. Reported: each step's wall time (the first also creates the optimizer states),
the peak CPU tensor memory of the steps (PyTorch's profiler memory events, vlm_recipes/training/planning/measure.py),
the process's resident-set high-water mark, and the planner's prediction for the same row.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
from real_size_steps import trainer
from transformers import TrainerCallback

from vlm_recipes.data.length_mix import PHOTO_SIZES, mix_rows
from vlm_recipes.training.planning.measure import cpu_peak
from vlm_recipes.training.planning.recipe import plan_of_trainer

MIB = 2**20
NAME = "qwen3.5-0.8b"


class StepTimes(TrainerCallback):
    """Wall time of each optimizer step (forward, backward, optimizer), not the trainer's start."""

    def __init__(self):
        self.times, self._start = [], 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._start)


def photo_seed(max_words: int) -> int:
    """The first seed whose first mix row is the 640x427 photo (a real-setting image, not a text-only row)."""
    return next(
        s for s in range(100) if [im.size for im in mix_rows(1, seed=s, max_words=max_words)[0]["images"]] == [
            PHOTO_SIZES[0]
        ]
    )  # fmt: skip


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--checkpointing", choices=["on", "off"], default="on", help="on: as the config ships")
    cli.add_argument("--steps", type=int, default=2)
    cli.add_argument("--max_words", type=int, default=8, help="answer length: 1 to this many words")
    args = cli.parse_args()
    torch.manual_seed(0)
    print(f"torch threads: {torch.get_num_threads()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    seed = photo_seed(args.max_words)
    start = time.perf_counter()
    t, model_args, rows = trainer(
        NAME, rows=1, batch=1, seed=seed, max_words=args.max_words, checkpointing=args.checkpointing == "on"
    )
    built = time.perf_counter() - start
    model = t.model
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    arch, setup, batch, plan = plan_of_trainer(t, model_args, rows)
    answer = rows[0]["messages"][1]["content"][0]["text"]
    print(f"built in {built:.0f} s: {total / 1e6:.1f} M parameters, {trainable / 1e6:.2f} M trainable (LoRA)")
    print(
        f"row: one {rows[0]['images'][0].size[0]}x{rows[0]['images'][0].size[1]} photo, answer {answer!r}: "
        f"{batch.length} tokens, {batch.vision_patches // arch.patches_per_token} image tokens, "
        f"{batch.label_tokens} trained; "
        f"gradient checkpointing {'on' if setup.gradient_checkpointing else 'off'}"
    )
    times = StepTimes()
    t.add_callback(times)
    t.args.max_steps = args.steps
    with cpu_peak() as peak:
        t.train()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("step times: " + ", ".join(f"{s:.1f} s" for s in times.times))
    print(
        f"peak CPU tensor memory {peak.peak / MIB:,.0f} MiB (at start {peak.start / MIB:,.0f}); process resident "
        f"high-water mark {rss / MIB:,.0f} MiB"
    )
    print(
        f"planner: {plan.peak / MIB:,.0f} MiB ({plan.peak / peak.peak - 1:+.1%} vs measured; {plan.moment}): "
        + ", ".join(f"{n} {v / MIB:.0f}" for n, v in plan.rows())
    )


if __name__ == "__main__":
    main()

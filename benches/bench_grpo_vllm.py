"""GRPO generation with vLLM (colocate) against model.generate on one GPU (issue 31; docs/recipes.md, vLLM generation).

Runs one GRPO config twice through recipes/grpo.py's entry point, a few optimizer steps each, the same seed: once with
`use_vllm: false` (TRL generates with model.generate) and once with `use_vllm: true, vllm_mode: colocate`, and prints
per run the generation throughput (completion tokens per second of generation, summed over the run's generation calls),
the mean generation time per call and the mean optimizer-step time (generation included), after the first step
(vLLM's start-up and CUDA warm-up fall in it). Held-out evaluation is cut to a few prompts, so it does not dominate.
Each run appends one JSON line to --out; `--table` prints the table of the file.

    accelerate launch --config_file accelerate_configs/single_gpu.yaml benches/bench_grpo_vllm.py --steps 10
    python benches/bench_grpo_vllm.py --table

Needs a CUDA GPU, the vllm package (`pip install 'trl[vllm]'`) and the Hub for the real checkpoint; anywhere else it
exits at once, saying what is missing. Not run yet (2026-12-07): no figure of it is in the docs.
"""

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import jsonl_runs  # benches/jsonl_runs.py, beside this script

ROOT = jsonl_runs.ROOT
DEFAULT_CONFIG = ROOT / "recipes" / "configs" / "qwen2.5-vl-3b-instruct" / "grpo_vllm.yaml"


def missing() -> str | None:
    """What this machine lacks to run the bench (None: nothing)."""
    import torch

    if not torch.cuda.is_available():
        return "no CUDA GPU on this machine: run it on a machine with one"
    if importlib.util.find_spec("vllm") is None:
        return "the vllm package is not installed: pip install 'trl[vllm]'"
    return None


class Timings:
    """Wall time of each generation call (with its completion tokens) and of each optimizer step, from the trainer."""

    def __init__(self):
        self.generations: list[tuple[float, int]] = []
        self.steps: list[float] = []

    def install(self):
        import torch
        from transformers import TrainerCallback

        from vlm_recipes.training.trainers import VLMGRPOTrainer

        timings, generate = self, VLMGRPOTrainer._generate_single_turn

        def timed(trainer, *args, **kwargs):
            torch.cuda.synchronize()
            started = time.perf_counter()
            completion_ids, logprobs = generate(trainer, *args, **kwargs)
            torch.cuda.synchronize()
            timings.generations.append((time.perf_counter() - started, sum(len(c) for c in completion_ids)))
            return completion_ids, logprobs

        class StepTimes(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                self.started = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                torch.cuda.synchronize()
                timings.steps.append(time.perf_counter() - self.started)

        VLMGRPOTrainer._generate_single_turn = timed
        original_init = VLMGRPOTrainer.__init__

        def init(trainer, *args, **kwargs):
            original_init(trainer, *args, **kwargs)
            trainer.add_callback(StepTimes())

        VLMGRPOTrainer.__init__ = init


def run_one(config: Path, use_vllm: bool, steps: int, seed: int, output_dir: Path, overrides: list[str]) -> dict:
    from vlm_recipes.launch import main

    timings = Timings()
    timings.install()
    argv = [
        "--config", str(config), "--output_dir", str(output_dir), "--overwrite_output_dir", "true",
        "--report_to", "none", "--seed", str(seed), "--max_steps", str(steps), "--save_strategy", "no",
        "--max_eval_samples", "8", "--eval_max_new_tokens", "16",
        "--use_vllm", str(use_vllm).lower(), "--vllm_mode", "colocate", *overrides,
    ]  # fmt: skip
    started = time.time()
    main("grpo", config, argv)
    generations, steps_s = timings.generations[1:], timings.steps[1:]  # the first holds start-up and warm-up
    seconds = sum(t for t, _ in generations)
    return {
        "generation": "vllm colocate" if use_vllm else "model.generate",
        "config": str(config.relative_to(ROOT)) if config.is_relative_to(ROOT) else str(config),
        "seed": seed,
        "steps": steps,
        "overrides": overrides,
        "generation_tokens_per_s": round(sum(n for _, n in generations) / seconds, 1) if seconds else None,
        "generation_s_per_call": round(statistics.mean(t for t, _ in generations), 3) if generations else None,
        "step_s": round(statistics.mean(steps_s), 3) if steps_s else None,
        "wall_s": round(time.time() - started, 1),
        "device": __import__("torch").cuda.get_device_name(0),
        "date": time.strftime("%Y-%m-%d"),
    }


def table(rows: list[dict]) -> str:
    lines = ["generation        tokens/s  s/generation  s/step  steps  device"]
    for r in rows:
        lines.append(
            f"{r['generation']:<16}  {r['generation_tokens_per_s']!s:>8}  {r['generation_s_per_call']!s:>12}  "
            f"{r['step_s']!s:>6}  {r['steps']:>5}  {r['device']} ({r['date']}, {r['config']})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps per run (the first is not timed)")
    parser.add_argument("--runs", nargs="+", choices=("plain", "vllm"), default=["plain", "vllm"])
    jsonl_runs.add_arguments(parser, "bench_grpo_vllm")
    args = parser.parse_args(argv)
    if args.table:
        print(table(jsonl_runs.rows(args)))
        return 0
    why = missing()
    if why is not None:
        print(f"bench_grpo_vllm: {why}. It compares vLLM generation with model.generate on a GPU; nothing was run.")
        return 2
    for seed in args.seeds:
        for run in args.runs:
            out = args.runs_dir / f"{run}-seed{seed}"
            row = run_one(args.config, run == "vllm", args.steps, seed, out, jsonl_runs.overrides(args))
            jsonl_runs.record(args, row)
    print(table(jsonl_runs.rows(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How much the offline DPO, MPO, GRPO and RLOO defaults improve, over several tiny bases (issue 11; LLaVA-1.5:
issue 17).

A learning test that passes on one tiny base can fail on another built elsewhere: each build seed
(`VLM_RECIPES_TINY_SEED`) gives another, equally valid, tiny base (initialisation, pre-training data and order).
This runs each default config on the bases of several seeds and prints, per recipe and family, the before/after of
every held-out metric and the minimum and median improvement: the test margins are set from these minimums.

    python benches/bench_learning_margins.py                       # seeds 0-4, every family, dpo mpo grpo rloo
    python benches/bench_learning_margins.py --seeds 0 1 2 --families llava
    python benches/bench_learning_margins.py --seeds 0 1 --methods grpo --families qwen2_vl
    python benches/bench_learning_margins.py --set learning_rate=2e-4 --set max_steps=200   # try other settings

Building a base the first time costs about 3 (SmolVLM), 5 (Qwen2-VL) and 8.5 (LLaVA-1.5: 499 s of CPU on one thread)
minutes per seed on 2 cores; they are cached. Writes the rows as JSON lines to --out (default
outputs/bench_learning_margins.jsonl).
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIRS = {"smolvlm": "tiny-smolvlm", "qwen2_vl": "tiny-qwen2-vl", "llava": "tiny-llava"}
METRICS = {
    "dpo": ["accuracy", "preference_accuracy"],
    "mpo": ["accuracy", "preference_accuracy"],
    "grpo": ["accuracy", "reward"],
    "rloo": ["accuracy", "reward"],
}


def run_one(method: str, family: str, seed: int, overrides: list[str]) -> dict:
    from vlm_recipes.launch import run_recipe  # the recipe's entry point, in this process

    os.environ["VLM_RECIPES_TINY_SEED"] = str(seed)
    config = ROOT / "recipes" / "configs" / CONFIG_DIRS[family] / f"{method}.yaml"
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        results = run_recipe(method, config, Path(out) / "run", *overrides)
        results["bench_seconds"] = round(time.perf_counter() - started, 1)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--families", nargs="+", default=list(CONFIG_DIRS), choices=list(CONFIG_DIRS))
    parser.add_argument("--methods", nargs="+", default=list(METRICS), choices=list(METRICS))
    parser.add_argument("--set", action="append", default=[], help="a config override key=value (repeatable)")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench_learning_margins.jsonl")
    args = parser.parse_args()
    overrides = [part for kv in args.set for part in (f"--{kv.split('=', 1)[0]}", kv.split("=", 1)[1])]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for method in args.methods:
        for family in args.families:
            if not (ROOT / "recipes" / "configs" / CONFIG_DIRS[family] / f"{method}.yaml").exists():
                continue  # e.g. no tiny LLaVA RLOO config
            for seed in args.seeds:
                r = run_one(method, family, seed, overrides)
                # The bench's keys last: the results' own `method` (the loss, e.g. "sigmoid") must not replace them.
                row = {**r, "method": method, "family": family, "seed": seed, "overrides": args.set}
                rows.append(row)
                with args.out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                figures = "  ".join(f"{m} {r[f'{m}_before']:.3f}->{r[f'{m}_after']:.3f}" for m in METRICS[method])
                extra = f"  zero-std groups {r['frac_reward_zero_std']:.2f}" if method in ("grpo", "rloo") else ""
                print(
                    f"{method:<5} {family:<9} seed {seed}: {figures}{extra}  ({r['bench_seconds']:.0f} s)", flush=True
                )

    print(f"\nImprovement (after - before) over seeds {args.seeds}; settings: {args.set or 'the configs as shipped'}")
    print(f"{'recipe':<6} {'family':<9} {'metric':<20} {'before (median)':>15} {'min gain':>9} {'median gain':>12}")
    for method in args.methods:
        for family in args.families:
            group = [r for r in rows if r["method"] == method and r["family"] == family]
            if not group:
                continue
            for metric in METRICS[method]:
                gains = [r[f"{metric}_after"] - r[f"{metric}_before"] for r in group]
                before = statistics.median(r[f"{metric}_before"] for r in group)
                print(
                    f"{method:<6} {family:<9} {metric:<20} {before:>15.3f} {min(gains):>+9.3f} "
                    f"{statistics.median(gains):>+12.3f}"
                )
            if method in ("grpo", "rloo"):
                zero = [r["frac_reward_zero_std"] for r in group]
                print(
                    f"{'':<6} {family:<9} {'zero-std groups':<20} {'':>15} {min(zero):>9.2f} {max(zero):>12.2f}"
                    "  (min / max fraction)"
                )


if __name__ == "__main__":
    main()

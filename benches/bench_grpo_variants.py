"""GRPO's loss variants side by side on the offline colour/shape task (issue 31; docs/recipes.md, GRPO loss variants).

Runs the default `recipes/configs/tiny-smolvlm/grpo.yaml` (TRL's default `dapo` loss, on-policy) and each loss-variant
config `grpo_<variant>.yaml` (the `grpo_<variant>` recipes of vlm_recipes/training/methods.py: DAPO, Dr. GRPO, GSPO,
CISPO, plain GRPO, BNPO; the default plus the variant's pinned settings and `steps_per_generation: 4`), each through
recipes/grpo.py's entry point, from the same start (`tiny:smolvlm-sft`), for the same steps, with each seed given, and
prints held-out reward and accuracy before and after (200 prompts of another seed), the share of groups without reward
variance and the wall time. Each run appends one JSON line to --out, so runs can be made one at a time (e.g. each under
a shared lock) and the table printed from the file:

    python benches/bench_grpo_variants.py --variants default dapo --seeds 42 1
    python benches/bench_grpo_variants.py --table          # the table of every line in --out, nothing run

One run is about 1 minute at one thread (OMP_NUM_THREADS=1) on a 2-core CPU.
"""

import argparse
import time
from functools import partial
from pathlib import Path

import jsonl_runs  # benches/jsonl_runs.py, beside this script

ROOT = jsonl_runs.ROOT
CONFIGS = ROOT / "recipes" / "configs" / "tiny-smolvlm"
VARIANTS = ("default", "dapo", "dr_grpo", "gspo", "cispo", "plain", "bnpo")
SETTINGS = (
    "loss_type",
    "importance_sampling_level",
    "epsilon",
    "epsilon_high",
    "scale_rewards",
    "mask_truncated_completions",
    "steps_per_generation",
)


def config_path(variant: str) -> Path:
    return CONFIGS / ("grpo.yaml" if variant == "default" else f"grpo_{variant}.yaml")


def run_one(variant: str, seed: int, output_dir: Path, overrides: list[str]) -> dict:
    from vlm_recipes.launch import main, method_of_config, parse
    from vlm_recipes.training.methods import get_method

    path = config_path(variant)
    argv = ["--config", str(path), "--seed", str(seed), "--output_dir", str(output_dir), "--report_to", "none"]
    argv += overrides
    record = method_of_config(get_method("grpo"), path, argv)  # the variant recipe the config declares
    _, training_args, _ = parse(record.parser_types, path, argv, recipe=record.name)
    record.apply_fixed(training_args)  # the settings the run trains with, pinned ones included
    started = time.time()
    results = main("grpo", path, argv)
    return {
        "variant": variant,
        "method": results["method"],
        "config": str(path.relative_to(ROOT)),
        "seed": seed,
        "overrides": overrides,
        "settings": {k: getattr(training_args, k) for k in SETTINGS},
        "reward_before": results["reward_before"],
        "reward_after": results["reward_after"],
        "accuracy_before": results["accuracy_before"],
        "accuracy_after": results["accuracy_after"],
        "frac_reward_zero_std": results.get("frac_reward_zero_std"),
        "train_steps": results["train_steps"],
        "seconds": round(time.time() - started, 1),
    }


def table(rows: list[dict]) -> str:
    order = {v: i for i, v in enumerate(VARIANTS)}
    cells = []
    for r in sorted(rows, key=lambda r: (order.get(r["variant"], 99), r["seed"])):
        zero = r["frac_reward_zero_std"]
        reward = f"{r['reward_before']:.3f} -> {r['reward_after']:.3f}"
        accuracy = f"{r['accuracy_before']:.3f} -> {r['accuracy_after']:.3f}"
        cells.append(
            [
                r["variant"],
                str(r["seed"]),
                reward,
                accuracy,
                "" if zero is None else f"{zero:.2f}",
                f"{r['seconds']:.0f}",
            ]
        )
    columns = ["variant", "seed", "reward before -> after", "accuracy before -> after", "groups without variance", "s"]
    return jsonl_runs.markdown_table(columns, cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)

    def runs(args):
        return [(f"{v}-seed{seed}", partial(run_one, v, seed)) for seed in args.seeds for v in args.variants]

    jsonl_runs.main(parser, "bench_grpo_variants", runs, table)


if __name__ == "__main__":
    main()

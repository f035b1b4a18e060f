"""Which grounding reward removes the hedge: GRPO from one SFT start with each box reward (issue 31; docs/recipes.md).

The offline grounding chain (`make grounding`) is a 450-step SFT start, merged, then GRPO
(`recipes/configs/tiny-smolvlm/grpo_grounding.yaml`). With the `iou` reward a box stretched over two cells (IoU ~0.4
with a shape in one of them) earns more than a box in the wrong cell (0), and from one start GRPO taught the model to
hedge. This runs the GRPO step from each given start with each reward (same steps, same seed) and prints, for the
start (before) and after training, on the 500 held-out scenes: mean IoU and IoU@0.5 (the recipe's held-out metrics),
and the share of answers that are hedged (a box wider or taller than one grid cell, 16 px of 64: the shapes are
12 px, so such a box cannot be around one shape alone) and without a box. Each run appends one JSON line to --out;
`--table` prints them.

    python recipes/sft.py --config recipes/configs/tiny-smolvlm/sft_grounding.yaml --max_steps 450 --seed 1 \\
        --output_dir outputs/sft_start_seed1 && python recipes/merge_adapter.py --adapter outputs/sft_start_seed1
    python benches/bench_grounding_rewards.py --starts outputs/sft_start_seed1-merged --rewards iou thresholded_iou
    python benches/bench_grounding_rewards.py --table

One GRPO run is about 8 minutes at one thread (OMP_NUM_THREADS=1) on a 2-core CPU.
"""

import argparse
import inspect
import time
from functools import partial
from pathlib import Path

import jsonl_runs  # benches/jsonl_runs.py, beside this script

ROOT = jsonl_runs.ROOT
CONFIG = ROOT / "recipes" / "configs" / "tiny-smolvlm" / "grpo_grounding.yaml"


def cell_size(image_size: int) -> float:
    """The grid cell of the offline grounding scenes (vlm_recipes.data.synthetic.make_grounding_dataset's grid)."""
    from vlm_recipes.data.synthetic import make_grounding_dataset

    return image_size / inspect.signature(make_grounding_dataset).parameters["grid"].default


def box_shapes(rows, predictions: list[str]) -> dict:
    """The share of hedged boxes and of answers without a box (the recipe's metrics give mean IoU and IoU@0.5: one
    number per metric, so this bench does not compute them again)."""
    from vlm_recipes.grounding.boxes import BoxConvention, parse_box

    hedged, missing = 0, 0
    for row, text in zip(rows, predictions):
        box = parse_box(text)
        if box is None:
            missing += 1
            continue
        box = BoxConvention.from_frame(box, row["image_size"], row["box_frame"])
        cell = cell_size(row["image_size"][0])
        hedged += (box[2] - box[0]) > cell or (box[3] - box[1]) > cell
    n = len(predictions)
    return {"hedged": hedged / n, "no_box": missing / n}


def run_one(start: str, reward: str, seed: int, output_dir: Path, overrides: list[str]) -> dict:
    import vlm_recipes.training.run as run_module
    from vlm_recipes.launch import main

    captured = {}
    held_out_metrics = run_module.held_out_metrics

    def recording(model, processor, rows, *args, **kwargs):
        res = held_out_metrics(model, processor, rows, *args, **kwargs)
        captured[args[2]] = box_shapes(rows, res["generated"]["predictions"])  # args[2]: "before" / "after"
        return res

    argv = ["--config", str(CONFIG), "--model_name_or_path", start, "--reward_funcs", reward, "--seed", str(seed)]
    argv += ["--output_dir", str(output_dir), "--report_to", "none", *overrides]
    started = time.time()
    run_module.held_out_metrics = recording
    try:
        results = main("grpo", CONFIG, argv)
    finally:
        run_module.held_out_metrics = held_out_metrics
    for when in ("before", "after"):  # the recipe's held-out metrics (eval_metrics: iou_accuracy, mean_iou)
        captured[when].update(mean_iou=results[f"mean_iou_{when}"], iou_at_50=results[f"iou_accuracy_{when}"])
    return {
        "start": start,
        "reward": reward,
        "seed": seed,
        "overrides": overrides,
        "num_eval_samples": results["num_eval_samples"],
        "before": captured["before"],
        "after": captured["after"],
        "seconds": round(time.time() - started, 1),
    }


def table(rows: list[dict]) -> str:
    figures = ("mean_iou", "iou_at_50", "hedged", "no_box")
    cells = [
        [Path(r["start"]).name, str(r["seed"]), r["reward"]]
        + [f"{r['before'][k]:.3f} -> {r['after'][k]:.3f}" for k in figures]
        + [f"{r['seconds']:.0f}"]
        for r in sorted(rows, key=lambda r: (r["start"], r["seed"], r["reward"]))
    ]
    columns = ["start", "GRPO seed", "reward", "mean IoU", "IoU@0.5", "hedged", "no box"]
    columns[3:] = [f"{c} before -> after" for c in columns[3:]] + ["s"]
    return jsonl_runs.markdown_table(columns, cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", nargs="+", default=[], help="merged SFT starts (model directories)")
    parser.add_argument("--rewards", nargs="+", default=["iou", "thresholded_iou", "giou"])

    def runs(args):
        return [
            (f"{Path(start).name}-{reward}-seed{seed}", partial(run_one, start, reward, seed))
            for start in args.starts
            for seed in args.seeds
            for reward in args.rewards
        ]

    jsonl_runs.main(parser, "bench_grounding_rewards", runs, table)


if __name__ == "__main__":
    main()

"""The offline BLIP runs over several tiny BLIP bases: build time, zero-shot figures and fine-tuning gains.

Each build seed (`VLM_RECIPES_TINY_SEED`) gives another, equally valid, tiny BLIP (initialisation, pre-training
data and order). For every seed this builds it (timed; cached afterwards) and runs the offline configs of
recipes/configs/tiny-blip: zero-shot captioning, ITM retrieval, and the LoRA / full captioning and VQA fine-tunes,
printing their held-out figures and, per fine-tune, the minimum and median gain: the tests' bars come from these.

    python benches/bench_blip.py                     # seeds 0-4, every config
    python benches/bench_blip.py --seeds 0 --configs caption_lora itm_retrieval

Writes the rows as JSON lines to --out (default outputs/bench_blip.jsonl).
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {  # config -> (recipe, the figures printed)
    "caption_zero_shot": ("blip_zero_shot", ["cider", "bleu_4"]),
    "itm_retrieval": ("blip_zero_shot", ["text_to_image_recall@1", "image_to_text_recall@1"]),
    "caption_lora": ("blip_train", ["cider", "bleu_4"]),
    "caption_full": ("blip_train", ["cider", "bleu_4"]),
    "vqa_lora": ("blip_train", ["accuracy"]),
}


def run_one(config: str, seed: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from vlm_recipes.launch import recipe_script_module as recipe_module

    os.environ["VLM_RECIPES_TINY_SEED"] = str(seed)
    from vlm_recipes.tiny import blip

    built = time.perf_counter()
    blip.build("tiny:blip")
    build_seconds = round(time.perf_counter() - built, 1)
    recipe, _ = CONFIGS[config]
    path = ROOT / "recipes" / "configs" / "tiny-blip" / f"{config}.yaml"
    with tempfile.TemporaryDirectory() as out:
        argv = ["--config", str(path), "--output_dir", f"{out}/run"]
        argv += ["--report_to", "none"] if recipe == "blip_train" else []
        started = time.perf_counter()
        results = recipe_module(recipe).main(argv)
    flat = dict(results)
    if "retrieval" in results:
        for stage in ("itc", "itm_rerank"):
            flat.update({f"{k}_{stage}": v for k, v in results["retrieval"][stage].items()})
    flat.update(config=config, seed=seed, seconds=round(time.perf_counter() - started, 1))
    flat["build_seconds"] = build_seconds
    return flat


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench_blip.jsonl")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in args.seeds:
        for config in args.configs:
            row = run_one(config, seed)
            rows.append(row)
            with args.out.open("a") as f:
                f.write(json.dumps(row, default=str) + "\n")
    print("\n| config | seed | figures | seconds |\n|---|---|---|---|")
    for row in rows:
        figures = []
        for key in CONFIGS[row["config"]][1]:
            if f"{key}_before" in row:
                figures.append(f"{key} {row[f'{key}_before']:.3f} -> {row[f'{key}_after']:.3f}")
            elif f"{key}_itc" in row:
                figures.append(f"{key} ITC {row[f'{key}_itc']:.3f} -> ITM {row[f'{key}_itm_rerank']:.3f}")
            else:
                figures.append(f"{key} {row[key]:.3f}")
        print(f"| {row['config']} | {row['seed']} | {'; '.join(figures)} | {row['seconds']} |")
    for config, (_, keys) in CONFIGS.items():
        for key in keys:
            gains = [
                r[f"{key}_after"] - r[f"{key}_before"] for r in rows if r["config"] == config and f"{key}_after" in r
            ]
            if gains:
                print(f"{config} {key} gain: min {min(gains):+.3f}, median {statistics.median(gains):+.3f}")
    builds = sorted({(r["seed"], r["build_seconds"]) for r in rows if r["build_seconds"] > 5})
    if builds:
        print("tiny BLIP builds (seed, seconds):", builds)


if __name__ == "__main__":
    main()

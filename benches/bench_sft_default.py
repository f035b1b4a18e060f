"""Wall time and held-out accuracy of the default SFT LoRA run (the main job), per tiny family.

    python benches/bench_sft_default.py            # reuses the cached tiny bases
    python benches/bench_sft_default.py --fresh    # also times building + pre-training the bases (empty cache)

Prints one line per family: build time, run time, accuracy before -> after.
"""

import argparse
import importlib.util
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--fresh", action="store_true", help="use an empty tiny-model cache")
    parser.add_argument("--families", nargs="+", default=["smolvlm", "qwen2_vl"])
    args = parser.parse_args()
    if args.fresh:
        os.environ["VLM_RECIPES_CACHE"] = tempfile.mkdtemp(prefix="vlm-bench-cache-")
    from vlm_recipes.tiny import vlm as tiny

    spec = importlib.util.spec_from_file_location("sft", ROOT / "recipes" / "sft_lora.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    configs = {"smolvlm": "tiny-smolvlm", "qwen2_vl": "tiny-qwen2-vl"}
    rows = []
    for family in args.families:
        started = time.perf_counter()
        tiny.build(f"tiny:{family}")
        built = time.perf_counter() - started
        with tempfile.TemporaryDirectory() as out:
            config = ROOT / "recipes" / "configs" / configs[family] / "sft_lora.yaml"
            started = time.perf_counter()
            results = recipe.main(["--config", str(config), "--output_dir", out, "--report_to", "none"])
            ran = time.perf_counter() - started
        rows.append((family, built, ran, results))
    print(f"\n{'family':<10} {'build+pretrain s':>16} {'recipe s':>9} {'accuracy before -> after':>26} {'n':>5}")
    for family, built, ran, r in rows:
        acc = f"{r['accuracy_before']:.3f} -> {r['accuracy_after']:.3f}"
        print(f"{family:<10} {built:>16.1f} {ran:>9.1f} {acc:>26} {r['num_eval_samples']:>5}")


if __name__ == "__main__":
    main()

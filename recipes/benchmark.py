"""Public benchmarks in one command: MMMU, MMBench (circular), MMStar, AI2D, ScienceQA-IMG, MathVista, OCRBench,
ChartQA, DocVQA, TextVQA on a base model, its adapters and other models; a leaderboard and per-sample predictions.

Offline default (tiny SmolVLM base vs tiny SmolVLM-sft, every benchmark on its offline stand-in, a few questions
each, CPU, under a minute; the figures check the pipeline, they are no benchmark results):

    python recipes/benchmark.py

Real benchmarks (need the Hub; a GPU for reasonable time), a quick look first, then your adapter against its base:

    python recipes/benchmark.py --config recipes/configs/qwen2-vl-2b-instruct/benchmark.yaml --limit 20
    python recipes/benchmark.py --config recipes/configs/smolvlm-256m-instruct/benchmark.yaml \\
        --adapter_paths outputs/sft_lora-smolvlm-256m-instruct --benchmarks mmbench_en_dev ai2d ocrbench

Writes leaderboard.md, leaderboard.json, leaderboard.html (scores, unparsable answers, a gallery of failures per
benchmark) and <benchmark>/<model>.jsonl predictions to output_dir. Rerunning skips the benchmarks that finished
with the same settings (--resume false runs them again). The benchmarks are task files under
vlm_recipes/evaluation/benchmarks/tasks/ (dataset, split, columns, prompt, metric); a path to your own works too.
"""

import logging
from pathlib import Path

from vlm_recipes.evaluation.benchmarks.runner import run_benchmarks
from vlm_recipes.launch import parse
from vlm_recipes.processes import ends_process_group
from vlm_recipes.settings import BenchmarkArguments, VLMModelConfig

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "tiny-smolvlm" / "benchmark.yaml"
PARSER_TYPES = (BenchmarkArguments, VLMModelConfig)


@ends_process_group
def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args, model_args = parse(PARSER_TYPES, DEFAULT_CONFIG, argv, recipe="benchmark")
    return run_benchmarks(args, model_args)


if __name__ == "__main__":
    main()

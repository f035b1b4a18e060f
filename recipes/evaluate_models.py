"""Evaluate and compare models / adapters on one held-out split: a before/after table and an image gallery.

Offline default (tiny SmolVLM base vs the same base after a short supervised warm-up, 100 synthetic held-out
questions, normalised exact match, CPU, under a minute):

    python recipes/evaluate_models.py

Before/after of your own training run (the adapter in its output_dir on top of the base):

    python recipes/evaluate_models.py --adapter_paths outputs/sft_lora-tiny-smolvlm --other_models ""

A real benchmark (ChartQA, relaxed accuracy; needs the Hub and a GPU):

    python recipes/evaluate_models.py --config recipes/configs/qwen2-vl-2b-instruct/evaluate_chartqa.yaml

Metrics are our local `evaluate` modules (vlm_recipes/evaluation/metrics): exact_match, vqa_accuracy, anls,
relaxed_accuracy, bleu, rouge, answer_match. Writes report.md, report.json, gallery.html and predictions-*.jsonl
to output_dir.

(Not named evaluate.py: a script of that name shadows the `evaluate` package for everything launched from
this folder, and the metrics are `evaluate` modules.)
"""

import logging
from pathlib import Path

from vlm_recipes.evaluation.compare import run_evaluate
from vlm_recipes.launch import parse
from vlm_recipes.processes import ends_process_group
from vlm_recipes.settings import DataArguments, EvaluateArguments, VLMModelConfig

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "tiny-smolvlm" / "evaluate.yaml"
PARSER_TYPES = (DataArguments, EvaluateArguments, VLMModelConfig)


@ends_process_group
def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data_args, eval_args, model_args = parse(PARSER_TYPES, DEFAULT_CONFIG, argv, recipe="evaluate_models")
    return run_evaluate(data_args, eval_args, model_args)


if __name__ == "__main__":
    main()

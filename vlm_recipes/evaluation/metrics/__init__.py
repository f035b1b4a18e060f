"""Evaluation metrics shipped as local `evaluate` modules, loadable offline by name or by path.

`evaluate.load("exact_match")` fetches its script from the Hub, which our machines cannot reach, and the Hub has
no ANLS or ChartQA relaxed accuracy at all. Each metric here is a directory `<name>/` of this package with a
script `<name>.py`, exactly the layout `evaluate.load(<local dir>)` expects; the scripts wrap the per-sample
functions of `vlm_recipes.evaluation.metrics.scoring`. The training recipes' before/after accuracy and
`recipes/evaluate_models.py` both score through `load_metric`, so there is one implementation of every figure.

| name | score per sample | references |
|---|---|---|
| exact_match | 1 if equal after normalisation (case, punctuation, whitespace, Unicode NFKC) | str or list[str] |
| vqa_accuracy | official VQA accuracy: min(#humans / 3, 1) over leave-one-out subsets, averaged | list[str] |
| anls | 1 - normalised edit distance, 0 from a distance of 0.5 on (DocVQA) | str or list[str] |
| relaxed_accuracy | numbers within 5% relative error, else exact match (ChartQA) | str or list[str] |
| bleu | corpus BLEU-4 with add-one smoothing (per sample: sentence BLEU) | str or list[str] |
| rouge | ROUGE-1 and ROUGE-L F1 (the headline is ROUGE-L) | str or list[str] |
| answer_match | final answers equal (option letters; math-verify; else normalised strings) | str or list[str] |
| cider | CIDEr-D (x10) as COCO's caption evaluation; per sample: the image's score in the corpus | str or list[str] |
| iou_accuracy | 1 if the answer's first box has IoU >= 0.5 with the reference's (grounding; no box: 0) | str |
| mean_iou | IoU of the answer's first box with the reference's box (grounding; no box: 0) | str |
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

METRICS_DIR = Path(__file__).resolve().parent
METRICS = (
    "exact_match", "vqa_accuracy", "anls", "relaxed_accuracy", "bleu", "rouge", "answer_match", "cider",
    "iou_accuracy", "mean_iou",
)  # fmt: skip


def check_metric_names(names) -> None:
    """Fail fast, naming the choices, before any model is loaded."""
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(
            f"Unknown metric(s) {unknown}; choose from {list(METRICS)} (vlm_recipes/evaluation/metrics/)."
        )


def metric_path(name: str) -> Path:
    """The local directory of metric `name`, for `evaluate.load(str(metric_path(name)))`."""
    check_metric_names([name])
    return METRICS_DIR / name


@cache
def load_metric(name: str):
    """`evaluate.load` of our local metric module `name` (offline; cached per process)."""
    import evaluate

    # In memory: no cache files, so concurrent processes (e.g. the ranks of a multi-process run) never share one.
    return evaluate.load(str(metric_path(name)), keep_in_memory=True)


def score(name: str, predictions: list[str], references: list) -> dict:
    """Compute metric `name`; the result holds the headline value under `name` and per-sample `scores`."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references.")
    if not predictions:
        return {name: 0.0, "scores": []}
    if any(not isinstance(r, str) for r in references):
        # One feature type per call: a lone string among lists would be read as a list of its characters.
        references = [[r] if isinstance(r, str) else list(r) for r in references]
    return load_metric(name).compute(predictions=predictions, references=references, return_per_sample=True)

"""Relaxed accuracy (ChartQA): a numeric prediction is right when within 5% relative error of a numeric reference
(option `tolerance`), any other answer must match exactly after normalisation; averaged over the questions.

A local `evaluate` module of vlm-recipes:
`evaluate.load("<path to this folder>")` works offline.
The scoring itself is `vlm_recipes.evaluation.metrics.scoring.relaxed_accuracy_score` (ours; see its docstring).
"""

from vlm_recipes.evaluation.metrics import base, scoring


class RelaxedAccuracy(base.PerSampleMetric):
    metric_key = "relaxed_accuracy"
    description = __doc__
    score_fn = staticmethod(scoring.relaxed_accuracy_score)

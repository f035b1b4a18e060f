"""Normalised exact match: 1 if the prediction equals a reference after Unicode NFKC, case folding, punctuation removal
and whitespace collapsing, else 0; averaged over the samples.

A local `evaluate` module of vlm-recipes: `evaluate.load("<path to this folder>")` works offline.
The scoring itself is `vlm_recipes.evaluation.metrics.scoring.exact_match_score` (ours; see its docstring).
"""

from vlm_recipes.evaluation.metrics import base, scoring


class ExactMatch(base.PerSampleMetric):
    metric_key = "exact_match"
    description = __doc__
    score_fn = staticmethod(scoring.exact_match_score)

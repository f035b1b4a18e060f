"""ANLS (Average Normalized Levenshtein Similarity, DocVQA): per question the best over its references of 1 - edit
distance / longer length, counted as 0 when that normalised distance is 0.5 or more (option `threshold`); averaged
over the questions.

A local `evaluate` module of vlm-recipes: `evaluate.load("<path to this folder>")` works offline.
The scoring itself is `vlm_recipes.evaluation.metrics.scoring.anls_score` (ours; see its docstring).
"""

from vlm_recipes.evaluation.metrics import base, scoring


class ANLS(base.PerSampleMetric):
    metric_key = "anls"
    description = __doc__
    score_fn = staticmethod(scoring.anls_score)

"""VQA accuracy: min(#human answers equal to the prediction / 3, 1) per question, answers normalised VQA-style (case,
punctuation, articles, number words); averaged over the questions. References are the lists of human answers.

A local `evaluate` module of vlm-recipes: `evaluate.load("<path to this folder>")` works offline.
The scoring itself is `vlm_recipes.evaluation.metrics.scoring.vqa_accuracy_score` (ours; see its docstring).
"""

from vlm_recipes.evaluation.metrics import base, scoring


class VQAAccuracy(base.PerSampleMetric):
    metric_key = "vqa_accuracy"
    description = __doc__
    score_fn = staticmethod(scoring.vqa_accuracy_score)
    reference_features = (base.MANY_REFERENCES,)

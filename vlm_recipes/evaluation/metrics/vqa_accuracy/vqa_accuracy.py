"""VQA accuracy as the official VQA evaluation computes it (VQAv2, TextVQA): min(#humans who gave the prediction / 3,
1) over each leave-one-out subset of the human answers, averaged (1, 2, 3, 4+ of 10 humans: 0.3, 0.6, 0.9, 1.0),
answers normalised by the VQA evaluation's rules; averaged over the questions. References are the lists of human
answers (at least 4).

A local `evaluate` module of vlm-recipes: `evaluate.load("<path to this folder>")` works offline.
The scoring itself is `vlm_recipes.evaluation.metrics.scoring.vqa_accuracy_score` (ours; see its docstring).
"""

from vlm_recipes.evaluation.metrics import base, scoring


class VQAAccuracy(base.PerSampleMetric):
    metric_key = "vqa_accuracy"
    description = __doc__
    score_fn = staticmethod(scoring.vqa_accuracy_score)
    reference_features = (base.MANY_REFERENCES,)

"""IoU@0.5 accuracy (grounding): the share of answers whose first box overlaps the reference box with an IoU of at
least 0.5 (option `threshold`); an answer without a proper box counts as a miss.

A local `evaluate` module of vlm-recipes:
`evaluate.load("<path to this folder>")` works offline.
The scoring itself is `vlm_recipes.evaluation.metrics.scoring.iou_at_50_score` (ours; see its docstring).
"""

from vlm_recipes.evaluation.metrics import base, scoring


class IouAccuracy(base.PerSampleMetric):
    metric_key = "iou_accuracy"
    description = __doc__
    score_fn = staticmethod(scoring.iou_at_50_score)

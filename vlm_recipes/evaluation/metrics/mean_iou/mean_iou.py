"""Mean IoU (grounding): the IoU of each answer's first box with the reference box, averaged; an answer without a
proper box scores 0.

A local `evaluate` module of vlm-recipes:
`evaluate.load("<path to this folder>")` works offline.
The scoring itself is `vlm_recipes.evaluation.metrics.scoring.box_iou_score` (ours; see its docstring).
"""

from vlm_recipes.evaluation.metrics import base, scoring


class MeanIou(base.PerSampleMetric):
    metric_key = "mean_iou"
    description = __doc__
    score_fn = staticmethod(scoring.box_iou_score)

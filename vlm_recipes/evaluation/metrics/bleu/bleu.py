"""BLEU for captions and descriptions: corpus BLEU-4 over words, with add-one smoothing of the 2- to 4-gram
precisions by default (short captions rarely share a 4-gram), and the brevity penalty. Per-sample `scores` are
the same formula on one sample (sentence BLEU).

A local `evaluate` module of vlm-recipes: `evaluate.load("<path to this folder>")` works offline.
The scoring itself is `vlm_recipes.evaluation.metrics.scoring.bleu` (ours, not SacreBLEU; see its docstring).
"""

from vlm_recipes.evaluation.metrics import base, scoring


class BLEU(base.PerSampleMetric):
    metric_key = "bleu"
    description = __doc__

    def _compute(self, predictions, references, return_per_sample=False, max_order=4, smooth=True):
        out = scoring.bleu(predictions, references, max_order=max_order, smooth=smooth)
        if return_per_sample:
            out["scores"] = [
                scoring.bleu([p], [r], max_order=max_order, smooth=smooth)["bleu"]
                for p, r in zip(predictions, references)
            ]
        return out

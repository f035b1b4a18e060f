"""CIDEr-D for image captions, as the COCO caption evaluation reports "CIDEr": TF-IDF weighted 1- to 4-gram
similarity to the reference captions (document frequencies over the scored corpus's references), clipped, with a
Gaussian length penalty (sigma 6), times 10. Per-sample `scores` are each image's score within the corpus (they
depend on the other images scored with it); a corpus of a single image always scores 0.

A local `evaluate` module of vlm-recipes: `evaluate.load("<path to this folder>")` works offline.
The scoring itself is `vlm_recipes.evaluation.metrics.captions.cider_d` (ours, equal to pycocoevalcap's scorer on
the same tokens; our tokenizer is not the Java PTB tokenizer: see that module's docstring).
"""

from vlm_recipes.evaluation.metrics import base, captions


class CIDEr(base.PerSampleMetric):
    metric_key = "cider"
    description = __doc__

    def _compute(self, predictions, references, return_per_sample=False, sigma=captions.CIDER_SIGMA):
        out = captions.cider_d(predictions, references, sigma=sigma)
        return out if return_per_sample else {"cider": out["cider"]}

"""ROUGE for captions and descriptions: ROUGE-1 (unigram overlap) and ROUGE-L (longest common subsequence) F1
over words, best reference per sample, averaged. The headline `rouge` is ROUGE-L; per-sample `scores` too.

A local `evaluate` module of vlm-recipes: `evaluate.load("<path to this folder>")` works offline.
The scoring itself is `vlm_recipes.evaluation.metrics.scoring.rouge1_score` / `rouge_l_score` (ours, not rouge-score).
"""

from vlm_recipes.evaluation.metrics import base, scoring


class ROUGE(base.PerSampleMetric):
    metric_key = "rouge"
    description = __doc__

    def _compute(self, predictions, references, return_per_sample=False):
        rouge_l = [scoring.rouge_l_score(p, r) for p, r in zip(predictions, references)]
        rouge1 = [scoring.rouge1_score(p, r) for p, r in zip(predictions, references)]
        n = max(len(rouge_l), 1)
        out = {"rouge": sum(rouge_l) / n, "rougeL": sum(rouge_l) / n, "rouge1": sum(rouge1) / n}
        if return_per_sample:
            out["scores"] = rouge_l
        return out

"""The `evaluate.Metric` base our metric scripts share: per-sample scores averaged into one headline value.

A metric script subclasses `PerSampleMetric` through the module (`base.PerSampleMetric`), never by importing the
class name: `evaluate.load` takes the first metric class it finds in the script's namespace as the metric.
"""

from __future__ import annotations

from collections.abc import Callable

import datasets
import evaluate

# References may be one string or a list of acceptable strings (e.g. the 10 human answers of VQA).
ONE_REFERENCE = datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")})
MANY_REFERENCES = datasets.Features(
    {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
)

INPUTS = """
Args:
    predictions (list of str): generated answers.
    references (list of str, or list of list of str): the reference answer(s) of each prediction.
    return_per_sample (bool): also return `scores`, one value per prediction (default False).
Returns:
    {name} (float): the mean of the per-sample scores, in [0, 1].
"""


class PerSampleMetric(evaluate.Metric):
    """Mean of `score_fn(prediction, reference)` over the samples."""

    metric_key: str = ""
    description: str = ""
    citation: str = ""
    reference_features: tuple = (ONE_REFERENCE, MANY_REFERENCES)
    score_fn: Callable[..., float]

    def _info(self):
        return evaluate.MetricInfo(
            description=self.description,
            citation=self.citation,
            inputs_description=INPUTS.format(name=self.metric_key),
            features=list(self.reference_features),
        )

    def _compute(self, predictions, references, return_per_sample: bool = False, **options):
        scores = [self.score_fn(p, r, **options) for p, r in zip(predictions, references)]
        out = {self.metric_key: sum(scores) / len(scores) if scores else 0.0}
        if return_per_sample:
            out["scores"] = scores
        return out

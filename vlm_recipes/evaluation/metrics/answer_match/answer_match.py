"""Answer match: 1 when the final answer of a generation (the last `<answer>` block, "the answer is ...", or a
`\boxed{}` expression) is the final answer of the reference (the same extraction, so a reference may be a whole
reasoning trace): option letters compared as letters, numbers and LaTeX by math-verify's equivalence, anything
else after normalisation (case, punctuation, whitespace). Averaged over the questions.

A local `evaluate` module of vlm-recipes: `evaluate.load("<path to this folder>")` works offline.
The scoring itself is `vlm_recipes.evaluation.metrics.scoring.answer_match_score` (see its docstring).
"""

from vlm_recipes.evaluation.metrics import base, scoring


class AnswerMatch(base.PerSampleMetric):
    metric_key = "answer_match"
    description = __doc__
    score_fn = staticmethod(scoring.answer_match_score)

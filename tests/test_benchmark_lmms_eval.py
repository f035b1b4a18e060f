"""lmms-eval's own multiple-choice extractors on the literal outputs of test_benchmarks.CHOICE_CASES, next to ours.

lmms-eval is not a dependency: lmms-eval 0.7.3 requires `av<16` (we pin av 18.1.0) and `wandb==0.25.0`, so installing
it with its dependencies would change the pinned stack. Its extraction functions are plain Python, so this test
loads their files from an installed copy without importing the package (which would pull in its dependencies):

    pip install --no-deps lmms-eval==0.7.3     # then: pytest tests/test_benchmark_lmms_eval.py

and is skipped where lmms-eval is not installed. It runs `parse_mmmu_multi_choice_response` (MMMU's official rule,
used by lmms-eval's mmmu tasks; it picks a random option when it finds none, shown here as "random": the result
changes with the seed) and `extract_mcq_answer` (lmms-eval's generic extractor, used by mmstar and mmbench's static
evaluation; "" when it finds none, shown as None), and asserts their answers and where ours differ, with why.
"""

import importlib.metadata
import importlib.util
import random

import pytest
from helpers import CHOICE_CASES, SHAPES

from vlm_recipes.evaluation.benchmarks.extraction import extract_choice

pytestmark = pytest.mark.unit

# output -> (MMMU's rule, lmms-eval's generic extractor)
LMMS_EVAL = {
    "B": ("B", "B"),
    "b": ("random", None),
    "(B)": ("B", "B"),
    "B.": ("B", "B"),
    "[C]": ("random", "C"),
    "(c)": ("random", None),
    "Option D": ("D", "D"),
    "**B**": ("random", "B"),
    "B. a blue square": ("B", "B"),
    "(C) a green triangle": ("C", "C"),
    "D: a yellow star": ("random", "D"),
    "The answer is (B).": ("B", "B"),
    "The answer is B": ("B", "B"),
    "Answer: C": ("C", "C"),
    "Answer: (b) a blue square": ("random", "A"),
    "The correct option is D because the star is yellow.": ("D", "D"),
    "$\\boxed{C}$": ("random", "C"),
    "\\text{(A)}": ("A", "A"),
    "<answer>D</answer>": ("random", "D"),
    "<think>A looks wrong, B too.</think> The answer is C.": ("C", "C"),
    "Looking at the colours, the shape is green and has three sides, so the answer is C.": ("C", "C"),
    "I cannot see the image clearly, but the answer is B.": ("B", "B"),
    "The answer is the blue square.": ("random", None),
    "The shape is green with three sides. C": ("C", "C"),
    "I think it is B.": ("B", "B"),
    "It could be A or B, but on balance I pick C.": ("C", "C"),
    "A and B are wrong; D.": ("D", "A"),
    "Option A shows a circle, option B a square. The star in the image matches option D.": ("D", "D"),
    "a blue square": ("random", None),
    "It is a green triangle.": ("random", None),
    "The image shows a yellow star on grey.": ("D", None),
    "A red circle.": ("A", "A"),
    "A cat is sitting on the mat.": ("A", "A"),
    "I'm sorry, I cannot determine the answer from this image.": ("random", None),
    "None of the options is correct.": ("random", None),
    "": ("random", None),
    "square": ("random", None),
    "E": ("random", None),
}

# Where a reference rule reads a letter and ours reads another one (or none), and why:
DIFFERENCES = {
    # Both read the article "A" as option A; ours reads it as a word (no option named: unparsable).
    "A cat is sitting on the mat.": "article",
    # The generic extractor prefers a letter that opens the answer ("A" of "Answer", "A" of "A and B are wrong")
    # over the stated or the last letter; ours reads the statement, or the last letter of a rationale.
    "Answer: (b) a blue square": "opening letter",
    "A and B are wrong; D.": "opening letter",
}


def _load(relative: str):
    try:
        distribution = importlib.metadata.distribution("lmms_eval")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("lmms-eval is not installed (pip install --no-deps lmms-eval==0.7.3)")
    path = distribution.locate_file(f"lmms_eval/tasks/_task_utils/{relative}")
    spec = importlib.util.spec_from_file_location(f"lmms_eval_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mmmu_rule(output: str) -> str:
    module = _load("mmmu_mcq_utils.py")
    letters = ["A", "B", "C", "D"]
    seen = set()
    for seed in range(4):
        random.seed(seed)
        seen.add(module.parse_mmmu_multi_choice_response(output, letters, dict(zip(letters, SHAPES))))
    return seen.pop() if len(seen) == 1 else "random"


def generic_rule(output: str) -> str | None:
    return _load("mcq_extract.py").extract_mcq_answer(output, ["A", "B", "C", "D"]) or None


def test_the_literal_outputs_are_our_test_cases():
    assert sorted(LMMS_EVAL) == sorted(output for output, _ in CHOICE_CASES)


@pytest.mark.parametrize("output", sorted(LMMS_EVAL), ids=lambda o: repr(o)[:40])
def test_lmms_eval_extractors_on_our_literal_outputs(output):
    mmmu, generic = LMMS_EVAL[output]
    assert (mmmu_rule(output), generic_rule(output)) == (mmmu, generic)
    ours = extract_choice(output, SHAPES).letter
    disagree = {rule for rule in (mmmu, generic) if rule not in ("random", None) and rule != ours}
    assert bool(disagree) == (output in DIFFERENCES), (output, ours, mmmu, generic)
    if mmmu == "random" and output not in DIFFERENCES:
        # Where MMMU's rule guesses, ours reads what the generic extractor reads, or nothing: never a guess.
        assert ours is None or ours == generic or generic is None

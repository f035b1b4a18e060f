"""Reward functions on literal completions with exact expected values."""

import pytest

from vlm_recipes.evaluation.metrics.scoring import answer_match_score, final_answer_text
from vlm_recipes.training.rewards import (
    REWARDS,
    accuracy_reward,
    box_iou,
    format_reward,
    get_reward_funcs,
    iou_reward,
    length_penalty,
    math_accuracy_reward,
    weighted_rewards,
)

pytestmark = pytest.mark.unit


def msg(text):
    return [{"role": "assistant", "content": text}]


def test_format_reward():
    completions = [
        "<think>red pixels</think><answer>red</answer>",
        "  <think>a\nb</think>\n<answer>red</answer>\n",
        "<answer>red</answer>",  # no think
        "<think>x</think><answer>red</answer> trailing",  # text after the answer
        "<think></think><answer>red</answer>",  # empty think
        "",
        msg("<think>t</think><answer>a</answer>"),
    ]
    assert format_reward(completions) == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]


def test_accuracy_reward_reads_answer_tags_and_normalises():
    completions = [
        "<think>x</think><answer> Red. </answer>",
        "red",
        "blue",
        "<answer>red</answer><answer>blue</answer>",
        msg([{"type": "text", "text": "RED"}]),
        "anything",
    ]
    answers = ["red", "red", "red", "blue", "red", None]
    assert accuracy_reward(completions, answer=answers) == [1.0, 1.0, 0.0, 1.0, 1.0, None]
    assert accuracy_reward(["red"]) == [None]  # no reference column at all


def test_math_accuracy_reward():
    completions = [
        "<answer>0.5</answer>",
        "<answer>\\frac{1}{2}</answer>",
        "<answer>3</answer>",
        "no number here",
        "<answer>2</answer>",
        "<answer>Not math at all.</answer>",
        "<answer>anything</answer>",
    ]
    # A reference math-verify cannot parse is compared as a normalised string; no reference: None.
    solutions = ["$\\frac{1}{2}$", "0.5", "4", "7", "not math at all", "not math at all", None]
    assert math_accuracy_reward(completions, solution=solutions) == [1.0, 1.0, 0.0, 0.0, 0.0, 1.0, None]
    assert math_accuracy_reward(["<answer>4</answer>"], answer=["4"]) == [1.0]


# Solutions as lmms-lab/multimodal-open-r1-8k-verified stores them: a reasoning trace, then the answer.
CHOICE_TRACE = (
    "<think>The figure shows triangle ABC with a right angle at A and angle B = 45°, so angle C = 180° - 90° - 45° "
    "= 45°. Among the choices, A: 45°, B: 60°, C: 90°, 45° is option A, so the correct answer is A.</think>\n\n"
    "<answer>A</answer>"
)
DISTRACTOR_TRACE = (
    "<think>I count 12 apples in the basket. Tom takes half of them: 12 / 2 = 6, so 6 apples are left.</think>\n\n"
    "<answer>6</answer>"
)
FRACTION_TRACE = (
    "<think>The square is divided into 4 equal parts and 3 of them are shaded.</think>\n\n"
    "<answer>\\frac{3}{4}</answer>"
)


@pytest.mark.parametrize(
    "trace, completion, expected",
    [
        (CHOICE_TRACE, "<think>angle C is 45 degrees</think><answer>A</answer>", 1.0),  # the letter: right
        (CHOICE_TRACE, "<answer>(A)</answer>", 1.0),
        (CHOICE_TRACE, "So the answer is A.", 1.0),
        (CHOICE_TRACE, "<answer>A. 45°</answer>", 1.0),
        (CHOICE_TRACE, "<answer>45°</answer>", 0.0),  # the option's value, not the option asked for
        (CHOICE_TRACE, "<answer>B</answer>", 0.0),
        (CHOICE_TRACE, "<answer>180</answer>", 0.0),  # a number of the reasoning
        (DISTRACTOR_TRACE, "<answer>6</answer>", 1.0),
        (DISTRACTOR_TRACE, "6", 1.0),
        (DISTRACTOR_TRACE, "<think>half of twelve</think><answer>6.0</answer>", 1.0),
        (DISTRACTOR_TRACE, "<answer>12</answer>", 0.0),  # the distractor in the reasoning
        (DISTRACTOR_TRACE, "The answer is $\\boxed{6}$.", 1.0),
        (FRACTION_TRACE, "<answer>0.75</answer>", 1.0),
        (FRACTION_TRACE, "<answer>3/4</answer>", 1.0),
        (FRACTION_TRACE, "<answer>$\\dfrac{3}{4}$</answer>", 1.0),
        (FRACTION_TRACE, "\\boxed{\\frac{6}{8}}", 1.0),
        (FRACTION_TRACE, "<answer>\\frac{4}{3}</answer>", 0.0),
        (FRACTION_TRACE, "<answer>4</answer>", 0.0),
        ("<answer>2\\sqrt{3}</answer>", "<answer>\\sqrt{12}</answer>", 1.0),  # bare LaTeX is parsed as LaTeX
        ("<answer>2\\sqrt{3}</answer>", "<answer>2</answer>", 0.0),  # ... not as its leading digit
        ("<think>the largest is red</think><answer>red</answer>", "<answer>Red.</answer>", 1.0),  # words: strings
        ("<think>the largest is red</think><answer>red</answer>", "<answer>blue</answer>", 0.0),
    ],
)
def test_math_accuracy_scores_real_form_traces_as_a_person_would(trace, completion, expected):
    assert math_accuracy_reward([msg(completion)], solution=[trace]) == [expected]
    # The held-out GRPO accuracy uses the same comparison (the answer_match metric).
    assert answer_match_score(completion, trace) == expected


def test_final_answer_is_read_from_answer_tags_a_final_statement_or_a_box():
    assert final_answer_text(CHOICE_TRACE) == "A"
    assert final_answer_text("First 12, then 6. The final answer is 6.") == "6"
    assert final_answer_text("Answer: 3.5") == "3.5"
    assert final_answer_text("so $x = \\boxed{\\frac{1}{2}}$ and we are done") == "\\frac{1}{2}"
    assert final_answer_text("<think>the answer is 4?</think><answer>5</answer>") == "5"
    assert final_answer_text("<think>x</think><answer>7") == "7"  # a generation cut before </answer>
    assert final_answer_text("  red ") == "red"


def test_accuracy_reward_compares_final_answers_on_both_sides():
    assert accuracy_reward(["<answer>A</answer>", "A", "<answer>45°</answer>"], answer=[CHOICE_TRACE] * 3) == [
        1.0,
        1.0,
        0.0,
    ]


def test_iou_reward():
    gold = [[0, 0, 10, 10]] * 5 + ["[0, 0, 10, 10]", None, "[5, 5, 1, 1]"]
    completions = [
        "<answer>[0, 0, 10, 10]</answer>",  # full overlap
        "<answer>[20, 20, 30, 30]</answer>",  # no overlap
        "<answer>[0, 0, 10, 5]</answer>",  # half the box
        "<answer>[5, 0, 15, 10]</answer>",  # 50/150
        "<answer>no box</answer>",
        "the box is [0.0, 0.0, 5.0, 10.0]",
        "[0, 0, 1, 1]",  # no reference
        "[0, 0, 1, 1]",  # reference is not a box
    ]
    assert iou_reward(completions, bbox=gold) == pytest.approx([1.0, 0.0, 0.5, 1 / 3, 0.0, 0.5, None, None])
    assert box_iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)


def test_length_penalty():
    assert length_penalty(["a" * 10, "a" * 32, "a" * 48, "a" * 64, "a" * 500]) == [0.0, 0.0, -0.5, -1.0, -1.0]
    assert length_penalty(["a" * 20], target_chars=10) == [-1.0]


def test_every_registered_name_resolves_and_unknown_fails_fast():
    assert get_reward_funcs(list(REWARDS)) == list(REWARDS.values())
    with pytest.raises(ValueError, match=r"Unknown reward function\(s\) \['acuracy'\]; available: \["):
        get_reward_funcs(["accuracy", "acuracy"])
    with pytest.raises(ValueError, match="at least one"):
        get_reward_funcs([])


def test_weighted_rewards_count_none_as_zero():
    totals = weighted_rewards(
        ["accuracy", "length_penalty"], [1.0, 0.5], ["red", "a" * 48, "red"], {"answer": ["red", "red", None]}
    )
    assert totals == [1.0, -0.25, 0.0]

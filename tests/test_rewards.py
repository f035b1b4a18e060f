"""Reward functions on literal completions with exact expected values."""

import pytest

from vlm_recipes.evaluation.metrics import score
from vlm_recipes.evaluation.metrics.scoring import answer_match_score, final_answer_text
from vlm_recipes.grounding.boxes import get_convention
from vlm_recipes.training.rewards import (
    REWARDS,
    accuracy_reward,
    anls_reward,
    box_format_reward,
    box_iou,
    count_reward,
    format_reward,
    get_reward_funcs,
    giou_reward,
    iou_reward,
    length_penalty,
    math_accuracy_reward,
    relaxed_accuracy_reward,
    thresholded_iou_reward,
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


# -- rewards for vision tasks -----------------------------------------------------------------------------------------


def test_anls_reward_is_the_anls_metric_on_the_final_answer():
    completions = [
        "<answer>Invoice</answer>",  # case is ignored: 1
        "abce",  # 1 edit in 4 characters: 1 - 1/4
        "abc",  # 1 - 1/4
        "ab",  # 2 edits in 4: a normalised distance of 0.5 scores 0 (the threshold)
        "",  # 4 in 4: 0
        "The answer is abce.",  # the final answer is read ("abce")
        "abce",  # several references: the best (1 edit from "abcd")
        "abcd",  # VQA-style references
        "anything",
    ]
    answers = ["invoice", "abcd", "abcd", "abcd", "abcd", "abcd", ["xyz", "abcd"], [{"answer": "abcd"}], None]
    assert anls_reward(completions, answers=answers) == pytest.approx(
        [1.0, 0.75, 0.75, 0.0, 0.0, 0.75, 0.75, 1.0, None]
    )
    # `answers` (all accepted answers) wins over `answer` (the trained one); `answer` alone is used without it.
    assert anls_reward(["abcd"], answers=[["abcd"]], answer=["zzzz"]) == [1.0]
    assert anls_reward(["Total"], answer=["total"]) == [1.0]
    assert anls_reward(["x"]) == [None]
    # One implementation: the reward is the metric's per-sample score.
    preds, refs = ["abce", "ab", "invoice"], ["abcd", "abcd", ["Invoice", "bill"]]
    assert anls_reward(preds, answers=refs) == score("anls", preds, refs)["scores"]


def test_relaxed_accuracy_reward_is_chartqas_relaxed_accuracy():
    completions = [
        "<answer>10.5</answer>",  # 5% above 10: right (the boundary is inclusive)
        "9.5",  # 5% below
        "10.6",  # 6%: wrong
        "45%",  # a percentage is a fraction, as in lmms-eval's chartqa: 0.45
        "45%",  # ... so against a reference of 45 it is wrong (0.45 vs 45)
        "The answer is 1,000.",  # thousands separators are ignored
        "Yes",  # not a number: exact match after normalisation
        "no",
        "0",  # a reference of 0 needs exactly 0
        "0.01",
        "20",  # several references: 20 is within 5% of 21 (4.8%), not of 19 (5.3%)
        "20",
    ]
    answers = ["10", "10", "10", "0.45", "45", "1000", "yes", "yes", "0", "0", ["19", "21"], ["19", "100"]]
    assert relaxed_accuracy_reward(completions, answer=answers) == [
        1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0
    ]  # fmt: skip
    assert relaxed_accuracy_reward(["3"], answer=[None]) == [None]
    preds, refs = ["10.5", "45%", "Yes"], ["10", "45", "yes"]
    assert relaxed_accuracy_reward(preds, answer=refs) == score("relaxed_accuracy", preds, refs)["scores"]


def test_count_reward_wants_exactly_one_number_and_the_right_one():
    completions = [
        "3",
        "<answer>three</answer>",
        "There are 3 circles.",
        "4",
        "2 or 3",  # a hedge between two counts is not a count
        "3.5",
        "no idea",
        "1,000",
        "3.0",
        "<think>one, two, three</think><answer>3</answer>",  # only the final answer counts
        "zero",
        "3",
    ]
    answers = ["3", 3, "3", "3", "3", "3", "3", "1000", "3", "3", "0", None]
    assert count_reward(completions, answer=answers) == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, None]
    with pytest.raises(ValueError, match="'many' is not a whole number"):
        count_reward(["3"], answer=["many"])


# A 64 px scene of the offline grounding task: 4 x 4 cells of 16 px, the 12 px shape in the cell at column 1, row 1.
TARGET = [18.0, 18.0, 30.0, 30.0]
BOXES = {
    "correct": "[18, 18, 30, 30]",
    "loose": "[17, 17, 31, 31]",  # 14 px around a 12 px shape: IoU 144/196
    "twice": "[18, 18, 30, 42]",  # the shape and as much again below: IoU exactly 0.5
    "hedge": "[18, 18, 46, 30]",  # stretched over the right cell and the next: IoU 144/336 = 3/7
    "wrong": "[34, 18, 46, 30]",  # the shape's size, one cell to the right
    "wrong_wide": "[34, 18, 62, 30]",  # the hedge's size, over two wrong cells
    "none": "somewhere in the middle",
}


def grounding_rewards(reward):
    names = list(BOXES)
    values = reward([BOXES[n] for n in names], bbox=[TARGET] * len(names))
    return dict(zip(names, values))


def test_iou_reward_pays_the_hedge_more_than_a_wrong_box():
    r = grounding_rewards(iou_reward)
    expected = {"correct": 1.0, "loose": 144 / 196, "twice": 0.5, "hedge": 3 / 7, "wrong": 0.0, "wrong_wide": 0.0}
    assert r == pytest.approx({**expected, "none": 0.0})
    assert r["hedge"] > r["wrong"]  # the incentive to hedge (docs/recipes.md, grounding rewards)


def test_thresholded_iou_scores_a_hedge_below_a_right_box_and_no_better_than_a_wrong_one():
    r = grounding_rewards(thresholded_iou_reward)
    assert r == pytest.approx(
        {"correct": 1.0, "loose": 144 / 196, "twice": 0.5, "hedge": 0.0, "wrong": 0.0, "wrong_wide": 0.0, "none": 0.0}
    )
    assert r["hedge"] < r["correct"] and r["hedge"] <= r["wrong"] and r["hedge"] <= r["wrong_wide"]
    assert thresholded_iou_reward(["[0, 0, 1, 1]"], bbox=[None]) == [None]


def test_giou_ranks_misses_by_distance_but_still_pays_a_hedge():
    r = grounding_rewards(giou_reward)
    # GIoU = IoU - (enclosing area - union) / enclosing area.
    assert r == pytest.approx(
        {
            "correct": 1.0,
            "loose": 144 / 196,  # the answer encloses the shape: no empty hull
            "twice": 0.5,
            "hedge": 3 / 7,
            "wrong": -48 / 336,  # hull 28 x 12, union 2 x 144
            "wrong_wide": -48 / 528,  # hull 44 x 12, union 144 + 336
            "none": -1.0,  # no box: GIoU's minimum, below any box
        }
    )
    assert r["hedge"] > r["wrong"]  # GIoU does not remove the incentive to hedge; thresholded IoU does


def test_box_rewards_take_answers_back_to_pixels_from_the_rows_frame():
    # SmolVLM's 0-100 grid on a 64 px image: [28, 28, 47, 47] is pixels 17.92..30.08, a 12.16 px square around the
    # 12 px shape: IoU 144 / 12.16^2 (in grid units the answer would score 144 / 19^2 = 0.40).
    rows = dict(bbox=[TARGET], box_frame=[[100, 100]], image_size=[[64, 64]])
    expected = 144 / (19 * 0.64) ** 2
    assert thresholded_iou_reward(["[28, 28, 47, 47]"], **rows) == pytest.approx([expected])
    assert giou_reward(["[28, 28, 47, 47]"], **rows) == pytest.approx([expected])


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[28, 28, 47, 47]", 1.0),
        (" [28,28,47,47]\n", 1.0),  # spacing is free
        ("[28, 28, 47]", 0.0),
        ("[28.5, 28, 47, 47]", 0.0),  # the grid is integers
        ("[47, 28, 28, 47]", 0.0),  # x1 > x2
        ("[0, 0, 101, 50]", 0.0),  # off the 0-100 grid
        ("The box is [28, 28, 47, 47]", 0.0),  # prose around it
        ('[{"bbox_2d": [28, 28, 47, 47], "label": "red circle"}]', 0.0),  # the other family's convention
    ],
)
def test_box_format_reward_on_smolvlm_rows(text, expected):
    assert box_format_reward([text], box_format=["smolvlm"], box_frame=[[100, 100]]) == [expected]


@pytest.mark.parametrize(
    "text, expected",
    [
        ('[{"bbox_2d": [28, 28, 56, 84], "label": "red circle"}]', 1.0),
        ('```json\n[\n  {"bbox_2d": [28, 28, 56, 84], "label": "red circle"}\n]\n```', 1.0),  # Qwen's fences
        ('[{"bbox_2d": [1, 1, 9, 9], "label": "a"}, {"bbox_2d": [20, 20, 40, 40], "label": "b"}]', 1.0),
        ('[{"bbox_2d": [28, 28, 56, 120], "label": "red circle"}]', 0.0),  # outside the 112 x 112 frame
        ('{"bbox_2d": [28, 28, 56, 84], "label": "red circle"}', 0.0),  # an object, not a list of them
        ('[{"bbox_2d": [28, 28, 56, 84]}]', 0.0),  # no label
        ("[28, 28, 56, 84]", 0.0),  # SmolVLM's convention
        ("[]", 0.0),
    ],
)
def test_box_format_reward_on_qwen_rows(text, expected):
    assert box_format_reward([text], box_format=["qwen2.5-vl"], box_frame=[[112, 112]]) == [expected]


def test_box_format_reward_accepts_what_each_convention_writes_and_skips_other_rows():
    smol = get_convention("smolvlm")
    text, frame = smol.answer(TARGET, (64, 64))
    assert box_format_reward([text], box_format=["smolvlm"], box_frame=[list(frame)]) == [1.0]
    qwen = get_convention("qwen2.5-vl")
    text = qwen.format(qwen.to_frame(TARGET, (64, 64), (112, 112)), label='the "big" one')
    assert box_format_reward([text], box_format=["qwen2.5-vl"], box_frame=[[112, 112]]) == [1.0]
    assert box_format_reward(["[1, 2, 3, 4]"]) == [None]  # not a grounding row

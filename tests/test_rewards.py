"""Reward functions on literal completions with exact expected values."""

import pytest

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
    ]
    solutions = ["$\\frac{1}{2}$", "0.5", "4", "7", "not math at all"]
    assert math_accuracy_reward(completions, solution=solutions) == [1.0, 1.0, 0.0, 0.0, None]
    assert math_accuracy_reward(["<answer>4</answer>"], answer=["4"]) == [1.0]


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

"""Reward functions for GRPO, chosen by name (and weight) in YAML.

Every reward has TRL's signature: `reward(completions, **columns) -> list[float | None]`, where `completions` are
strings or lists of assistant messages and `columns` are the dataset's columns (plus TRL's extras, ignored here).
`None` means "does not apply to this row" (e.g. no reference to compare with): TRL leaves it out of the sum.
A completion that cannot be parsed scores 0 (the model failed), never crashes the run.

What TRL lacks and this module adds: a registry that fails fast on unknown names, the final answer read from both
sides (the completion and the reference column, which may hold a whole reasoning trace such as
`<think>...</think><answer>A</answer>`), and rewards for VLM tasks (bounding-box IoU). The answer comparison is
the `answer_match` metric's (`vlm_recipes.evaluation.metrics.scoring`), so GRPO's held-out accuracy and its reward
agree on what a right answer is.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..evaluation.metrics.scoring import answer_match_score, final_answer_text, normalize_answer
from ..grounding import boxes

RewardFunc = Callable[..., list[float | None]]

_FORMAT = re.compile(r"^\s*<think>.+?</think>\s*<answer>.+?</answer>\s*$", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def completion_text(completion) -> str:
    """The text of a completion: a string, or the content of its (last) assistant message."""
    if isinstance(completion, str):
        return completion
    content = completion[-1]["content"] if completion else ""
    if isinstance(content, list):
        return "".join(part.get("text") or "" for part in content if part.get("type") == "text")
    return content or ""


def extract_answer(text: str) -> str:
    """The content of the last `<answer>` block, or the whole text when there is none."""
    found = _ANSWER.findall(text)
    return found[-1].strip() if found else text.strip()


def format_reward(completions, **kwargs) -> list[float | None]:
    """1.0 for `<think>...</think><answer>...</answer>` (nothing around it), else 0.0."""
    return [1.0 if _FORMAT.match(completion_text(c)) else 0.0 for c in completions]


def accuracy_reward(completions, answer=None, **kwargs) -> list[float | None]:
    """1.0 when the final answer of the completion equals the final answer of the `answer` column after
    normalisation (`final_answer_text` on both sides: `<answer>`, "the answer is", `\\boxed{}`); None without a
    reference."""
    answers = answer if answer is not None else [None] * len(completions)
    return [
        None
        if ref is None
        else float(normalize_answer(final_answer_text(completion_text(c))) == normalize_answer(final_answer_text(ref)))
        for c, ref in zip(completions, answers)
    ]


def math_accuracy_reward(completions, solution=None, answer=None, **kwargs) -> list[float | None]:
    """1.0 when the completion's final answer is the final answer of the `solution` (or `answer`) column: the
    `answer_match` metric (option letters as letters, math-verify equivalence, else normalised strings; see
    `vlm_recipes.evaluation.metrics.scoring.answer_match_score`). The reference may be a whole reasoning trace
    (`<think>...</think><answer>A</answer>`, as in lmms-lab/multimodal-open-r1-8k-verified): only its final answer
    counts, never a number met in its reasoning. None when the row has no reference (or an empty one).
    """
    references = solution if solution is not None else answer
    references = references if references is not None else [None] * len(completions)
    return [
        None if ref is None or not final_answer_text(str(ref)) else answer_match_score(completion_text(c), str(ref))
        for c, ref in zip(completions, references)
    ]


def parse_box(text) -> tuple[float, float, float, float] | None:
    """The first box stated in text (or a 4-number list), if it is a proper box: any box convention's answer
    (Qwen2.5-VL's JSON `bbox_2d`, a list of four numbers, "(x1,y1),(x2,y2)"; vlm_recipes.grounding.boxes.parse_box)."""
    return boxes.parse_box(text)


def box_iou(a, b) -> float:
    return boxes.box_iou(a, b)


def iou_reward(completions, bbox=None, solution=None, box_frame=None, image_size=None, **kwargs) -> list[float | None]:
    """IoU of the completion's first box with the reference box; 0.0 for no box, None for no reference.

    Grounding rows (vlm_recipes/grounding/data.py) carry `bbox` in pixels of the image with `image_size` and
    `box_frame`, the frame of the family's box convention (Qwen2.5-VL: pixels of the resized input; SmolVLM: a 0-100
    grid): the completion's box is taken back to pixels first. Without them, the completion and the `bbox` (or
    `solution`) column are taken to be in the same frame."""
    references = bbox if bbox is not None else solution
    references = references if references is not None else [None] * len(completions)
    frames = box_frame if box_frame is not None else [None] * len(completions)
    sizes = image_size if image_size is not None else [None] * len(completions)
    rewards = []
    for c, ref, frame, size in zip(completions, references, frames, sizes):
        gold = parse_box(ref) if ref is not None else None
        if gold is None:
            rewards.append(None)
            continue
        guess = parse_box(extract_answer(completion_text(c)))
        if guess is not None and frame is not None and size is not None:
            guess = boxes.BoxConvention.from_frame(guess, size, frame)
        rewards.append(box_iou(guess, gold) if guess else 0.0)
    return rewards


def length_penalty(completions, target_chars: int = 32, **kwargs) -> list[float | None]:
    """0 up to `target_chars` characters, then down linearly to -1 at twice that length (and below no further)."""
    return [-min(1.0, max(0, len(completion_text(c)) - target_chars) / target_chars) for c in completions]


REWARDS: dict[str, RewardFunc] = {
    "format": format_reward,
    "accuracy": accuracy_reward,
    "math_accuracy": math_accuracy_reward,
    "iou": iou_reward,
    "length_penalty": length_penalty,
}


def get_reward_funcs(names: list[str]) -> list[RewardFunc]:
    """The reward functions for `names`, failing fast (before any model is loaded) on an unknown one."""
    unknown = [n for n in names if n not in REWARDS]
    if unknown:
        raise ValueError(f"Unknown reward function(s) {unknown}; available: {sorted(REWARDS)}.")
    if not names:
        raise ValueError(f"Name at least one reward function (reward_funcs); available: {sorted(REWARDS)}.")
    return [REWARDS[n] for n in names]


def weighted_rewards(names: list[str], weights: list[float] | None, completions, columns: dict) -> list[float]:
    """Per-completion weighted sum of the named rewards, None counted as 0 (as TRL does)."""
    funcs = get_reward_funcs(names)
    weights = weights or [1.0] * len(funcs)
    totals = [0.0] * len(completions)
    for func, weight in zip(funcs, weights):
        for i, value in enumerate(func(completions, **columns)):
            totals[i] += weight * (value or 0.0)
    return totals

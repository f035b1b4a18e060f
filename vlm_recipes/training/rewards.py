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

RewardFunc = Callable[..., list[float | None]]

_FORMAT = re.compile(r"^\s*<think>.+?</think>\s*<answer>.+?</answer>\s*$", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_NUMBER = r"-?\d+(?:\.\d+)?"
_BOX = re.compile(rf"\[\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\]")


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
    """The first `[x1, y1, x2, y2]` in text (or a 4-number list), if it is a proper box."""
    if isinstance(text, (list, tuple)):
        box = tuple(float(v) for v in text) if len(text) == 4 else None
    else:
        match = _BOX.search(str(text))
        box = tuple(float(v) for v in match.groups()) if match else None
    if box is None or box[2] <= box[0] or box[3] <= box[1]:
        return None
    return box


def box_iou(a, b) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def iou_reward(completions, bbox=None, solution=None, **kwargs) -> list[float | None]:
    """IoU of the predicted box with the `bbox` (or `solution`) column; 0.0 for no box, None for no reference."""
    references = bbox if bbox is not None else solution
    references = references if references is not None else [None] * len(completions)
    rewards = []
    for c, ref in zip(completions, references):
        gold = parse_box(ref) if ref is not None else None
        if gold is None:
            rewards.append(None)
            continue
        guess = parse_box(extract_answer(completion_text(c)))
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

"""Reward functions for GRPO, chosen by name (and weight) in YAML.

Every reward has TRL's signature: `reward(completions, **columns) -> list[float | None]`, where `completions` are
strings or lists of assistant messages and `columns` are the dataset's columns (plus TRL's extras, ignored here).
`None` means "does not apply to this row" (e.g. no reference to compare with): TRL leaves it out of the sum.
A completion that cannot be parsed scores 0 (the model failed), never crashes the run.

What TRL lacks and this module adds: a registry that fails fast on unknown names, the final answer read from both
sides (the completion and the reference column, which may hold a whole reasoning trace such as
`<think>...</think><answer>A</answer>`), and rewards for VLM tasks: boxes (IoU, thresholded IoU, GIoU, the row's
box format), OCR answers (ANLS), chart answers (relaxed numeric accuracy), counts. Where a held-out metric measures
the same quantity the reward calls that metric's scoring function (`vlm_recipes.evaluation.metrics.scoring`:
`answer_match`, `anls`, `relaxed_accuracy`), so a reward and the figure it is judged by agree on every answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..evaluation.metrics.scoring import (
    anls_score,
    answer_match_score,
    final_answer_text,
    normalize_answer,
    normalize_vqa,
    relaxed_accuracy_score,
    to_number,
)
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


def _box_rewards(completions, score, missing, bbox, solution, box_frame, image_size) -> list[float | None]:
    """`score(answer box, reference box)` per completion, both in pixels; `missing` for an answer without a box, None
    for a row without a reference box.

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
        rewards.append(score(guess, gold) if guess else missing)
    return rewards


def iou_reward(completions, bbox=None, solution=None, box_frame=None, image_size=None, **kwargs) -> list[float | None]:
    """IoU of the completion's first box with the reference box (`bbox`, else `solution`; frames: `_box_rewards`);
    0.0 for no box, None for no reference.

    Dense, but it pays a hedge: a box stretched over the right grid cell and a wrong one scores ~0.4 where a box in
    the wrong cell scores 0, so a policy unsure between two places learns to cover both."""
    return _box_rewards(completions, box_iou, 0.0, bbox, solution, box_frame, image_size)


IOU_THRESHOLD = 0.5  # RefCOCO's Acc@0.5, the `iou_accuracy` metric's threshold


def thresholded_iou_reward(
    completions, bbox=None, solution=None, box_frame=None, image_size=None, **kwargs
) -> list[float | None]:
    """IoU when it reaches 0.5 (`IOU_THRESHOLD`), else 0.0 (also for no box); None for no reference.

    A box that covers the object and as much again (a hedge over two cells: IoU <= 0.5) earns what a wrong box earns,
    nothing; above the threshold it stays dense, so a tighter right box still earns more."""

    def score(guess, gold) -> float:
        iou = box_iou(guess, gold)
        return iou if iou >= IOU_THRESHOLD else 0.0

    return _box_rewards(completions, score, 0.0, bbox, solution, box_frame, image_size)


def giou_reward(
    completions, bbox=None, solution=None, box_frame=None, image_size=None, **kwargs
) -> list[float | None]:
    """Generalized IoU of the completion's first box with the reference box (vlm_recipes.grounding.boxes.box_giou, in
    [-1, 1]); -1.0 (its minimum) for no box, so that answering without a box never beats a wrong box; None for no
    reference. Unlike IoU it ranks boxes that miss by how far they miss; like IoU it pays a hedge that covers the
    object (a two-cell box scores its IoU, ~0.4, a same-size box next to it below 0)."""
    return _box_rewards(completions, boxes.box_giou, -1.0, bbox, solution, box_frame, image_size)


def box_format_reward(completions, box_format=None, box_frame=None, **kwargs) -> list[float | None]:
    """1.0 when the whole completion is a box answer in its row's convention (`box_format`, e.g. SmolVLM's
    `[x1, y1, x2, y2]` on a 0-100 grid, Qwen2.5-VL's JSON `bbox_2d` list inside the row's `box_frame`, Qwen2-VL's
    `<|box_start|>(x1,y1),(x2,y2)<|box_end|>` on [0, 1000); `BoxConvention.is_answer`), else 0.0; None for rows
    without a convention (not grounding rows)."""
    formats = box_format if box_format is not None else [None] * len(completions)
    frames = box_frame if box_frame is not None else [None] * len(completions)
    return [
        None if name is None else float(boxes.get_convention(name).is_answer(completion_text(c), frame))
        for c, name, frame in zip(completions, formats, frames)
    ]


def _reference_texts(value) -> list[str] | None:
    """The accepted answers of a row: a string, a list of strings (DocVQA's `answers`), or VQA-style
    [{"answer": ...}, ...]; None when there is none."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    texts = [v["answer"] if isinstance(v, dict) else str(v) for v in value]
    return texts or None


def _answer_rewards(completions, score, answers, answer) -> list[float | None]:
    """`score(final answer of the completion, accepted answers)` per row: `answers` (all accepted answers, as DocVQA
    stores them) where the data has it, else `answer` (the trained answer); None for a row without either."""
    references = answers if answers is not None else answer
    references = references if references is not None else [None] * len(completions)
    rewards = []
    for c, ref in zip(completions, references):
        texts = _reference_texts(ref)
        rewards.append(None if texts is None else score(final_answer_text(completion_text(c)), texts))
    return rewards


def anls_reward(completions, answers=None, answer=None, **kwargs) -> list[float | None]:
    """ANLS of the completion's final answer against the row's accepted answers (`answers`, else `answer`): the `anls`
    metric's per-sample score (`scoring.anls_score`: the best over references of 1 - edit distance / longer length,
    0 where that distance is 0.5 or more; case and spacing ignored). None without a reference."""
    return _answer_rewards(completions, anls_score, answers, answer)


def relaxed_accuracy_reward(completions, answers=None, answer=None, **kwargs) -> list[float | None]:
    """ChartQA's relaxed accuracy of the completion's final answer against `answers` (else `answer`): the
    `relaxed_accuracy` metric's per-sample score (`scoring.relaxed_accuracy_score`): a number within 5% of a numeric
    reference is right, "45%" is 0.45 (as in lmms-eval's chartqa), anything else must match after normalisation.
    None without a reference."""
    return _answer_rewards(completions, relaxed_accuracy_score, answers, answer)


def _numbers_stated(text: str) -> list[float]:
    """The numbers a short answer states: numerals ('3', '1,000', '2.5') and number words zero to ten (the VQA
    normalisation's)."""
    numbers = []
    for word in text.split():
        word = word.strip(".,;:!?()[]{}\"'")
        value = to_number(word) if word else None
        if value is None and word:
            spelled = normalize_vqa(word)
            value = float(spelled) if spelled.isdigit() else None
        if value is not None:
            numbers.append(value)
    return numbers


def count_reward(completions, answer=None, **kwargs) -> list[float | None]:
    """1.0 when the completion's final answer states exactly one number and it is the row's count (`answer`: an
    integer, or text such as "3" or "three"), else 0.0: "3", "three", "There are 3 circles." score 1 for a count of 3;
    "2 or 3" and "3.5" score 0. None without a reference; a reference that is not a whole number is an error (the data
    is wrong, not the model)."""
    references = answer if answer is not None else [None] * len(completions)
    rewards = []
    for c, ref in zip(completions, references):
        if ref is None:
            rewards.append(None)
            continue
        gold = _numbers_stated(str(ref))
        if len(gold) != 1 or not float(gold[0]).is_integer():
            raise ValueError(f"count reward: reference {ref!r} is not a whole number; fix the row's `answer`.")
        stated = _numbers_stated(final_answer_text(completion_text(c)))
        rewards.append(float(len(stated) == 1 and stated[0] == gold[0]))
    return rewards


def length_penalty(completions, target_chars: int = 32, **kwargs) -> list[float | None]:
    """0 up to `target_chars` characters, then down linearly to -1 at twice that length (and below no further)."""
    return [-min(1.0, max(0, len(completion_text(c)) - target_chars) / target_chars) for c in completions]


REWARDS: dict[str, RewardFunc] = {
    "format": format_reward,
    "accuracy": accuracy_reward,
    "math_accuracy": math_accuracy_reward,
    "iou": iou_reward,
    "thresholded_iou": thresholded_iou_reward,
    "giou": giou_reward,
    "box_format": box_format_reward,
    "anls": anls_reward,
    "relaxed_accuracy": relaxed_accuracy_reward,
    "count": count_reward,
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

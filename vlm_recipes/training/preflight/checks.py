"""Preflight's row checker (`check_split`, `check_recipe_data`) and the start-up check of every recipe (`guard`).

Rows go through the method's own collator (vlm_recipes.data.collation), untruncated, so that each is rendered and
expanded exactly as training does; images are opened and measured first, videos opened and sampled; the collators'
truncation rule (`data.collators.overflow`) is then applied sequence by sequence, to report what it would do.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import torch
from datasets import Dataset
from PIL import Image

from ...data.chat_encoding import ChatEncoder
from ...data.collation import PromptCollator, build_collator
from ...data.collators import SampleError, _row_name, conversation_of, overflow
from ...data.images import ImageError, open_image, undecoded
from ...data.video import videos_of
from ...models.families import family_of
from ..methods import get_method
from ..planning.shapes import row_shape
from .report import ID_COLUMNS, PreflightError, Report, RowProblem, defect_summary

logger = logging.getLogger(__name__)


def _texts(messages) -> list[str]:
    """The text of every message (string content or text parts); anything malformed is left to the collator."""
    out = []
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        parts = content if isinstance(content, list) else [{"text": content}]
        out += [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return out


def _sample(n: int, num_rows: int | None, seed: int) -> list[int]:
    if num_rows is None or num_rows >= n:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), num_rows))


@dataclass
class _Recorder:
    """Records a problem of one row into a report: `recorder(kind, message)`."""

    report: Report
    name: str
    id_column: str
    id_value: object

    def __call__(self, kind: str, message: str) -> None:
        message = message if message.startswith(self.name) else f"{self.name}: {message}"
        self.report.errors.append(RowProblem(self.name, self.id_column, self.id_value, kind, message))


def check_split(
    method,
    ds: Dataset,
    processor,
    *,
    split: str = "train",
    max_length: int | None = None,
    max_image_pixels: int | None = None,
    on_overflow: str = "error",
    num_rows: int | None = None,
    seed: int = 0,
    video: dict | None = None,
) -> Report:
    """Check `num_rows` random rows of `ds` (None: all) for training `method` (a name or a Method record): the rows
    go through the method's own collator (the prompt collator where the trainer renders prompts itself). Videos are
    opened and sampled with `video` (`load_video`'s settings): frames per video and video tokens per row are
    reported; a missing or undecodable video is a bad row."""
    method = get_method(method)
    report = Report(split=split, rows_total=len(ds))
    raw = undecoded(ds)
    image_ids = torch.tensor(family_of(processor).image_token_ids(processor.tokenizer))
    key = method.prompt_key
    # The method's own collator (untruncated: the truncation rule is applied below, row by row, to report it), or the
    # prompt collator where the trainer renders prompts itself; prompts it renders are not cut to max_length by us.
    collator = build_collator(
        PromptCollator if method.renders_prompts else method.collator_class, processor, messages_key=key, video=video
    )
    encoder = ChatEncoder(processor)
    checks_length = not method.renders_prompts
    for index in _sample(len(raw), num_rows, seed):
        row = dict(raw[index])
        if not set(ID_COLUMNS) & row.keys():
            row["row_id"] = f"{split}[{index}]"
        name = _row_name(row, index)
        id_column = next((c for c in ID_COLUMNS if row.get(c) is not None), "row_id")
        report.checked_ids.append((id_column, row.get(id_column)))
        report.rows_checked += 1
        problem = _Recorder(report, name, id_column, row.get(id_column))
        try:
            values = row.pop("images", None) or ([row.pop("image")] if row.get("image") is not None else [])
            images = []
            for value in values:
                image = open_image(value, max_image_pixels)
                report.modes[image.mode] += 1
                if image.mode != "RGB":
                    report.converted[image.mode] += 1
                report.sizes.append(image.size)
                report.pixels.append(image.width * image.height)
                images.append(image)
            row["images"] = images
            # roles, parts, placeholders vs images and videos, emptiness; videos opened and sampled
            conversation = conversation_of(row, index, key, video=video)
            videos = videos_of(conversation)
            if videos and method.renders_prompts:
                raise SampleError(
                    f"{name} holds a video, but {method.name.upper()}'s trainer renders and processes prompts itself "
                    "and takes no videos: train video data with sft, dpo or mpo.",
                    "video unsupported",
                )
            if videos:
                report.video_frames += [len(v) for v in videos]
                report.video_tokens.append(sum(encoder.video_token_counts(videos)))
            responses = [m for side in ("chosen", "rejected") for m in row.get(side) or []]
            for text in _texts(conversation + responses):
                report.control_text.update(encoder.control_strings(text))
            batch = collator([row])
        except (SampleError, ImageError) as err:
            problem(err.kind, str(err))
            continue
        # A preference row is two sequences (prompt + chosen, prompt + rejected): check both.
        if "labels" in batch:
            trained = batch["labels"] != -100
        else:
            trained = batch["completion_mask"].bool() if "completion_mask" in batch else None
        report.row_tokens.append(int(batch["attention_mask"].sum()))
        report.shapes.append(row_shape(batch))
        for r in range(batch["input_ids"].shape[0]):
            attention = batch["attention_mask"][r]
            ids = batch["input_ids"][r][attention.bool()]
            is_image = torch.isin(batch["input_ids"][r], image_ids)
            report.tokens.append(len(ids))
            report.image_tokens.append(int(is_image.sum()))
            if max_length is None or len(ids) <= max_length or not checks_length:
                continue
            reason = overflow(is_image, attention, None if trained is None else trained[r], max_length)
            if reason is None:
                report.truncated.append(name)
            elif on_overflow == "drop":
                report.dropped.append(name)
            else:
                fix = (
                    "lower the image resolution (max_pixels / longest_edge / image_splitting)"
                    if "image tokens" in reason
                    else "shorten the prompt"
                )
                problem("over max_length", f"{reason}; raise max_length, {fix}, or set on_overflow: drop")
                break
    return report


def check_recipe_data(method, train_ds, eval_ds, processor, data_args, max_length, num_rows, seed=0):
    """Check both splits; returns their reports."""
    common = {
        "max_length": max_length,
        "max_image_pixels": data_args.max_image_pixels,
        "on_overflow": data_args.on_overflow,
        "num_rows": num_rows,
        "video": data_args.video_settings,
    }
    return [
        check_split(method, train_ds, processor, split="train", seed=seed, **common),
        check_split(method, eval_ds, processor, split="held-out", seed=seed, **common),
    ]


def guard(method, train_ds, eval_ds, processor, data_args, training_args) -> list[Report]:
    """The start-up check of every recipe: raise a one-line PreflightError naming the first bad row."""
    Image.MAX_IMAGE_PIXELS = data_args.max_image_pixels  # PIL's own decompression-bomb guard (refuses at 2x)
    if not data_args.preflight:
        return []
    max_length = getattr(training_args, "max_length", None)
    reports = check_recipe_data(
        method, train_ds, eval_ds, processor, data_args, max_length, data_args.preflight_num_rows, training_args.seed
    )
    for report in reports:
        logger.info("Preflight:\n%s", report.text(max_length))
    errors = [e for r in reports for e in r.errors]
    if errors:
        more = f" (+{len(errors) - 1} more row(s) with errors: {defect_summary(errors)})" if len(errors) > 1 else ""
        raise PreflightError(
            f"Preflight: {str(errors[0]).rstrip('.')}{more}. Full report: make preflight CONFIG=<your yaml>; "
            "skip with --preflight false."
        )
    return reports

"""Preflight's findings: one `RowProblem` per bad row, a `Report` per split with its figures, and how both read."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field


class PreflightError(ValueError):
    """Rows that would fail training; the message names the first one and the fix."""


ID_COLUMNS = ("row_id", "id", "idx")  # how rows are named in errors, in this order (see collators._row_name)


@dataclass
class RowProblem:
    """One bad row: its name in messages, the column and value that identify it, the kind of defect, the message
    (which names the row and says how to fix it)."""

    row: str
    id_column: str
    id_value: object
    kind: str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass
class Report:
    """What the checks found in one split."""

    split: str
    rows_total: int
    rows_checked: int = 0
    errors: list[RowProblem] = field(default_factory=list)
    checked_ids: list = field(default_factory=list)  # (id column, id value) of every checked row
    truncated: list[str] = field(default_factory=list)  # text cut by max_length (allowed, reported)
    control_text: Counter = field(default_factory=Counter)  # control-token strings found in message text, by string
    dropped: list[str] = field(default_factory=list)  # would be dropped (on_overflow: drop)
    modes: Counter = field(default_factory=Counter)
    converted: Counter = field(default_factory=Counter)
    pixels: list[int] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)  # per sequence (a preference row has two)
    row_tokens: list[int] = field(default_factory=list)  # per row
    image_tokens: list[int] = field(default_factory=list)
    video_frames: list[int] = field(default_factory=list)  # per video, after sampling
    video_tokens: list[int] = field(default_factory=list)  # per row with videos: tokens of its videos
    shapes: list = field(default_factory=list)  # per encoded row: what its memory depends on (training.planning)

    def text(self, max_length: int | None) -> str:
        def spread(values):
            if not values:
                return "n/a"
            return f"min {min(values)} / median {statistics.median(values):g} / max {max(values)}"

        lines = [f"[{self.split}] {self.rows_checked} of {self.rows_total} rows checked"]
        if self.sizes:
            small = min(self.sizes, key=lambda s: s[0] * s[1])
            big = max(self.sizes, key=lambda s: s[0] * s[1])
            lines.append(
                f"  images: {len(self.sizes)}, modes {dict(self.modes)}, smallest {small[0]}x{small[1]}, "
                f"largest {big[0]}x{big[1]}, median {statistics.median(self.pixels):,.0f} pixels"
            )
        if self.converted:
            lines.append(f"  converted to RGB: {dict(self.converted)}")
        if self.control_text:
            lines.append(
                f"  control-token strings in message text (trained and generated as plain text): "
                f"{dict(self.control_text.most_common(5))}"
            )
        if self.video_frames:
            lines.append(
                f"  videos: {len(self.video_frames)}, frames per video: {spread(self.video_frames)}; video tokens "
                f"per row with videos: {spread(self.video_tokens)}"
            )
        lines.append(
            f"  tokens per sample: {spread(self.tokens)}; image tokens per sample: {spread(self.image_tokens)}"
        )
        if max_length is not None:
            over = sum(t > max_length for t in self.tokens)
            dropped = f", {len(self.dropped)} to be dropped (on_overflow: drop)" if self.dropped else ""
            lines.append(
                f"  over max_length={max_length}: {over} sequence(s), {len(self.truncated)} with only text cut"
                + dropped
            )
        if self.row_tokens and self.split == "train":
            estimate = statistics.fmean(self.row_tokens) * self.rows_total
            lines.append(f"  estimated tokens per epoch: {estimate:,.0f} ({self.rows_total} rows x mean)")
        if self.errors:
            lines.append(f"  {len(self.errors)} bad row(s): {defect_summary(self.errors)}")
        lines += [f"  ERROR {e}" for e in self.errors]
        return "\n".join(lines)


def defect_summary(problems: list[RowProblem]) -> str:
    """'missing image file 2, unknown role 1': bad rows counted by kind of defect, most frequent first."""
    return ", ".join(f"{kind} {n}" for kind, n in Counter(p.kind for p in problems).most_common())

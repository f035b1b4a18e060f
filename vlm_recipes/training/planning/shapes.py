"""The shape of each data row as the collator makes it, and the longest batch the sampler can form from them.

Preflight already encodes every row exactly as training does (rendering, image processing, placeholder expansion);
`row_shape` keeps from that batch what memory depends on: tokens per sequence, trained (label) tokens, and what goes
through the vision tower. `longest_batch` then forms the batch of the largest memory the batching mode allows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .memory import Architecture, BatchShape


@dataclass(frozen=True)
class RowShape:
    """One row as collated: `tokens` per sequence (two for a preference row: prompt + chosen, prompt + rejected),
    `labels` trained positions (all sequences), `pixel_elements` of its pixel input; what enters the vision tower,
    as `grid_patches` (Qwen2-VL: patches of every image's grid) or `tiles` images / tiles of `tile_pixels`
    (height x width) each."""

    tokens: tuple[int, ...]
    labels: int
    pixel_elements: int = 0
    grid_patches: int = 0
    tiles: int = 0
    tile_pixels: tuple[int, int] = (0, 0)

    def patches(self, arch: Architecture) -> int:
        v = arch.vision
        if self.grid_patches:
            return self.grid_patches
        h, w = self.tile_pixels
        return self.tiles * ((h // v.patch_size) * (w // v.patch_size) + int(v.class_token))


def row_shape(batch: dict) -> RowShape:
    """The shape of a one-row batch from the method's collator (SFT: one sequence; DPO / MPO: two)."""
    mask = batch["attention_mask"].bool()
    tokens = tuple(int(n) for n in mask.sum(dim=1))
    if "labels" in batch:
        labels = int((batch["labels"][:, 1:] != -100).sum())
    elif "completion_mask" in batch:
        labels = int(batch["completion_mask"][:, 1:].sum())
    else:
        labels = 0
    pixels = batch.get("pixel_values")
    if pixels is None:
        return RowShape(tokens, labels)
    if "image_grid_thw" in batch:
        return RowShape(tokens, labels, pixels.numel(), grid_patches=int(batch["image_grid_thw"].prod(dim=1).sum()))
    if pixels.dim() == 5:  # (rows, tiles, C, H, W), zero-padded tiles (SmolVLM) or anyres tiles (LLaVA-OneVision)
        real = int((~(pixels == 0).flatten(2).all(dim=-1)).sum())
        return RowShape(tokens, labels, pixels.numel(), tiles=real, tile_pixels=tuple(pixels.shape[-2:]))
    return RowShape(tokens, labels, pixels.numel(), tiles=pixels.shape[0], tile_pixels=tuple(pixels.shape[-2:]))


def _top(values: list[int], k: int) -> int:
    return sum(sorted(values, reverse=True)[:k])


def longest_batch(
    rows: list[RowShape],
    arch: Architecture,
    batch_size: int,
    mode: str = "padded",
    max_length: int | None = None,
) -> BatchShape:
    """The batch of `batch_size` rows with the most memory that `mode` can form: padded / length-grouped batches pad
    every sequence to the longest row (the longest rows can meet in one batch); padding-free batches concatenate the
    longest rows; packed batches hold `batch_size` sequences of up to `max_length` tokens. Labels, patches and pixels
    are those of the rows with the most of each (an upper bound: they need not be the same rows)."""
    if not rows:
        raise ValueError("No rows to size a batch from.")

    def cut(n: int) -> int:
        return min(n, max_length) if max_length else n

    per_row = len(rows[0].tokens)  # 2 for preference rows
    k = min(batch_size, len(rows)) if mode != "packed" else batch_size
    labels = _top([r.labels for r in rows], k)
    patches = _top([r.patches(arch) for r in rows], k)
    pixels = _top([r.pixel_elements for r in rows], k)
    if mode == "packed":
        if max_length is None:
            raise ValueError("packing needs max_length.")
        length = batch_size * max_length
        share = length / max(sum(sum(r.tokens) for r in rows) / len(rows), 1)  # rows that fit, on average
        mean = lambda f: sum(f(r) for r in rows) / len(rows)  # noqa: E731
        return BatchShape(
            1,
            length,
            int(mean(lambda r: r.labels) * share),
            int(mean(lambda r: r.patches(arch)) * share),
            int(mean(lambda r: r.pixel_elements) * share),
            masked=False,
        )
    if mode == "padding-free":
        length = _top([cut(t) for r in rows for t in r.tokens], k * per_row)
        return BatchShape(1, length, labels, patches, pixels, masked=False)
    length = max(cut(t) for r in rows for t in r.tokens)
    sequences = k * per_row
    return BatchShape(sequences, length, labels, patches, pixels, masked=sequences > 1)


def shapes_of(collator, rows: list[dict]) -> list[RowShape]:
    """Each row's shape under `collator` (rows one at a time, as preflight encodes them)."""
    with torch.no_grad():
        return [row_shape(collator([row])) for row in rows]


def trainer_shapes(trainer, rows) -> list[RowShape]:
    """Shapes of `rows` under the trainer's own collator (padding-free: the padded collator of the same rows, whose
    shapes `longest_batch` concatenates)."""
    from ...data.collators import VisionChatCollator
    from ...data.packing import PaddingFreeCollator

    collator = trainer.data_collator
    if isinstance(collator, PaddingFreeCollator):
        collator = VisionChatCollator(collator.processor, max_length=collator.max_length)
    return shapes_of(collator, [dict(r) for r in rows])

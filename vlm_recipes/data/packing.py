"""Padding-free and packed batches for both model families: rows concatenated into one sequence, no padding.

What the libraries already do: transformers 5.23 turns `position_ids` that restart at 0 into a block-diagonal
causal mask for SDPA, eager and flex attention (`masking_utils.find_packed_sequence_indices`, only when
`attention_mask` is None), and its FlashAttention-2 / `kernels` paths read the same restarts as varlen boundaries
(only for a batch of one row). TRL's `DataCollatorForLanguageModeling(padding_free=True)` flattens text rows that way
and its `pack_dataset` bin-packs tokenized text; TRL 1.16 refuses both for image data, and its padding-free path
excludes Qwen2-VL's 3-D positions.

What this module adds, on top of `VisionChatCollator`'s per-row outputs (same rendering, labels, image inputs and
truncation guard; the padded collator itself is untouched):

- `PaddingFreeCollator`: the rows of a batch concatenated into one sequence of shape (1, total tokens): no attention
  mask, `position_ids` restarting at every row, the first label of every row -100 (no row learns to predict the
  next row's first token). SmolVLM / Idefics3: 1-D positions, and the image tiles of all rows in row order as one
  image batch. Qwen2-VL / Qwen2.5-VL: position ids of shape (4, 1, L): row 0 the text positions 0..n-1 of each row
  (what transformers reads to find the rows), rows 1-3 the M-RoPE (temporal, height, width) positions computed per
  row from that row's own `image_grid_thw`, exactly as the model's `get_rope_index` computes them for the row alone.
- `pack_rows`: best-fit-decreasing bins of whole rows of at most `max_length` tokens (a row is never split, so image
  tokens are never cut), from row lengths counted with image tokens; `PackedRows` is the dataset of those bins the
  trainer iterates, and `PaddingFreeCollator` flattens a batch of bins the same way.

>>> pack_rows([5, 3, 4, 2, 6], capacity=8)
[[4, 3], [0, 1], [2]]
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass

import torch

from ..models.families import FAMILIES, family_of
from .collators import SampleError, VisionChatCollator, _row_name

# Key under which an item of `PackedRows` carries its rows.
PACKED_ROWS = "packed_rows"


# -- bins -----------------------------------------------------------------------------------------------------------
def pack_rows(lengths: list[int], capacity: int) -> list[list[int]]:
    """Best-fit decreasing: row indices grouped into bins whose lengths sum to at most `capacity`.

    Rows are placed longest first, each into the fullest bin that still has room for it (a new bin when none has).
    A row longer than `capacity` counts as `capacity` (the collator's truncation guard cuts its text to `max_length`,
    or refuses it) and fills a bin alone. Deterministic: ties keep row order. Each bin lists its rows in placement
    order; bins are listed in the order they were opened.

    >>> pack_rows([3, 3, 3], capacity=6)
    [[0, 1], [2]]
    """
    if capacity < 1:
        raise ValueError(f"capacity must be positive, got {capacity}.")
    order = sorted(range(len(lengths)), key=lambda i: (-min(lengths[i], capacity), i))
    bins: list[list[int]] = []
    # Bins with room left, by room: at most capacity + 1 distinct keys, so the bisect list stays short.
    rooms: list[int] = []  # sorted distinct room values that have at least one bin
    by_room: dict[int, list[int]] = {}  # room -> bin ids (oldest first)
    for i in order:
        size = max(min(lengths[i], capacity), 0)
        k = bisect.bisect_left(rooms, size)
        if k < len(rooms):
            room = rooms[k]
            b = by_room[room].pop(0)
            if not by_room[room]:
                del by_room[room]
                rooms.pop(k)
        else:
            b, room = len(bins), capacity
            bins.append([])
        bins[b].append(i)
        left = room - size
        if left > 0:
            if left not in by_room:
                bisect.insort(rooms, left)
                by_room[left] = []
            by_room[left].append(b)
    return bins


def fill_ratio(lengths: list[int], bins: list[list[int]], capacity: int) -> float:
    """Tokens held by the bins over their capacity (1.0: every bin full)."""
    if not bins:
        return 0.0
    return sum(min(lengths[i], capacity) for b in bins for i in b) / (len(bins) * capacity)


class PackedRows(torch.utils.data.Dataset):
    """The bins of `pack_rows` as a dataset: item `i` is `{"packed_rows": [row, ...]}`, the rows of bin `i`, read
    from `rows` (undecoded images are decoded later, by the collator)."""

    def __init__(self, rows, bins: list[list[int]]):
        self.rows, self.bins = rows, bins

    def __len__(self) -> int:
        return len(self.bins)

    def __getitem__(self, i: int) -> dict:
        return {PACKED_ROWS: [dict(self.rows[j]) for j in self.bins[i]]}


# -- the collator -----------------------------------------------------------------------------------------------------
def check_family(processor) -> None:
    """Refuse a model family whose padding-free batches are not proven exact (`Family.packing_exact`: per-row losses
    and gradients tested equal to the rows run one at a time), naming it, the reason and the fix."""
    family = family_of(processor)
    if not family.packing_exact:
        labels = [f.label for f in FAMILIES if f.packing_exact]
        exact = " and ".join(labels) if len(labels) < 3 else ", ".join(labels[:-1]) + " and " + labels[-1]
        why = f" ({family.packing_refusal})" if family.packing_refusal else ""
        raise ValueError(
            f"padding_free / packing are implemented for {exact} only (exact per-row losses and gradients, tested); "
            f"not for the {family.label} family of this checkpoint{why}: remove them (padded or "
            "train_sampling_strategy: group_by_length batches work for every family)."
        )


@dataclass
class PaddingFreeCollator(VisionChatCollator):
    """Collate rows (or bins of `PackedRows`) into ONE padding-free sequence.

    Input: examples as for `VisionChatCollator`, or items `{"packed_rows": [example, ...]}` (a packed batch: the
    rows of all its bins, in order).
    Output: `input_ids` and `labels` of shape (1, L), L the sum of the rows' lengths (each row truncated exactly as
    the padded collator truncates it); `position_ids` restarting at 0 at every row, of shape (1, L) for SmolVLM and
    (4, 1, L) for Qwen2-VL (text positions, then the per-row M-RoPE positions); no `attention_mask` (transformers
    builds the per-row causal mask from the position ids); the image inputs of all rows in row order
    (`pixel_values` (1, tiles, C, H, W) and `pixel_attention_mask` for SmolVLM; `pixel_values`, `image_grid_thw`
    and `mm_token_type_ids` for Qwen2-VL); `use_cache=False` (with a cache transformers does not look for the rows).
    Labels are those of the padded collator, plus -100 on the first token of every row. With `pad_to_multiple_of`,
    the sequence ends in pad tokens that form a segment of their own (labels -100).

    Example: rows of 3 and 2 tokens give position_ids [[0, 1, 2, 0, 1]] and labels [-100, a, b, -100, c].
    """

    # A video's temporal positions per second (Family.video_time_scale of the model's config), set by the training run
    # once the model is loaded (vlm_recipes.training.batching.plan); None: video rows are refused.
    video_time_scale: float | None = None

    def __post_init__(self):
        if self.padding_side != "right":
            raise ValueError(
                "A padding-free batch has no padding to place: remove padding_side (or set it to 'right')."
            )
        if self.image_processing == "device":
            raise ValueError(
                "image_processing: device is not implemented with padding_free / packing (the device stage lays out "
                "the images of a padded batch): use image_processing: worker (the same batches, bit for bit) or "
                "processor."
            )
        super().__post_init__()
        check_family(self.processor)
        self.positions = self.family.packed_positions
        if self.positions is not None:
            self.merge_size = self.processor.image_processor.merge_size
            self.image_token_id = self.processor.tokenizer.convert_tokens_to_ids(self.processor.image_token)

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        if examples and PACKED_ROWS in examples[0]:
            examples = [row for item in examples for row in item[PACKED_ROWS]]
        for i, ex in enumerate(examples):
            if not (ex.get("videos") or ex.get("video") is not None):
                continue
            if self.family.video_time_scale is None:
                # Not proven exact: e.g. Qwen2-VL's video M-RoPE positions are not rebuilt per row here.
                raise SampleError(
                    f"{_row_name(ex, i)} holds a video: packing / padding_free do not take videos for "
                    f"{self.family.label} yet; train video data with packing: false and padding_free: false.",
                    "video with packing",
                )
            if self.video_time_scale is None:
                raise SampleError(
                    f"{_row_name(ex, i)} holds a video: its positions in a padding-free batch need the model's "
                    "video time scale (e.g. tokens_per_second), which this collator was not given (the training run "
                    "sets it once the model is loaded); or train video data with packing: false and padding_free: "
                    "false.",
                    "video with packing",
                )
        return super().__call__(examples)

    def _pad(self, batch) -> dict[str, torch.Tensor]:
        # Called by `collate` on the right-padded, truncated batch: the real tokens of row i are its first n_i.
        return flatten_rows(batch, self)


def flatten_rows(batch: dict, collator: PaddingFreeCollator) -> dict[str, torch.Tensor]:
    """A right-padded batch of rows as one padding-free sequence (see `PaddingFreeCollator`)."""
    lengths = batch.pop("attention_mask").sum(dim=1).tolist()
    out = {}
    for key in ("input_ids", "labels", "token_type_ids", "mm_token_type_ids"):
        if key in batch:
            out[key] = torch.cat([row[:n] for row, n in zip(batch.pop(key), lengths)])[None]
    starts = [0, *itertools.accumulate(lengths)][:-1]
    out["labels"][0, starts] = -100  # no row is trained to predict the next row's first token
    text = torch.cat([torch.arange(n) for n in lengths]) if lengths else torch.zeros(0, dtype=torch.long)
    if collator.positions is not None:
        out["position_ids"] = torch.cat([text[None], _positions_of_rows(out, batch, lengths, collator)])[:, None]
    else:
        out["position_ids"] = text[None]
    if "pixel_values" in batch and batch["pixel_values"].dim() == 5:  # SmolVLM: (rows, tiles, C, H, W), zero-padded
        pixels = batch.pop("pixel_values")
        real = ~(pixels == 0).flatten(2).all(dim=-1)  # the model's own rule for padding tiles
        out["pixel_values"] = pixels[real][None]
        if "pixel_attention_mask" in batch:
            out["pixel_attention_mask"] = batch.pop("pixel_attention_mask")[real][None]
    out.update(batch)  # Qwen2-VL's pixel_values / image_grid_thw are already one flat batch, in row order
    if collator.pad_to_multiple_of:
        _pad_tail(out, collator.pad_to_multiple_of, collator.pad_token_id)
    # With a KV cache (use_cache defaults to the config's True) transformers skips the packed-sequence detection and
    # the rows would attend to each other: a padding-free batch is a training batch, without cache.
    out["use_cache"] = False
    return out


def _positions_of_rows(out: dict, batch: dict, lengths: list[int], collator: PaddingFreeCollator) -> torch.Tensor:
    """(3, L): each row's positions (the family's `packed_positions`, e.g. Qwen2-VL's M-RoPE) from its own image
    grids, concatenated."""
    ids = out["input_ids"][0]
    types = out["mm_token_type_ids"][0] if "mm_token_type_ids" in out else (ids == collator.image_token_id).long()
    empty = torch.zeros(0, 3, dtype=torch.long)
    grids = {1: iter(batch.get("image_grid_thw", empty)), 2: iter(batch.get("video_grid_thw", empty))}
    seconds = iter(batch.get("second_per_grid_ts", ()))  # per video, in row order (Qwen2.5-VL)
    parts, start = [], 0
    for n in lengths:
        row_types = types[start : start + n].tolist()
        kinds = [kind for kind, _ in itertools.groupby(row_types) if kind != 0]  # 1 image, 2 video
        row_grids = [next(grids[kind]) for kind in kinds]
        if 2 in kinds:  # the model's own arithmetic: tokens_per_second x second_per_grid_ts, a float32 tensor
            steps = [collator.video_time_scale * next(seconds) if kind == 2 else 1 for kind in kinds]
            parts.append(collator.positions(row_types, row_grids, collator.merge_size, time_steps=steps))
        else:
            parts.append(collator.positions(row_types, row_grids, collator.merge_size))
        start += n
    return torch.cat(parts, dim=1) if parts else torch.zeros(3, 0, dtype=torch.long)


def _pad_tail(out: dict, multiple: int, pad_token_id: int) -> None:
    """Pad the sequence to a multiple with pad tokens that form their own segment (positions 0.., labels -100)."""
    extra = -out["input_ids"].shape[1] % multiple
    if not extra:
        return
    fill = {"input_ids": pad_token_id, "labels": -100}
    for key in ("input_ids", "labels", "token_type_ids", "mm_token_type_ids"):
        if key in out:
            out[key] = torch.nn.functional.pad(out[key], (0, extra), value=fill.get(key, 0))
    tail = torch.arange(extra).expand(*out["position_ids"].shape[:-1], extra)
    out["position_ids"] = torch.cat([out["position_ids"], tail], dim=-1)

"""How training rows become batches: padded (the default), length-grouped, padding-free or packed.

transformers' Trainer samples rows (`train_sampling_strategy`: random, sequential, or `group_by_length` over a
column of lengths) and TRL's SFT trainer flattens (`padding_free`) or bin-packs (`packing`) tokenized text. For image
data TRL 1.16 refuses both, and the length grouper finds no lengths in rows that are tokenized on the fly. What this
module adds, chosen by the same TRL / Trainer fields:

- `train_sampling_strategy: group_by_length`: every row's length (image tokens included) is counted once with the
  method's collator (`lengths.count_lengths`, cached) and written to the `length_column_name` column (default
  `length`), which transformers' `LengthGroupedSampler` reads: batches of rows of similar length, so padded training
  wastes little. A column of that name already in the data is taken as its own precomputed lengths.
- `padding_free: true` (SFT): each batch is one sequence without padding (`data.packing.PaddingFreeCollator`).
- `packing: true` (SFT, `packing_strategy: bfd`): rows are bin-packed, whole, into sequences of at most `max_length`
  tokens (`data.packing.pack_rows`); the trainer iterates those sequences (`per_device_train_batch_size` of them per
  batch, flattened padding-free), and the run reports their fill ratio.

DPO / MPO cannot go padding-free: TRL 1.16's DPOTrainer computes each sequence's log-probability from padded rows
(its own `padding_free` falls back to padding); `bypassed.py` refuses it there, naming the reason.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..data.collation import build_collator
from ..data.images import undecoded
from ..data.packing import PackedRows, PaddingFreeCollator, fill_ratio, pack_rows
from .lengths import count_lengths

logger = logging.getLogger(__name__)

GROUP_BY_LENGTH = "group_by_length"


def mode_of(args) -> str:
    """The batching mode the training arguments ask for."""
    if getattr(args, "packing", False):
        return "packed"
    if getattr(args, "padding_free", False):
        return "padding-free"
    if args.train_sampling_strategy == GROUP_BY_LENGTH:
        return "length-grouped"
    return "padded"


def check(method, data_args, args) -> None:
    """Refuse combinations the batching modes cannot honour, before anything is loaded."""
    packing, padding_free = getattr(args, "packing", False), getattr(args, "padding_free", False)
    if not (packing or padding_free):
        return
    if not method.packs:
        raise ValueError(f"the {method.name} recipe cannot train packed or padding-free batches: remove them.")
    flag = "packing" if packing else "padding_free"
    if packing and args.max_length is None:
        raise ValueError("packing needs max_length: the most tokens of a packed sequence (e.g. max_length: 2048).")
    if packing and args.train_sampling_strategy == GROUP_BY_LENGTH:
        raise ValueError(
            "train_sampling_strategy: group_by_length has nothing to group with packing (packed sequences are all "
            "about max_length long): remove one of them."
        )
    if data_args.image_processing == "device":
        raise ValueError(
            f"image_processing: device is not implemented with {flag} (the device stage lays out the images of a "
            "padded batch): use image_processing: worker (the same batches, bit for bit) or processor."
        )
    if data_args.padding_side != "right":
        raise ValueError(
            f"padding_side: {data_args.padding_side} has no effect with {flag} (there is no padding): remove it."
        )


@dataclass
class BatchPlan:
    """What the trainer is built with (`rows`, `collator`), what it then iterates (`packed` bins, when packing) and
    the figures for eval_results.json (`results`)."""

    mode: str
    collator: object
    rows: object
    packed: PackedRows | None = None
    results: dict = field(default_factory=dict)

    def attach(self, trainer) -> None:
        """Make the trainer iterate the packed sequences (it was built on the rows, which TRL inspects)."""
        if self.packed is not None:
            trainer.train_dataset = self.packed


def plan(method, train_ds, processor, data_args, args, model_config=None) -> BatchPlan:
    """The collator and training data for `method` with these arguments (see the module docstring). `model_config`:
    the loaded model's, which a padding-free batch of videos reads its time scale from (`Family.video_time_scale`)."""
    mode = mode_of(args)
    rows = undecoded(train_ds)  # the collator decodes the images, naming the row of a bad one
    collator = build_collator(
        method.collator_class,
        processor,
        data_args,
        max_length=args.max_length,
        pad_to_multiple_of=args.pad_to_multiple_of,  # TRL resolves "auto" to an int or None
        padding_free=mode in ("packed", "padding-free"),
    )
    scale = getattr(getattr(collator, "family", None), "video_time_scale", None)
    if isinstance(collator, PaddingFreeCollator) and scale is not None and model_config is not None:
        collator.video_time_scale = scale(model_config)
    result = BatchPlan(mode, collator, rows, results={"batching": mode})
    if mode != "packed" and args.train_sampling_strategy != GROUP_BY_LENGTH:
        return result
    column = args.length_column_name
    if column in rows.column_names:
        logger.info("Row lengths: the data's own column %r", column)
        lengths = list(rows[column])
    else:
        lengths = count_lengths(method, rows, processor, max_image_pixels=data_args.max_image_pixels)
        if args.train_sampling_strategy == GROUP_BY_LENGTH:
            result.rows = rows.add_column(column, lengths)  # what transformers' LengthGroupedSampler reads
    if mode == "packed":
        bins = pack_rows(lengths, args.max_length)
        fill = fill_ratio(lengths, bins, args.max_length)
        logger.info(
            "Packed %d rows into %d sequences of at most %d tokens: %.1f%% full",
            len(lengths),
            len(bins),
            args.max_length,
            100 * fill,
        )
        result.packed = PackedRows(result.rows, bins)
        result.results.update({"packed_sequences": len(bins), "packing_fill_ratio": round(fill, 4)})
    return result


@contextmanager
def shown_to_trl_as_padded(args):
    """TRL 1.16's SFTTrainer refuses `packing` and `padding_free` for image data (and would pack or flatten with
    its own collators); ours do both, so while the trainer is built it sees them off. The arguments keep what was
    asked (the saved config and the model card say so)."""
    saved = {name: getattr(args, name) for name in ("packing", "padding_free") if hasattr(args, name)}
    for name in saved:
        setattr(args, name, False)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(args, name, value)

"""Tokens per training row, image tokens included, counted once and cached: what length grouping and packing need.

transformers' length-grouped sampler reads lengths from a dataset column (`length_column_name`) or from tokenized
`input_ids`; our rows hold raw conversations and images, tokenized on the fly, so neither exists. TRL's packing counts
tokenized text. Here a row's length is what preflight counts for it: the method's own collator encodes the row
(rendering, image processing, placeholder expansion) and the real tokens of each sequence are counted, untruncated. A
preference row is two sequences (prompt + chosen, prompt + rejected); its length is the longer one, what a padded
batch pads to.

Counting processes every image once, so the lengths are cached on disk, keyed by the dataset's fingerprint and
everything that changes a count (tokenizer, chat template, image processor settings, collator), under
`$VLM_RECIPES_CACHE/lengths/`: a rerun, a resumed run or another recipe on the same data reads them back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import torch

from ..data.collation import build_collator
from ..data.collators import SampleError, _row_name
from ..data.images import ImageError, undecoded
from ..paths import cache_root
from ..settings import DataArguments

logger = logging.getLogger(__name__)

# Rows encoded per collator call while counting: image processing dominates, so larger batches gain little.
COUNT_BATCH = 32


def sequence_lengths(batch: dict) -> list[int]:
    """Real tokens of each sequence of a collated (padded) batch: preflight's count."""
    return batch["attention_mask"].sum(dim=1).tolist()


def row_lengths(batch: dict, num_rows: int) -> list[int]:
    """Tokens of each of `num_rows` rows in a collated batch: its sequence, or the longer of its two (preference)."""
    per_sequence = sequence_lengths(batch)
    if len(per_sequence) == 2 * num_rows:  # chosen rows, then rejected rows
        return [max(a, b) for a, b in zip(per_sequence[:num_rows], per_sequence[num_rows:])]
    return per_sequence


def processor_signature(processor) -> str:
    """A hash of what decides a row's token count: tokenizer, chat template, image processor settings."""
    h = hashlib.sha256()
    h.update(processor.tokenizer.backend_tokenizer.to_str().encode())
    h.update(str(processor.chat_template).encode())
    h.update(processor.image_processor.to_json_string().encode())
    for name in ("image_seq_len", "image_token"):
        h.update(repr(getattr(processor, name, None)).encode())
    return h.hexdigest()


def _cache_path(method, ds, processor, max_image_pixels) -> Path | None:
    fingerprint = getattr(ds, "_fingerprint", None)
    if fingerprint is None:
        return None  # not a datasets.Dataset: count every time
    key = json.dumps(
        [fingerprint, len(ds), method.collator_class.__name__, processor_signature(processor), max_image_pixels]
    )
    return cache_root() / "lengths" / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.json"


def count_lengths(method, ds, processor, *, max_image_pixels: int | None = None, cache: bool = True) -> list[int]:
    """The length of every row of `ds` (tokens, image tokens included, untruncated) as `method`'s collator encodes
    it; read from the cache when this data was counted before with the same processor settings.

    A row that cannot be encoded raises a SampleError naming it (and the fix), before training starts."""
    path = _cache_path(method, ds, processor, max_image_pixels) if cache else None
    if path is not None and path.exists():
        lengths = json.loads(path.read_text())
        if len(lengths) == len(ds):
            logger.info("Row lengths of %d rows read from %s", len(lengths), path)
            return lengths
    started = time.time()
    limits = {} if max_image_pixels is None else {"max_image_pixels": max_image_pixels}  # None: the default limit
    collator = build_collator(method.collator_class, processor, DataArguments(**limits))
    raw = undecoded(ds)
    lengths: list[int] = []
    for start in range(0, len(raw), COUNT_BATCH):
        rows = [dict(raw[i]) for i in range(start, min(start + COUNT_BATCH, len(raw)))]
        try:
            with torch.no_grad():
                lengths += row_lengths(collator(rows), len(rows))
        except (SampleError, ImageError):
            for k, row in enumerate(rows):  # find the row; the collator's message names it and the fix
                if _row_name(row, 0) == "batch item 0":  # no id column: name it by its index in the split
                    row = {**row, "row_id": f"train[{start + k}]"}
                try:
                    collator([row])
                except (SampleError, ImageError) as err:
                    raise SampleError(
                        f"Counting row lengths (for length grouping / packing): {err}", getattr(err, "kind", "bad row")
                    ) from err
            raise
    logger.info("Counted the tokens of %d rows in %.1fs", len(lengths), time.time() - started)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_text(json.dumps(lengths))
        os.replace(partial, path)  # atomic: a reader never sees half a file
    return lengths

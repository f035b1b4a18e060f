"""The contamination check: how many rows of a scored set (a held-out split, an evaluation dataset, a benchmark's
rows) the model was trained on, by image content and by question text.

- A `Fingerprint` of a set of rows: the perceptual hash of each image (`data.image_hashes`, cached by content) and a
  key of each row's normalised question (`normalize_question`: Unicode NFKC, case folded, punctuation dropped,
  whitespace collapsed). A training run saves its training data's fingerprint beside its adapter (`RECORD_FILE`), so
  that evaluations and benchmarks of that adapter can check their rows against it later.
- `measure(training, scored)`: per scored row, whether one of its images is within `MAX_DISTANCE` bits of a training
  image (a re-encoded or resized copy: an *image overlap*), whether its normalised question is a training question
  (*question overlap*), and whether one training row matches it on both (*same item*). `near_pairs` finds the image
  pairs with a multi-index Hamming search (the 64 bits cut into MAX_DISTANCE + 1 blocks: two hashes within
  MAX_DISTANCE bits agree exactly on at least one block), or all pairs where the blocks are too crowded.
- `refuse_above`: a scored set whose image overlap exceeds `max_overlap` (default 1% of its rows) is refused, naming
  the numbers and the fix (`allow_overlap: true`), unless allowed; an allowed one is marked in the reports.

Question overlap alone is shown, never refused: short questions ("What is the title?") recur across images by
design. Shown and marked, never refused: data drawn from our generators (`synthetic`: its held-out split is an
independent draw, and its 64 px scenes are too plain for the hash to tell apart, image_hashes's docstring), and a
held-out split carved from the training split by `eval_fraction` (its rows are disjoint by construction; that their
images repeat, several questions per image as in VQAv2 and DocVQA, is what the figure shows). Videos are not
compared, nor plain one-colour images (they have no layout to hash: image_hashes.FEATURELESS).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .image_hashes import FEATURELESS, HashCache, HashStats, hash_images, hashing_pool

# Bits of 64. Measured (benches/bench_contamination.py): JPEG q70 copies at 60% size of 128 px scenes are 0-4 bits
# away; of 10,000 other scenes none is within 9 bits of 10,000 training scenes, 18 within 8 bits of 100,000.
MAX_DISTANCE = 6
DEFAULT_MAX_OVERLAP = 0.01
RECORD_FILE = "training_data_hashes.npz"  # a training run's fingerprint, in its output_dir
ID_COLUMNS = ("row_id", "id", "idx")
FIX = "allow_overlap: true"
_NON_WORD = re.compile(r"[\W_]+")


class ContaminationError(ValueError):
    """A scored set overlaps the training data above the threshold; the message names the numbers and the fix."""


def normalize_question(text: str | None) -> str:
    """The question as compared: NFKC, case folded, every run of punctuation / symbols / whitespace one space."""
    if not text:
        return ""
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def question_key(text: str | None) -> int:
    """A 64-bit key of the normalised question (0: no question)."""
    normal = normalize_question(text)
    if not normal:
        return 0
    return int.from_bytes(hashlib.blake2b(normal.encode(), digest_size=8).digest(), "little") or 1


def question_of(row: dict) -> str | None:
    """A row's question: the text of its first user turn (`messages` or `prompt`), else its `question` column."""
    for column in ("messages", "prompt"):
        turns = row.get(column)
        if not isinstance(turns, list):
            continue
        for turn in turns:
            if isinstance(turn, dict) and turn.get("role") == "user":
                content = turn.get("content")
                if isinstance(content, str):
                    return content
                texts = [p.get("text") for p in content or [] if isinstance(p, dict) and p.get("type") == "text"]
                return " ".join(t for t in texts if t)
    question = row.get("question")
    return question if isinstance(question, str) else None


@dataclass
class Fingerprint:
    """What a set of rows is compared by: one hash per image (with its row), one question key per row."""

    name: str
    row_ids: list[str]
    image_hash: np.ndarray  # uint64, one per image
    image_row: np.ndarray  # int64, the row of each image
    question_key: np.ndarray  # uint64, one per row (0: no question)
    generated: bool = False  # drawn from our generators: shown, never refused
    stats: HashStats = field(default_factory=HashStats)

    @property
    def num_rows(self) -> int:
        return len(self.row_ids)

    def save(self, path: str | Path) -> None:
        """Write the fingerprint (hashes, keys and row ids only: no image, no text) as a .npz file."""
        path = Path(path)
        partial = path.with_name(f".{path.name}.partial.npz")
        np.savez_compressed(
            partial,
            name=np.array(self.name),
            row_ids=np.array(self.row_ids, dtype=str),
            image_hash=self.image_hash,
            image_row=self.image_row,
            question_key=self.question_key,
            generated=np.array(self.generated),
        )
        partial.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> Fingerprint:
        with np.load(path, allow_pickle=False) as f:
            return cls(
                name=str(f["name"]),
                row_ids=[str(r) for r in f["row_ids"]],
                image_hash=f["image_hash"].astype(np.uint64),
                image_row=f["image_row"].astype(np.int64),
                question_key=f["question_key"].astype(np.uint64),
                generated=bool(f["generated"]),
            )


def fingerprint_rows(
    name: str,
    images: list[list],
    questions: list[str | None],
    row_ids: list[str],
    cache: HashCache | None,
    generated: bool = False,
    pool=None,
) -> Fingerprint:
    """The fingerprint of rows given as their images (a list per row: PIL images, `{bytes, path}` values or paths),
    questions and ids; `pool`: worker processes for the images not in the cache (`image_hashes.hashing_pool`)."""
    stats = HashStats()
    flat = [(r, value) for r, values in enumerate(images) for value in values if value is not None]
    hashes = hash_images([value for _, value in flat], cache, stats, pool)
    kept = [(r, h) for (r, _), h in zip(flat, hashes) if h is not None and h != FEATURELESS]
    return Fingerprint(
        name=name,
        row_ids=list(row_ids),
        image_hash=np.array([h for _, h in kept], dtype=np.uint64),
        image_row=np.array([r for r, _ in kept], dtype=np.int64),
        question_key=np.array([question_key(q) for q in questions], dtype=np.uint64),
        generated=generated,
        stats=stats,
    )


def _images_of(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def fingerprint_dataset(
    ds,
    name: str,
    cache: HashCache | None,
    generated: bool = False,
    id_prefix: str | None = None,
    image_column: str | None = None,
    question_column: str | None = None,
    batch_size: int = 1000,
    workers: int | None = None,
) -> Fingerprint:
    """The fingerprint of a split, read in batches with its images undecoded. Images: `image_column`, else `images`
    or `image`; questions: `question_column`, else the first user turn of `messages` / `prompt`, else `question`.
    Rows without an id column are named `<id_prefix or name>[<index>]`. Images not in the cache are hashed in
    `workers` processes (default: up to 4 for 4,000 rows or more; `image_hashes.hashing_pool`)."""
    from .images import undecoded

    image_column = image_column or next((c for c in ("images", "image") if c in ds.column_names), None)
    if image_column is not None and image_column in ds.column_names:
        ds = _undecoded_column(undecoded(ds), image_column)
    else:
        image_column = None
    texts = [question_column] if question_column else ["messages", "prompt", "question"]
    wanted = [c for c in (image_column, *texts, *ID_COLUMNS) if c and c in ds.column_names]
    columns = dict(name=name, id_prefix=id_prefix, image_column=image_column, question_column=question_column)
    with hashing_pool(len(ds) if image_column else 0, workers) as pool:
        parts = [
            _fingerprint_batch(ds.select_columns(wanted), start, batch_size, cache, generated, pool, **columns)
            for start in range(0, len(ds), batch_size)
        ]
    return _concat(name, parts, generated)


def _fingerprint_batch(
    ds, start, batch_size, cache, generated, pool, *, name, id_prefix, image_column, question_column
):
    """The fingerprint of rows start .. start + batch_size of `ds` (its compared columns only)."""
    batch = ds[start : start + batch_size] if ds.column_names else {}
    rows = [{c: batch[c][i] for c in ds.column_names} for i in range(min(batch_size, len(ds) - start))]
    ids = []
    for i, row in enumerate(rows, start=start):
        given = next((row[c] for c in ID_COLUMNS if row.get(c) is not None), None)
        ids.append(str(given) if given is not None else f"{id_prefix or name}[{i}]")
    images = [_images_of(row.get(image_column)) for row in rows] if image_column else [[] for _ in rows]
    if question_column:
        questions = [row.get(question_column) if isinstance(row.get(question_column), str) else None for row in rows]
    else:
        questions = [question_of(row) for row in rows]
    return fingerprint_rows(name, images, questions, ids, cache, generated, pool)


def _undecoded_column(ds, column: str):
    """`ds` with its image column `column` (one image or a list of them) left as {bytes, path}."""
    from datasets import Image, List

    feature = ds.features[column]
    if isinstance(feature, Image) and feature.decode:
        return ds.cast_column(column, Image(decode=False))
    if isinstance(feature, List) and isinstance(feature.feature, Image) and feature.feature.decode:
        return ds.cast_column(column, List(Image(decode=False)))
    return ds


def _concat(name: str, parts: list[Fingerprint], generated: bool) -> Fingerprint:
    stats, offset, rows = HashStats(), 0, []
    for part in parts:
        stats.add(part.stats)
        rows.append(part.image_row + offset)
        offset += part.num_rows
    return Fingerprint(
        name=name,
        row_ids=[r for p in parts for r in p.row_ids],
        image_hash=np.concatenate([p.image_hash for p in parts]) if parts else np.zeros(0, np.uint64),
        image_row=np.concatenate(rows) if rows else np.zeros(0, np.int64),
        question_key=np.concatenate([p.question_key for p in parts]) if parts else np.zeros(0, np.uint64),
        generated=generated,
        stats=stats,
    )


# -- nearest neighbours in Hamming space ---------------------------------------------------------------------------

_PAIRS_PER_CHUNK = 4_000_000  # candidate pairs held at once (a few tens of MB)


def _all_pairs(queries: np.ndarray, base: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    q_out, b_out = [], []
    step = max(1, _PAIRS_PER_CHUNK // max(1, len(base)))
    for start in range(0, len(queries), step):
        distance = np.bitwise_count(queries[start : start + step, None] ^ base[None, :])
        qi, bi = np.nonzero(distance <= max_distance)
        q_out.append(qi + start)
        b_out.append(bi)
    return _joined(q_out, b_out)


def _joined(q_out, b_out) -> tuple[np.ndarray, np.ndarray]:
    if not q_out:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(q_out).astype(np.int64), np.concatenate(b_out).astype(np.int64)


def near_pairs(
    queries: np.ndarray, base: np.ndarray, max_distance: int = MAX_DISTANCE, method: str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """(query index, base index) of every pair of 64-bit hashes within `max_distance` bits, each pair once.

    `method`: `index` (multi-index: the bits cut into max_distance + 1 blocks; a pair within max_distance agrees on
    one block, so only hashes sharing a block value are compared), `all` (every pair), or `auto` (the index, unless
    crowded blocks would make it compare more than a quarter of all pairs)."""
    queries, base = np.asarray(queries, np.uint64), np.asarray(base, np.uint64)
    if len(queries) == 0 or len(base) == 0:
        return _joined([], [])
    if method == "all":
        return _all_pairs(queries, base, max_distance)
    bounds = np.linspace(0, 64, max_distance + 2).astype(np.uint64)
    blocks = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        mask = np.uint64((1 << int(hi - lo)) - 1)
        keys_b = (base >> lo) & mask
        order = np.argsort(keys_b, kind="stable")
        sorted_b = keys_b[order]
        keys_q = (queries >> lo) & mask
        first = np.searchsorted(sorted_b, keys_q, "left")
        counts = np.searchsorted(sorted_b, keys_q, "right") - first
        blocks.append((order, first, counts))
    candidates = sum(int(c.sum()) for _, _, c in blocks)
    if method == "auto" and candidates > len(queries) * len(base) / 4:
        return _all_pairs(queries, base, max_distance)
    q_out, b_out = [], []
    for order, first, counts in blocks:
        # Queries in chunks of about _PAIRS_PER_CHUNK candidates.
        ends = np.cumsum(counts)
        start = 0
        while start < len(queries):
            stop = int(np.searchsorted(ends, (ends[start - 1] if start else 0) + _PAIRS_PER_CHUNK, "right"))
            stop = max(stop, start + 1)
            c = counts[start:stop]
            qi = np.repeat(np.arange(start, stop), c)
            offsets = np.arange(int(c.sum())) - np.repeat(np.cumsum(c) - c, c)
            bi = order[np.repeat(first[start:stop], c) + offsets]
            keep = np.bitwise_count(queries[qi] ^ base[bi]) <= max_distance
            q_out.append(qi[keep])
            b_out.append(bi[keep])
            start = stop
    qi, bi = _joined(q_out, b_out)
    pairs = np.unique(qi * len(base) + bi)  # a pair agreeing on several blocks was found several times
    return pairs // len(base), pairs % len(base)


# -- overlap figures -------------------------------------------------------------------------------------------


@dataclass
class Overlap:
    """The overlap of one scored set with the training data (counts of scored rows)."""

    scored: str
    training: str
    rows: int
    image_rows: int  # an image within MAX_DISTANCE bits of a training image
    question_rows: int  # the normalised question is a training question
    same_rows: int  # one training row matches both
    max_overlap: float = DEFAULT_MAX_OVERLAP
    allowed: bool = False
    generated: bool = False
    enforced: bool = True  # False: shown and marked, never refused (`note` says why)
    note: str = ""
    images_unread: int = 0
    images_plain: int = 0  # scored images too plain to compare (one colour): left out
    examples: list = field(default_factory=list)  # (scored row id, training row id, bits apart)

    @property
    def fraction(self) -> float:
        return self.image_rows / self.rows if self.rows else 0.0

    @property
    def above(self) -> bool:
        return self.fraction > self.max_overlap

    @property
    def refused(self) -> bool:
        return self.above and self.enforced and not self.allowed

    def mark(self) -> str:
        """'' under the threshold; otherwise why it did not stop the run."""
        if not self.above:
            return ""
        if not self.enforced:
            return f"ABOVE {self.max_overlap:.0%} ({self.note}: shown, not enforced)"
        return f"ABOVE {self.max_overlap:.0%} (allowed by allow_overlap: true)" if self.allowed else "ABOVE"

    def line(self) -> str:
        pct = (lambda n: f"{100 * n / self.rows:.1f}%") if self.rows else (lambda n: "n/a")
        text = (
            f"{self.scored}: {self.image_rows} of {self.rows} scored rows ({pct(self.image_rows)}) have an image seen "
            f"in training ({self.training}), {self.question_rows} ({pct(self.question_rows)}) its question, "
            f"{self.same_rows} ({pct(self.same_rows)}) both on one training row"
        )
        if self.images_unread:
            text += f"; {self.images_unread} image(s) could not be read"
        if self.images_plain:
            text += f"; {self.images_plain} plain (one-colour) image(s) not compared"
        mark = self.mark()
        return f"{text}  [{mark}]" if mark else text

    def as_dict(self) -> dict:
        return {
            "scored": self.scored,
            "training": self.training,
            "rows": self.rows,
            "image_overlap": self.image_rows,
            "question_overlap": self.question_rows,
            "same_item_overlap": self.same_rows,
            "image_overlap_fraction": round(self.fraction, 6),
            "images_not_compared": {"unreadable": self.images_unread, "plain": self.images_plain},
            "max_overlap": self.max_overlap,
            "above_threshold": self.above,
            "allowed": self.allowed,
            "generated": self.generated,
            "enforced": self.enforced,
            "note": self.note,
            "mark": self.mark(),
            "examples": [list(e) for e in self.examples],
        }


def measure(
    training: Fingerprint,
    scored: Fingerprint,
    max_overlap: float = DEFAULT_MAX_OVERLAP,
    allowed: bool = False,
    max_distance: int = MAX_DISTANCE,
    enforced: bool = True,
    note: str = "",
) -> Overlap:
    """The overlap of `scored` with `training` (see the module docstring); `enforced=False` (with a `note` saying
    why) shows and marks the figure without refusing. Data from our generators is never enforced."""
    qi, bi = near_pairs(scored.image_hash, training.image_hash, max_distance)
    scored_rows, train_rows = scored.image_row[qi], training.image_row[bi]
    image_rows = np.unique(scored_rows)
    train_questions = set(training.question_key[training.question_key != 0].tolist())
    asked = np.array([k != 0 and k in train_questions for k in scored.question_key.tolist()], dtype=bool)
    keys = scored.question_key[scored_rows]
    same = np.unique(scored_rows[(keys != 0) & (keys == training.question_key[train_rows])])
    examples = []
    for s in image_rows[:5].tolist():
        pick = np.flatnonzero(scored_rows == s)[0]
        bits = int(np.bitwise_count(scored.image_hash[qi[pick]] ^ training.image_hash[bi[pick]]))
        examples.append((scored.row_ids[s], training.row_ids[int(train_rows[pick])], bits))
    return Overlap(
        scored=scored.name,
        training=training.name,
        rows=scored.num_rows,
        image_rows=len(image_rows),
        question_rows=int(asked.sum()),
        same_rows=len(same),
        max_overlap=max_overlap,
        allowed=allowed,
        generated=training.generated,
        enforced=enforced and not training.generated,
        note=note or ("generated data" if training.generated else ""),
        images_unread=scored.stats.failed,
        images_plain=scored.stats.featureless,
        examples=examples,
    )


def report_text(overlaps: list[Overlap]) -> str:
    """The figures, one line per scored set, under a title."""
    lines = [f"Training-data overlap (images within {MAX_DISTANCE} of 64 pHash bits; normalised question text):"]
    return "\n".join(lines + [f"  {o.line()}" for o in overlaps])


def refuse_above(overlaps: list[Overlap], where: str) -> None:
    """Raise a ContaminationError naming each scored set above its threshold, with the fix; nothing when none is."""
    refused = [o for o in overlaps if o.refused]
    if not refused:
        return
    detail = "; ".join(
        f"{o.scored}: {o.image_rows} of {o.rows} rows ({o.fraction:.1%}) have an image seen in training "
        f"({o.training}), over max_overlap {o.max_overlap:.0%}"
        + (f", e.g. {o.examples[0][0]} ~ {o.examples[0][1]} ({o.examples[0][2]} bits apart)" if o.examples else "")
        for o in refused
    )
    raise ContaminationError(
        f"{where}: the scored data overlaps the training data: {detail}. Score on data the model was not trained "
        f"on (another split, or hold out whole images), or set `{FIX}` to run anyway (the reports mark the figure)."
    )

"""Perceptual hashes of images, computed once per image content and cached: what the contamination check
(`data.contamination`) compares training and scored images by.

The hash is the DCT perceptual hash (pHash): the image in grey, shrunk to 32 x 32 (antialiased), its 2-D DCT-II,
the 8 x 8 lowest frequencies, one bit per coefficient (above the block's median or not): 64 bits that describe the
coarse layout of light and dark, and so survive re-encoding (JPEG at quality 70), resizing and mild colour changes.
Written here with numpy and PIL (a few lines); no package on our lists is needed for it.

Measured (benches/bench_contamination.py, docs/data.md#contamination-check): a JPEG copy at quality 70 and 60% of the
size of a photo-like scene is 0-4 bits away; other scenes are 10 or more bits from their nearest of 10,000. Flat,
low-detail images (the 64 px synthetic scenes: one shape on grey) sit at the method's limit: many DCT coefficients
are near the median, so a re-encoded copy can move up to ~24 bits, and two different scenes can hash alike.

The cache is one SQLite file under the project cache (`vlm_recipes.paths.cache_root() / image_hashes`), keyed by a
BLAKE2b digest of the image's bytes (encoded file, or mode + size + pixels for an in-memory image): a changed image
is a new key and is hashed again; the same file under another path is hashed once.
"""

from __future__ import annotations

import hashlib
import io
import os
import sqlite3
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..paths import cache_root

HASH_VERSION = 2  # bump when the hash changes: the cache table is named by it, so old entries are not reused
SIDE = 32  # the thumbnail the DCT is taken of
LOW = 8  # the LOW x LOW lowest frequencies give the 64 bits
# A plain image (one colour, or nearly: thumbnail std under FLAT_STD grey levels) has no layout to hash: its bits
# would be noise, and every blank image would match every other. It gets FEATURELESS (no pHash can be all ones:
# at most 32 coefficients lie strictly above the median) and is left out of comparisons, counted.
FLAT_STD = 2.0
FEATURELESS = (1 << 64) - 1


def _dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix: `D @ x` transforms the columns of x."""
    k = np.arange(n)
    d = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n))
    d[0] /= np.sqrt(2.0)
    return d


_DCT = _dct_matrix(SIDE)


def content_key(value) -> bytes:
    """A 16-byte digest of an image's content: the encoded bytes of a `{bytes, path}` value or a file, or mode, size
    and pixels of a PIL image."""
    digest = hashlib.blake2b(digest_size=16)
    if isinstance(value, Image.Image):
        digest.update(f"{value.mode}:{value.size}".encode())
        digest.update(value.tobytes())
    else:
        digest.update(_encoded(value))
    return digest.digest()


def _encoded(value) -> bytes:
    """The encoded bytes of a `{bytes, path}` value (as `datasets` stores an undecoded image) or of a file path."""
    if isinstance(value, dict):
        if value.get("bytes") is not None:
            return value["bytes"]
        value = value.get("path")
    if isinstance(value, (str, Path)):
        return Path(value).read_bytes()
    raise TypeError(f"not an image: {type(value).__name__}")


def _thumbnail(value) -> np.ndarray:
    """The SIDE x SIDE grey thumbnail of an image, as uint8 (decoding at reduced scale where the format allows)."""
    image = value if isinstance(value, Image.Image) else Image.open(io.BytesIO(_encoded(value)))
    if image.format == "JPEG":
        image.draft("L", (2 * SIDE, 2 * SIDE))  # decode at 1/2 .. 1/8 scale: the hash needs 32 x 32 only
    grey = image.convert("L").resize((SIDE, SIDE), Image.Resampling.BILINEAR)  # PIL antialiases when shrinking
    return np.asarray(grey, dtype=np.uint8)


def _thumbnail_or_none(value) -> np.ndarray | None:
    try:
        return _thumbnail(value)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


PARALLEL_FROM = 4000  # images from which a set is hashed in worker processes (`hashing_pool`)


@contextmanager
def hashing_pool(num_images: int, workers: int | None = None):
    """Worker processes for hashing a set of `num_images` images (None below PARALLEL_FROM, or with one core):
    `workers` (default: up to 4, one per core). The processes start on the first image that is not in the cache, so a
    cached set costs nothing."""
    workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    if workers <= 1 or num_images < PARALLEL_FROM:
        yield None
        return
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        yield pool


def _thumbnails(values: list, pool) -> list[np.ndarray | None]:
    """The thumbnails of `values` (None where unreadable), in `pool`'s processes when given."""
    if pool is None or len(values) < 64:
        return [_thumbnail_or_none(v) for v in values]
    return list(pool.map(_thumbnail_or_none, values, chunksize=max(1, min(64, len(values) // 16))))


def phash_thumbnails(thumbnails: np.ndarray) -> np.ndarray:
    """The 64-bit pHash of each (SIDE x SIDE) thumbnail of a stack (n, SIDE, SIDE), as uint64 (FEATURELESS for a
    plain one)."""
    if len(thumbnails) == 0:
        return np.zeros(0, dtype=np.uint64)
    coefficients = (_DCT @ thumbnails.astype(np.float64) @ _DCT.T)[:, :LOW, :LOW].reshape(len(thumbnails), LOW * LOW)
    bits = coefficients > np.median(coefficients, axis=1, keepdims=True)
    hashes = np.packbits(bits, axis=1, bitorder="little").view("<u8").ravel().astype(np.uint64)
    hashes[thumbnails.reshape(len(thumbnails), -1).std(axis=1) < FLAT_STD] = np.uint64(FEATURELESS)
    return hashes


def phash(value) -> int:
    """The 64-bit pHash of one image (a PIL image, a `{bytes, path}` value or a path)."""
    return int(phash_thumbnails(_thumbnail(value)[None])[0])


class HashCache:
    """pHashes by content key in one SQLite file; safe to share between processes (SQLite's own locking)."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else cache_root() / "image_hashes" / "phash.sqlite"
        self.table = f"phash_v{HASH_VERSION}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (key BLOB PRIMARY KEY, hash INTEGER NOT NULL)")

    def _connect(self):
        return sqlite3.connect(self.path, timeout=120)

    def get_many(self, keys: list[bytes]) -> dict[bytes, int]:
        found: dict[bytes, int] = {}
        with self._connect() as db:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = db.execute(f"SELECT key, hash FROM {self.table} WHERE key IN ({marks})", chunk)
                found.update((bytes(k), h & 0xFFFFFFFFFFFFFFFF) for k, h in rows)
        return found

    def put_many(self, items: dict[bytes, int]) -> None:
        signed = [(k, h - (1 << 64) if h >= 1 << 63 else h) for k, h in items.items()]  # SQLite integers are signed
        with self._connect() as db:
            db.executemany(f"INSERT OR REPLACE INTO {self.table} (key, hash) VALUES (?, ?)", signed)


@dataclass
class HashStats:
    """How a batch of images was hashed: from the cache, newly, or not at all (undecodable); how many were plain."""

    cached: int = 0
    hashed: int = 0
    failed: int = 0
    featureless: int = 0

    def add(self, other: HashStats) -> None:
        self.cached += other.cached
        self.hashed += other.hashed
        self.failed += other.failed
        self.featureless += other.featureless


def hash_images(
    values: Iterable, cache: HashCache | None, stats: HashStats | None = None, pool=None
) -> list[int | None]:
    """The pHash of each image (None for one that cannot be read: preflight names those rows); hashes come from
    `cache` when its content was hashed before, and new ones are stored there (no cache: `cache=None`); new images
    are decoded in the processes of `pool` (`hashing_pool`) when given."""
    values = list(values)
    stats = stats if stats is not None else HashStats()
    keys: list[bytes | None] = []
    for value in values:
        try:
            keys.append(content_key(value))
        except (OSError, TypeError):
            keys.append(None)
    known = cache.get_many(sorted({k for k in keys if k is not None})) if cache is not None else {}
    todo = {k: v for k, v in zip(keys, values) if k is not None and k not in known}
    made = _thumbnails(list(todo.values()), pool)
    done = [k for k, t in zip(todo, made) if t is not None]
    stack = np.asarray([t for t in made if t is not None], dtype=np.uint8).reshape(-1, SIDE, SIDE)
    new = dict(zip(done, (int(h) for h in phash_thumbnails(stack))))
    if cache is not None and new:
        cache.put_many(new)
    known.update(new)
    out = [known.get(k) if k is not None else None for k in keys]
    stats.hashed += len(new)
    stats.cached += sum(1 for k in keys if k is not None and k not in new and k in known)
    stats.failed += sum(1 for h in out if h is None)
    stats.featureless += sum(1 for h in out if h == FEATURELESS)
    return out

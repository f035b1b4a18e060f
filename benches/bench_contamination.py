"""The contamination check's cost (vlm_recipes/data/contamination.py, image_hashes.py): images hashed per second,
and the whole check for 100k training rows against 10k scored rows, the first time (empty hash cache) and again
(cached), with the Hamming search alone by multi-index and by all pairs.

Images are synthetic photo-like scenes (a smooth random background and five shapes), each one distinct; 1% of the
scored rows are JPEG (quality 70), 60%-size copies of training images, so the figures also show what was found.
One process, one thread (OMP_NUM_THREADS=1); the hash cache is a temporary file.

    OMP_NUM_THREADS=1 python benches/bench_contamination.py [--train 100000] [--scored 10000] [--side 128]
"""

import argparse
import io
import os
import platform
import random
import tempfile
import time

import numpy as np
from datasets import Dataset, Image, List, disable_progress_bars
from PIL import Image as PILImage
from PIL import ImageDraw

from vlm_recipes.data.contamination import MAX_DISTANCE, fingerprint_dataset, measure, near_pairs
from vlm_recipes.data.image_hashes import HashCache, HashStats, hash_images


def scene(seed: int, width: int, height: int) -> PILImage.Image:
    rng = random.Random(seed)
    field = np.array([[rng.randint(40, 215) for _ in range(6)] for _ in range(6)], dtype=np.uint8)
    image = PILImage.fromarray(field).resize((width, height), PILImage.Resampling.BICUBIC).convert("RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(5):
        side = rng.randint(width // 10, width // 4)
        x, y = rng.randint(0, width - side), rng.randint(0, height - side)
        color = tuple(rng.randint(0, 255) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x, y, x + side, y + side), fill=color)
    return image


def encoded(image: PILImage.Image, fmt: str = "JPEG", quality: int = 90, scale: float = 1.0) -> dict:
    if scale != 1.0:
        image = image.resize((int(image.width * scale), int(image.height * scale)), PILImage.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return {"bytes": buffer.getvalue(), "path": None}


def hashing_rate(kind: str, count: int) -> float:
    width, height, fmt = {"64 px PNG": (64, 64, "PNG"), "640x480 JPEG": (640, 480, "JPEG"),
                          "1700x2200 JPEG (a page)": (1700, 2200, "JPEG")}[kind]  # fmt: skip
    images = [encoded(scene(10_000_000 + i, width, height), fmt) for i in range(count)]
    started = time.perf_counter()
    hash_images(images, None, HashStats())
    return count / (time.perf_counter() - started)


def dataset(seeds, side: int, questions, copies: dict) -> Dataset:
    rows = []
    for n, seed in enumerate(seeds):
        image = copies.get(n) or encoded(scene(seed, side, side))
        rows.append({"images": [image], "messages": [{"role": "user", "content": questions(n)}]})
    return Dataset.from_list(rows).cast_column("images", List(Image()))


def main():
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--train", type=int, default=100_000)
    cli.add_argument("--scored", type=int, default=10_000)
    cli.add_argument("--side", type=int, default=128, help="Side in pixels of the check's images (JPEG, q90).")
    cli.add_argument("--rate_images", type=int, default=500, help="Images per hashing-rate measurement.")
    args = cli.parse_args()
    disable_progress_bars()
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), one process, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")  # fmt: skip

    for kind, count in (("64 px PNG", args.rate_images * 4), ("640x480 JPEG", args.rate_images),
                        ("1700x2200 JPEG (a page)", args.rate_images // 5)):  # fmt: skip
        print(f"hashing, {kind}: {hashing_rate(kind, count):,.0f} images/s (decode + 32x32 thumbnail + DCT)")

    started = time.perf_counter()
    train = dataset(range(args.train), args.side, lambda n: f"What is shown in picture {n}?", {})
    planted = {k * 100: k * 997 % args.train for k in range(args.scored // 100)}  # 1% copies of training images
    copies = {n: encoded(scene(t, args.side, args.side), quality=70, scale=0.6) for n, t in planted.items()}
    scored = dataset(range(args.train, args.train + args.scored), args.side,
                     lambda n: f"What is shown in picture {n + 3 * args.train}?", copies)  # fmt: skip
    print(f"made {args.train:,} training and {args.scored:,} scored rows of {args.side} px JPEGs in "
          f"{time.perf_counter() - started:.0f} s (not counted below)")  # fmt: skip

    with tempfile.TemporaryDirectory() as folder:
        for run in ("first time (empty cache)", "again (cached)"):
            cache = HashCache(os.path.join(folder, "hashes.sqlite"))
            started = time.perf_counter()
            training = fingerprint_dataset(train, "train", cache)
            held_out = fingerprint_dataset(scored, "scored", cache)
            hashed = time.perf_counter() - started
            overlap = measure(training, held_out)
            total = time.perf_counter() - started
            hashed_now = training.stats.hashed + held_out.stats.hashed
            cached_now = training.stats.cached + held_out.stats.cached
            qi, _ = near_pairs(held_out.image_hash, training.image_hash)
            flagged = set(held_out.image_row[qi].tolist())
            print(
                f"check, {run}: {total:.1f} s ({hashed:.1f} s fingerprints: {hashed_now:,} hashed, {cached_now:,} "
                f"from the cache; {total - hashed:.1f} s search and counts); {overlap.image_rows} rows flagged: "
                f"{len(flagged & set(planted))} of {len(planted)} planted copies, {len(flagged - set(planted))} "
                f"others; "
                f"{overlap.question_rows} question overlaps",
                flush=True,
            )

    nearest = np.bitwise_count(held_out.image_hash[:1000, None] ^ training.image_hash[None, :]).min(axis=1)
    others = [d for n, d in enumerate(nearest.tolist()) if n not in planted]
    copies = [d for n, d in enumerate(nearest.tolist()) if n in planted]
    print(
        f"bits to the nearest training image (first 1,000 scored rows; threshold {MAX_DISTANCE}): planted copies "
        f"{sorted(copies)}; others: min {min(others)}, counts at 0..12: {np.bincount(others, minlength=13)[:13]}"
    )
    for method in ("index", "all"):
        started = time.perf_counter()
        qi, _ = near_pairs(held_out.image_hash, training.image_hash, method=method)
        print(f"Hamming search ({method}), {args.scored:,} x {args.train:,} hashes: "
              f"{time.perf_counter() - started:.2f} s, {len(qi)} pairs")  # fmt: skip


if __name__ == "__main__":
    main()

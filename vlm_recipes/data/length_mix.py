"""A variable-length mix of training rows, for the batching benchmark and tests: how much padding do batches carry?

Real instruction data mixes photos of different shapes, text-only turns and answers from one word to a paragraph.
This mix draws the same spread offline: the two real photos scikit-learn ships (640x427) as landscape 640x427,
portrait 427x640 and a 640x200 strip, a share of text-only rows, and answers of 1 to 80 words. At real processor
settings (SmolVLM-256M: longest_edge 1024 with splitting; Qwen2-VL-2B: max_pixels 401,408) the rows run from a few
dozen tokens to several hundred.

>>> rows = mix_rows(4, seed=0)
>>> sorted(rows[0])
['images', 'messages', 'row_id']
"""

from __future__ import annotations

import random
from functools import cache

from PIL import Image

PHOTO_SIZES = ((640, 427), (427, 640), (640, 200))  # landscape, portrait, strip
QUESTIONS = (
    "What is shown in this picture?",
    "Describe the image in detail.",
    "What colours dominate the scene?",
    "Is there anything unusual here?",
    "Write a short caption.",
)
TEXT_QUESTIONS = (
    "Explain what a photograph is.",
    "Give me three tips for taking better pictures.",
    "What is the capital of France?",
    "Summarise why people travel.",
)
WORDS = (
    "the a an of in on with and or to it is are was be can see small large photo picture building temple flower "
    "garden roof red green blue yellow white light dark sky tree leaf petal stone wall window left right top bottom "
    "centre near far bright soft sharp old new people place time colour shape pattern detail scene view"
).split()


@cache
def photos() -> tuple[Image.Image, ...]:
    """The photos of the mix, one per size of PHOTO_SIZES, cut from scikit-learn's sample images."""
    from sklearn.datasets import load_sample_image

    china, flower = (Image.fromarray(load_sample_image(name)) for name in ("china.jpg", "flower.jpg"))
    landscape = china  # 640x427
    portrait = flower.transpose(Image.Transpose.ROTATE_90)  # 427x640
    strip = flower.crop((0, 113, 640, 313))  # 640x200
    out = (landscape, portrait, strip)
    assert tuple(p.size for p in out) == PHOTO_SIZES
    return out


def mix_rows(n: int, seed: int = 0, text_only: float = 0.25, max_words: int = 80) -> list[dict]:
    """`n` rows (`row_id`, `images`, `messages`): a share `text_only` without an image, the others with one photo
    of a random shape of PHOTO_SIZES; answers of 1 to `max_words` words."""
    rng = random.Random(seed)
    pictures = photos()
    rows = []
    for i in range(n):
        answer = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, max_words))).capitalize() + "."
        if rng.random() < text_only:
            images, content = [], [{"type": "text", "text": rng.choice(TEXT_QUESTIONS)}]
        else:
            images = [rng.choice(pictures)]
            content = [{"type": "image"}, {"type": "text", "text": rng.choice(QUESTIONS)}]
        messages = [
            {"role": "user", "content": content},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ]
        rows.append({"row_id": f"mix-{i}", "images": images, "messages": messages})
    return rows


def mix_dataset(n: int, seed: int = 0, **kwargs):
    """`mix_rows` as a `datasets.Dataset` (images stored as PNG, like an image dataset)."""
    from datasets import Dataset

    return Dataset.from_list(mix_rows(n, seed, **kwargs))

"""Stand-in of the BLIP captioning configs' COCO dataset: AKCIT/coco2017-captioning (COCO 2017 captions, one row per
image with all its human captions). Flickr30k's stand-in (lmms-lab-encoder/flickr30k) is in baselines.py."""

from __future__ import annotations

from datasets import Features, Image, Value

from .baselines import CAPTIONS
from .drawing import photo
from .schema import STRING, STRINGS, StandIn


def _coco_rows(config, split, n, rng):
    rows = []
    for i in range(n):
        color, captions = CAPTIONS[i % len(CAPTIONS)]
        image_id = 139 + 17 * i
        # COCO has 5 to 7 captions per image; `text` repeats the first.
        chosen = captions[: 5 + i % 2]
        rows.append(
            {
                "image": photo(rng, color, 1 + i % 3),
                "image_id": image_id,
                "text": chosen[0],
                "captions": chosen,
                "split": split,
            }
        )
    return rows


RECORDS = [
    StandIn(
        hub_id="AKCIT/coco2017-captioning",
        card="https://huggingface.co/datasets/AKCIT/coco2017-captioning/blob/main/README.md",
        features={
            "default": Features(
                {"image": Image(), "image_id": Value("int64"), "text": STRING, "captions": STRINGS, "split": STRING}
            )
        },
        splits={"default": {"train": 8, "validation": 4}},  # 118,287 and 5,000 images
        rows=_coco_rows,
    ),
]

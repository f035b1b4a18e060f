"""Stand-in of the grounding dataset the real grounding configs name: lmms-lab-encoder/RefCOCO (lmms-eval's
RefCOCO)."""

from __future__ import annotations

from datasets import Features, Image, List, Value

from .drawing import COLORS, encoded
from .schema import STRING, STRINGS, StandIn

EXPRESSIONS = {  # referring expressions as RefCOCO's annotators wrote them: short, lower case, relative positions
    "red": ["red ball on the left", "the red one"],
    "blue": ["blue circle", "blue thing near the middle"],
    "green": ["green ball right side", "the green circle"],
    "yellow": ["yellow one", "yellow ball top"],
}


def _refcoco_rows(config, split, n, rng):
    """A JPEG 'photo' of 96x72 or 72x96 pixels (RefCOCO's COCO photos are JPEGs of either orientation) with two
    balls; the row refers to one of them: `answer` holds its referring expressions, `bbox` its COCO box (x, y, width,
    height in pixels), `segmentation` its polygon (x, y, x, y, ...)."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    rows = []
    for i in range(n):
        size = (96, 72) if i % 3 else (72, 96)
        image = PILImage.new("RGB", size, (135, 180, 225))
        draw = ImageDraw.Draw(image)
        colors = rng.sample(list(COLORS), 2)
        boxes = []
        for j, color in enumerate(colors):
            side = rng.randint(14, 22)
            x = rng.randint(0, size[0] // 2 - side) + j * size[0] // 2
            y = rng.randint(0, size[1] - side)
            draw.ellipse([x, y, x + side - 1, y + side - 1], fill=COLORS[color])
            boxes.append((x, y, side))
        x, y, side = boxes[0]
        rows.append(
            {
                "question_id": f"{split}_{i}",
                "image": encoded(image, "JPEG"),
                "question": "Please carefully observe the area circled in the image and come up with a caption for "
                "the area.",
                "answer": EXPRESSIONS[colors[0]],
                "segmentation": [float(v) for v in (x, y, x + side, y, x + side, y + side, x, y + side)],
                "bbox": [float(x), float(y), float(side), float(side)],
                "iscrowd": 0,
                "file_name": f"COCO_train2014_{rng.randint(1, 581929):012d}.jpg",
            }
        )
    return rows


RECORDS = (
    StandIn(
        hub_id="lmms-lab-encoder/RefCOCO",
        card="https://huggingface.co/datasets/lmms-lab-encoder/RefCOCO/blob/main/README.md",
        features={
            "default": Features(
                {
                    "question_id": STRING,
                    "image": Image(),
                    "question": STRING,
                    "answer": STRINGS,  # the referring expressions of the object
                    "segmentation": List(Value("float32")),
                    "bbox": List(Value("float32")),  # COCO: x, y, width, height in pixels
                    "iscrowd": Value("int8"),
                    "file_name": STRING,
                }
            )
        },
        # The card's splits: val 8,811, test 5,000, testA 1,975, testB 1,810 (no train split: configs train on val).
        splits={"default": {"val": 10, "test": 3, "testA": 4, "testB": 3}},
        rows=_refcoco_rows,
        # lmms-lab/RefCOCO's card at e15256ece129a21d62e216f95f98ba2e808f96a0 (now lmms-lab-encoder/RefCOCO).
        card_features="""
            - {name: question_id, dtype: string}
            - {name: image, dtype: image}
            - {name: question, dtype: string}
            - {name: answer, sequence: string}
            - {name: segmentation, sequence: float32}
            - {name: bbox, sequence: float32}
            - {name: iscrowd, dtype: int8}
            - {name: file_name, dtype: string}
        """,
    ),
)

"""Offline stand-ins for the Hub datasets our real configs name: same splits, columns and feature types, a few rows.

The real datasets cannot be downloaded here (no Hub), but a config that names a wrong split or column, or that
assumes one image where the data has a list, should still fail in a test, not on a GPU hours later. Each record
below copies one dataset's schema from its dataset card (the card's `dataset_info` and `configs:` YAML; the URL is
in the record) and writes a few rows of realistic content as a local folder laid out like the Hub repository:
Parquet files at the repository's paths (`data/<split>-00000-of-00001.parquet`, or `<config>/<split>-...`) and a
README.md whose YAML has the card's `configs:` and `dataset_info`. `datasets.load_dataset(<folder>, <config>)` then
reads it with the same Parquet builder, split resolution and feature decoding as `load_dataset(<hub id>, <config>)`;
only the name differs. Images are small drawings in the source's format (JPEG photos, PNG charts and pages).

    python -m vlm_recipes.data.standins /tmp/standins            # every stand-in, under /tmp/standins/<hub id>
    python recipes/sft.py --config recipes/configs/smolvlm-256m-instruct/sft_lora_chartqa.yaml \\
        --dataset_name /tmp/standins/HuggingFaceM4/ChartQA --model_name_or_path tiny:smolvlm ...

What a stand-in does not reproduce: the row counts (a handful per split, so a held-out fraction is one or two
rows), the image sizes, and the answers of splits the benchmark withholds (stored as null).
"""

from __future__ import annotations

import io
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from datasets import ClassLabel, Dataset, Features, Image, List, Value
from PIL import Image as PILImage
from PIL import ImageDraw

STRING = Value("string")
STRINGS = List(Value("string"))
# One chat message as TRL's vision datasets store it: typed parts ({text, type}) under content, and a role.
MESSAGES = List({"content": List({"text": STRING, "type": STRING}), "role": STRING})


@dataclass(frozen=True)
class StandIn:
    """One Hub dataset's schema and a generator of a few rows in it.

    Args:
        hub_id: the dataset's Hub id; the stand-in is written to `<root>/<hub_id>`.
        card: the dataset card the schema was copied from.
        features: per configuration name, the features in the card's order.
        splits: per configuration name, {split: number of rows}.
        rows: `(config, split, n, rng) -> list of rows`.
        files: where a split's Parquet file lives in the repository, formatted with `config` and `split`.

    A card without `config_name`s has one configuration, which `datasets` calls "default".
    """

    hub_id: str
    card: str
    features: dict[str, Features]
    splits: dict[str, dict[str, int]]
    rows: Callable[[str, str, int, random.Random], list[dict]]
    files: str = "data/{split}-00000-of-00001.parquet"


# --- small images in the formats the real datasets store ---------------------------------------------------------

COLORS = {"red": (200, 40, 40), "blue": (40, 80, 200), "green": (40, 150, 60), "yellow": (230, 200, 40)}


def _encoded(image: PILImage.Image, fmt: str) -> dict:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return {"bytes": buffer.getvalue(), "path": None}


def photo(rng: random.Random, color: str, count: int = 1, size=(96, 72), mode: str = "RGB") -> dict:
    """A JPEG 'photo' (COCO, Flickr, OpenImages are JPEG): sky, ground and `count` objects of `color`."""
    image = PILImage.new("RGB", size, (135, 180, 225))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, size[1] * 2 // 3, size[0], size[1]], fill=(90, 140, 70))
    for i in range(count):
        x = 8 + i * (size[0] - 16) // max(count, 1) + rng.randint(0, 4)
        draw.ellipse([x, size[1] // 3, x + 16, size[1] // 3 + 16], fill=COLORS[color])
    return _encoded(image.convert(mode), "JPEG")


def chart(values: dict[str, float]) -> dict:
    """A PNG bar chart with its labels and values written on it (ChartQA's charts are PNG)."""
    image = PILImage.new("RGB", (120, 90), "white")
    draw = ImageDraw.Draw(image)
    top = max(values.values())
    for i, (label, value) in enumerate(values.items()):
        x, height = 10 + i * 36, int(60 * value / top)
        draw.rectangle([x, 75 - height, x + 24, 75], fill=(70, 110, 180))
        draw.text((x, 64 - height), f"{value:g}", fill="black")
        draw.text((x, 77), label[:6], fill="black")
    return _encoded(image, "PNG")


def page(lines: list[str], size=(96, 120), fmt: str = "PNG") -> dict:
    """A document page (PNG, as DocVQA's scans are stored) or a sign in a photo (JPEG) with `lines` of text."""
    image = PILImage.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((6, 6 + 14 * i), line, fill="black")
    return _encoded(image, fmt)


def figure(points: int, rng: random.Random) -> dict:
    """A PNG geometry figure: a polygon with `points` vertices (Geo170K / MathV360K figures are PNG)."""
    image = PILImage.new("RGB", (80, 80), "white")
    corners = [(rng.randint(5, 75), rng.randint(5, 75)) for _ in range(points)]
    ImageDraw.Draw(image).polygon(corners, outline="black")
    return _encoded(image, "PNG")


def digit(label: int, rng: random.Random, fashion: bool = False) -> dict:
    """A 28x28 greyscale PNG, as MNIST and Fashion-MNIST store theirs."""
    image = PILImage.new("L", (28, 28), 0)
    draw = ImageDraw.Draw(image)
    if fashion:
        draw.rectangle([6 + label % 3, 5, 22 - label % 4, 23], fill=180 + rng.randint(0, 60))
    else:
        draw.text((9 + rng.randint(-2, 2), 7), str(label), fill=255)
    return _encoded(image, "PNG")


# --- the datasets ------------------------------------------------------------------------------------------------

VQA_ROWS = [
    ("What color is the bus?", "red", "red", 1),
    ("How many dogs are there?", "2", "blue", 2),
    ("Is the man wearing a hat?", "yes", "green", 1),
    ("What sport is being played?", "tennis", "yellow", 1),
    ("What color is the umbrella?", "blue", "blue", 1),
    ("How many birds are in the sky?", "3", "yellow", 3),
    ("Is it raining?", "no", "green", 1),
    ("What is the boy holding?", "kite", "red", 1),
    ("What color are the flowers?", "yellow", "yellow", 4),
    ("How many people are in the boat?", "4", "red", 4),
    ("Is the traffic light green?", "yes", "green", 1),
    ("What animal is on the grass?", "cat", "blue", 1),
]


def _vqav2_rows(config, split, n, rng):
    return [
        {"multiple_choice_answer": a, "question": q, "image": photo(rng, color, count)}
        for q, a, color, count in (VQA_ROWS * 2)[:n]
    ]


CHARTS = [
    ({"USA": 42, "UK": 35, "Chile": 12}, "What is the value of the tallest bar?", "42"),
    ({"2018": 18.5, "2019": 21.0, "2020": 16.5}, "Which year has the lowest value?", "2020"),
    ({"Cars": 55, "Bikes": 30, "Buses": 15}, "What is the difference between Cars and Bikes?", "25"),
    ({"Q1": 7, "Q2": 9, "Q3": 11}, "Is the value of Q3 greater than Q1?", "Yes"),
    ({"Apple": 38, "Samsung": 27, "Other": 35}, "What percentage does Samsung hold?", "27"),
    ({"Men": 48, "Women": 52}, "Which group is larger?", "Women"),
]


def _chartqa_rows(config, split, n, rng):
    return [
        {"image": chart(values), "query": q, "label": [a], "human_or_machine": i % 2}
        for i, (values, q, a) in enumerate((CHARTS * 3)[:n])
    ]


DOCS = [
    (
        ["MEMORANDUM", "To: R. Smith", "Date: May 4, 1998", "Re: budget"],
        "What is the date of the memo?",
        ["May 4, 1998", "may 4, 1998"],
        ["layout"],
    ),
    (["INVOICE No. 4521", "Total: $1,250.00"], "What is the invoice number?", ["4521"], ["form"]),
    (["Quarterly Report", "Page 3 of 12"], "How many pages does the report have?", ["12"], ["layout"]),
    (["From: Dr. Lee", "To: Board members"], "Who is the sender?", ["Dr. Lee", "Lee"], ["handwritten", "form"]),
    (
        ["Table 2: Sales", "Region  Units", "East  320"],
        "How many units were sold in the East?",
        ["320"],
        ["table/list"],
    ),
]


def _docvqa_rows(config, split, n, rng):
    withheld = split == "test"  # the benchmark's test answers are not published: the stand-in stores null
    rows = []
    for i, (lines, q, answers, types) in enumerate((DOCS * 3)[:n]):
        if config == "DocVQA":
            rows.append(
                {
                    "questionId": str(49153 + i),
                    "question": q,
                    "question_types": None if withheld else types,
                    "image": page(lines),
                    "docId": 14465 + i,
                    "ucsf_document_id": f"txpp0{227 + i}",
                    "ucsf_document_page_no": str(1 + i % 3),
                    "answers": None if withheld else answers,
                    "data_split": split,
                }
            )
        else:
            rows.append(
                {
                    "questionId": str(65718 + i),
                    "question": q,
                    "answers": None if withheld else answers,
                    "answer_type": None if withheld else ["single span"],
                    "image": page(lines, size=(120, 160)),
                    "image_url": f"https://example.org/infographic_{i}.png",
                    "operation/reasoning": None if withheld else ["counting"],
                    "ocr": " ".join(lines),
                    "data_split": split,
                }
            )
    return rows


SIGNS = [
    ("what is the name of the store?", "SPAR", "spar", ["Grocery store", "Building"]),
    ("what number is on the bus?", "42", "42", ["Bus", "Vehicle"]),
    ("what brand is the bottle?", "EVIAN", "evian", ["Bottle"]),
    ("what does the sign say?", "STOP", "stop", ["Traffic sign"]),
    ("what year is on the coin?", "1999", "1999", ["Coin"]),
]


def _textvqa_rows(config, split, n, rng):
    withheld = split == "test"
    rows = []
    for i, (q, text, answer, classes) in enumerate((SIGNS * 3)[:n]):
        # Ten human answers, most of them the canonical one, a few variants (as TextVQA's are).
        humans = [answer] * 7 + [text, f"{answer} sign", "unanswerable"]
        rows.append(
            {
                "image_id": f"{rng.getrandbits(64):016x}",
                "question_id": 34602 + i,
                "question": q,
                "question_tokens": q.rstrip("?").split() + ["?"],
                "image": page([text], size=(80, 40), fmt="JPEG"),
                "image_width": 80,
                "image_height": 40,
                "flickr_original_url": f"https://farm1.staticflickr.com/{i}/o.jpg",
                "flickr_300k_url": f"https://farm1.staticflickr.com/{i}/z.jpg",
                "answers": None if withheld else humans,
                "image_classes": classes,
                "set_name": split if split != "validation" else "val",
                "ocr_tokens": [text.lower()],
            }
        )
    return rows


PREFERENCES = [
    (
        "Describe the image in detail.",
        "The image shows a grassy field under a clear blue sky. A single red ball lies in the middle of the field, "
        "casting a small shadow on the grass. There are no people or animals visible, and the scene looks calm and "
        "sunny, like an afternoon in a park.",
        "The image shows a crowded beach with several people playing volleyball near the water. A red umbrella stands "
        "in the sand and a dog is running towards the waves, while boats sail in the distance.",
    ),
    (
        "What objects can you see in this picture?",
        "I can see two blue round objects, probably balls, resting on green grass. Above them is a pale blue sky "
        "without clouds. Nothing else, such as buildings or trees, appears in the picture.",
        "I can see two blue cars parked next to a tall building, a tree with yellow leaves and a man walking a dog "
        "on the sidewalk. A traffic light is visible on the right side.",
    ),
    (
        "Is there anything unusual in this image?",
        "Nothing looks unusual: it is a simple outdoor scene with a green object on the grass and a blue sky above "
        "it. The lighting is even and the colours are natural, with no visible people or text.",
        "Yes, there is a giraffe standing on the roof of a car, which is very unusual. The car is parked in a "
        "parking lot surrounded by snow, and a person is taking a photo of it.",
    ),
]


def _rlaif_rows(config, split, n, rng):
    rows = []
    for i, (question, chosen, rejected) in enumerate((PREFERENCES * 4)[:n]):
        color = list(COLORS)[i % len(COLORS)]
        rows.append(
            {
                "chosen": [{"content": [{"text": chosen, "type": "text"}], "role": "assistant"}],
                "rejected": [{"content": [{"text": rejected, "type": "text"}], "role": "assistant"}],
                # Some source photos are greyscale JPEGs (mode L), as in the card's example row.
                "images": [photo(rng, color, 1 + i % 3, mode="L" if i % 3 == 2 else "RGB")],
                "prompt": [
                    {
                        "content": [{"text": None, "type": "image"}, {"text": question, "type": "text"}],
                        "role": "user",
                    }
                ],
            }
        )
    return rows


# (problem, solution trace, original answer, number of vertices of the figure). The traces have the dataset's form:
# reasoning inside <think>, a blank line, the final answer inside <answer>; numbers other than the answer appear in
# the reasoning, and multiple-choice answers are option letters.
R1_PROBLEMS = [
    (
        "Based on the image, what is the measure of angle C in triangle ABC?\n"
        "Choices:\nA: 45°\nB: 60°\nC: 90°\nD: 30°",
        "<think>The figure shows triangle ABC with a right angle at A and angle B = 45°. The angles of a triangle "
        "add up to 180°, so angle C = 180° - 90° - 45° = 45°. Among the choices, 45° is option A, so the correct "
        "answer is A.</think>\n\n<answer>A</answer>",
        "Answer: A",
        3,
    ),
    (
        "How many apples are left in the basket after Tom takes half of them?",
        "<think>I count 12 apples in the basket. Tom takes half of them: 12 / 2 = 6, so 6 apples are left."
        "</think>\n\n<answer>6</answer>",
        "6",
        4,
    ),
    (
        "What fraction of the square is shaded?",
        "<think>The square is divided into 4 equal parts and 3 of them are shaded, so the shaded fraction is "
        "3 out of 4.</think>\n\n<answer>\\frac{3}{4}</answer>",
        "3/4",
        4,
    ),
    (
        "In the right triangle shown, the legs are 2 and 2\\sqrt{2}. What is the length of the hypotenuse?",
        "<think>By the Pythagorean theorem the hypotenuse is \\sqrt{2^2 + (2\\sqrt{2})^2} = \\sqrt{4 + 8} = "
        "\\sqrt{12} = 2\\sqrt{3}.</think>\n\n<answer>2\\sqrt{3}</answer>",
        "2\\sqrt{3}",
        3,
    ),
    (
        "Which shape in the image has the largest area?\nChoices:\nA: the circle\nB: the square\nC: the triangle",
        "<think>The square has side 4, area 16; the circle has radius 2, area about 12.6; the triangle has base 4 "
        "and height 4, area 8. The square is the largest, which is option B.</think>\n\n<answer>B</answer>",
        "Answer: B",
        4,
    ),
    (
        "What is the sum of the two tallest bars in the chart?",
        "<think>The bars read 42, 35 and 12. The two tallest are 42 and 35, and 42 + 35 = 77.</think>\n\n"
        "<answer>77</answer>",
        "77",
        4,
    ),
    (
        "Find x in the figure if the two marked angles are supplementary and one of them is 145°.",
        "<think>Supplementary angles add up to 180°, so x = 180° - 145° = 35°.</think>\n\n<answer>35°</answer>",
        "35",
        5,
    ),
    (
        "What color is the largest shape in the image?",
        "<think>There are three shapes: a small blue triangle, a medium green square and a large red circle. The "
        "largest one is the circle, which is red.</think>\n\n<answer>red</answer>",
        "red",
        6,
    ),
    (
        "What is the length of side BC if AB = 6 and AC = 4.5 in the right triangle with the right angle at C?",
        "<think>AB is the hypotenuse, so BC = \\sqrt{6^2 - 4.5^2} = \\sqrt{36 - 20.25} = \\sqrt{15.75} \\approx "
        "3.97.</think>\n\n<answer>3.97</answer>",
        "3.97",
        3,
    ),
    (
        "Which point lies on the circle?\nChoices:\nA: P\nB: Q\nC: R\nD: S",
        "<think>Points P and Q are inside the circle, S is outside, and R lies exactly on it. So the correct answer "
        "is C.</think>\n\n<answer>C</answer>",
        "Answer: C",
        5,
    ),
]


def _open_r1_rows(config, split, n, rng):
    return [
        {
            "image": figure(vertices, rng),
            "problem": problem,
            "solution": solution,
            "original_question": f"Question: {problem}",
            "original_answer": original,
        }
        for problem, solution, original, vertices in (R1_PROBLEMS * 2)[:n]
    ]


CAPTIONS = [
    (
        "red",
        [
            "A red ball lies on the green grass.",
            "A red ball in a park.",
            "A ball on a lawn under a blue sky.",
            "Something red on the grass.",
            "A lone red ball outdoors.",
        ],
    ),
    (
        "blue",
        [
            "Two blue balls on a field.",
            "Blue balls on the grass.",
            "A pair of blue spheres outside.",
            "Two balls under the sky.",
            "Blue toys on a lawn.",
        ],
    ),
    (
        "yellow",
        [
            "Three yellow flowers in a meadow.",
            "Yellow blossoms in the grass.",
            "Flowers on a sunny day.",
            "Three yellow spots on green grass.",
            "A meadow with yellow flowers.",
        ],
    ),
    (
        "green",
        [
            "A green frisbee on the lawn.",
            "A frisbee lying in the grass.",
            "Green disc on a field.",
            "A toy on the grass.",
            "A green object under a blue sky.",
        ],
    ),
]


def _flickr_rows(config, split, n, rng):
    rows = []
    for i in range(n):
        color, captions = CAPTIONS[i % len(CAPTIONS)]
        image_id = 1000092795 + 7 * i
        rows.append(
            {
                "image": photo(rng, color, 1 + i % 3),
                "caption": captions,
                "sentids": [str(5 * i + k) for k in range(5)],
                "img_id": str(i),
                "filename": f"{image_id}.jpg",
            }
        )
    return rows


def _mnist_rows(config, split, n, rng):
    fashion = config == "fashion_mnist"
    return [{"image": digit(i % 10, rng, fashion), "label": i % 10} for i in range(n)]


BEANS = ("angular_leaf_spot", "bean_rust", "healthy")


def _beans_rows(config, split, n, rng):
    rows = []
    for i in range(n):
        label = i % 3
        image = PILImage.new("RGB", (64, 64), (60, 140 + 20 * label, 50))
        ImageDraw.Draw(image).ellipse([20, 20, 30 + 8 * label, 30], fill=(150, 90 + 30 * label, 40))
        path = f"/home/user/.cache/beans/{split}/{BEANS[label]}/{BEANS[label]}_{split}.{i}.jpg"
        rows.append({"image_file_path": path, "image": _encoded(image, "JPEG"), "labels": label})
    return rows


FASHION = [
    "T - shirt / top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]

DOCVQA_FEATURES = Features(
    {
        "questionId": STRING,
        "question": STRING,
        "question_types": STRINGS,
        "image": Image(),
        "docId": Value("int64"),
        "ucsf_document_id": STRING,
        "ucsf_document_page_no": STRING,
        "answers": STRINGS,
        "data_split": STRING,
    }
)
INFOGRAPHICVQA_FEATURES = Features(
    {
        "questionId": STRING,
        "question": STRING,
        "answers": STRINGS,
        "answer_type": STRINGS,
        "image": Image(),
        "image_url": STRING,
        "operation/reasoning": STRINGS,
        "ocr": STRING,
        "data_split": STRING,
    }
)

STANDINS: dict[str, StandIn] = {
    s.hub_id: s
    for s in [
        StandIn(
            hub_id="merve/vqav2-small",
            card="https://huggingface.co/datasets/merve/vqav2-small/blob/main/README.md",
            features={"default": Features({"multiple_choice_answer": STRING, "question": STRING, "image": Image()})},
            splits={"default": {"validation": 12}},  # the card's only split (21,435 rows)
            rows=_vqav2_rows,
        ),
        StandIn(
            hub_id="HuggingFaceM4/ChartQA",
            card="https://huggingface.co/datasets/HuggingFaceM4/ChartQA/blob/main/README.md",
            features={
                "default": Features(
                    {
                        "image": Image(),
                        "query": STRING,
                        "label": STRINGS,  # a list holding the reference answer
                        "human_or_machine": ClassLabel(names=["human", "machine"]),
                    }
                )
            },
            splits={"default": {"train": 6, "val": 2, "test": 4}},  # "val", not "validation"
            rows=_chartqa_rows,
        ),
        StandIn(
            hub_id="lmms-lab/DocVQA",
            card="https://huggingface.co/datasets/lmms-lab/DocVQA/blob/main/README.md",
            features={"DocVQA": DOCVQA_FEATURES, "InfographicVQA": INFOGRAPHICVQA_FEATURES},
            # The card lists validation and test only (its train files are commented out of `configs:`).
            splits={"DocVQA": {"validation": 10, "test": 3}, "InfographicVQA": {"validation": 2, "test": 2}},
            rows=_docvqa_rows,
            files="{config}/{split}-00000-of-00001.parquet",
        ),
        StandIn(
            hub_id="lmms-lab/textvqa",
            card="https://huggingface.co/datasets/lmms-lab/textvqa/blob/main/README.md",
            features={
                "default": Features(
                    {
                        "image_id": STRING,
                        "question_id": Value("int32"),
                        "question": STRING,
                        "question_tokens": STRINGS,
                        "image": Image(),
                        "image_width": Value("int32"),
                        "image_height": Value("int32"),
                        "flickr_original_url": STRING,
                        "flickr_300k_url": STRING,
                        "answers": STRINGS,  # 10 human answers (withheld in test)
                        "image_classes": STRINGS,
                        "set_name": STRING,
                        "ocr_tokens": STRINGS,
                    }
                )
            },
            splits={"default": {"train": 6, "validation": 4, "test": 2}},
            rows=_textvqa_rows,
        ),
        StandIn(
            hub_id="HuggingFaceH4/rlaif-v_formatted",
            card="https://huggingface.co/datasets/HuggingFaceH4/rlaif-v_formatted/blob/main/README.md",
            features={
                "default": Features(
                    {"chosen": MESSAGES, "rejected": MESSAGES, "images": List(Image()), "prompt": MESSAGES}
                )
            },
            splits={"default": {"train": 6, "test": 3}},
            rows=_rlaif_rows,
        ),
        StandIn(
            hub_id="lmms-lab/multimodal-open-r1-8k-verified",
            card="https://huggingface.co/datasets/lmms-lab/multimodal-open-r1-8k-verified (files: data/train-*; "
            "columns as TRL's examples/scripts/grpo_vlm.py reads them)",
            features={
                "default": Features(
                    {
                        "image": Image(),
                        "problem": STRING,
                        "solution": STRING,  # a whole reasoning trace: <think>...</think>\n\n<answer>...</answer>
                        "original_question": STRING,
                        "original_answer": STRING,
                    }
                )
            },
            splits={"default": {"train": 10}},  # one split of 7.69k rows
            rows=_open_r1_rows,
        ),
        StandIn(
            hub_id="lmms-lab/flickr30k",
            card="https://huggingface.co/datasets/lmms-lab/flickr30k/blob/main/README.md",
            features={
                "default": Features(
                    {"image": Image(), "caption": STRINGS, "sentids": STRINGS, "img_id": STRING, "filename": STRING}
                )
            },
            splits={"default": {"test": 12}},  # all 31,783 images in one split named test
            rows=_flickr_rows,
        ),
        StandIn(
            hub_id="ylecun/mnist",
            card="https://huggingface.co/datasets/ylecun/mnist/blob/main/README.md (files mnist/{train,test}-*)",
            features={"mnist": Features({"image": Image(), "label": ClassLabel(names=[str(d) for d in range(10)])})},
            splits={"mnist": {"train": 10, "test": 10}},
            rows=_mnist_rows,
            files="{config}/{split}-00000-of-00001.parquet",
        ),
        StandIn(
            hub_id="zalando-datasets/fashion_mnist",
            card="https://huggingface.co/datasets/zalando-datasets/fashion_mnist/blob/main/README.md "
            "(files fashion_mnist/{train,test}-*)",
            features={"fashion_mnist": Features({"image": Image(), "label": ClassLabel(names=FASHION)})},
            splits={"fashion_mnist": {"train": 10, "test": 10}},
            rows=_mnist_rows,
            files="{config}/{split}-00000-of-00001.parquet",
        ),
        StandIn(
            hub_id="AI-Lab-Makerere/beans",
            card="https://huggingface.co/datasets/AI-Lab-Makerere/beans/blob/main/README.md",
            features={
                "default": Features(
                    {"image_file_path": STRING, "image": Image(), "labels": ClassLabel(names=list(BEANS))}
                )
            },
            splits={"default": {"train": 6, "validation": 3, "test": 3}},
            rows=_beans_rows,
        ),
    ]
}


def _card(standin: StandIn, sizes: dict[str, dict[str, tuple[int, int]]]) -> str:
    """README.md with the card's `dataset_info` and `configs:` YAML, as the real repository has them."""
    infos, configs = [], []
    for config, features in standin.features.items():
        splits = [{"name": s, "num_bytes": float(b), "num_examples": len_} for s, (b, len_) in sizes[config].items()]
        info = {"features": features._to_yaml_list(), "splits": splits}
        infos.append(info if config == "default" else {"config_name": config, **info})
        patterns = {
            s: standin.files.format(config=config, split=s).replace("00000-of-00001.parquet", "*")
            for s in sizes[config]
        }
        configs.append({"config_name": config, "data_files": [{"split": s, "path": p} for s, p in patterns.items()]})
    meta = {"dataset_info": infos[0] if len(infos) == 1 else infos, "configs": configs}
    return (
        "---\n"
        + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
        + f"---\n\n# Offline stand-in for `{standin.hub_id}`\n\nWritten by `vlm_recipes.data.standins`: the splits, "
        f"columns and feature types of the real dataset (schema from {standin.card}), a few rows of drawn content.\n"
    )


def write_standin(hub_id: str, root: str | Path) -> Path:
    """Write the stand-in of `hub_id` to `<root>/<hub_id>` (replacing its files) and return that folder, which
    `load_dataset` reads like the Hub repository."""
    if hub_id not in STANDINS:
        raise ValueError(f"No stand-in for {hub_id!r}; stand-ins exist for {sorted(STANDINS)}.")
    standin = STANDINS[hub_id]
    folder = Path(root) / hub_id
    sizes: dict[str, dict[str, tuple[int, int]]] = {}
    for config, features in standin.features.items():
        sizes[config] = {}
        for split, n in standin.splits[config].items():
            rows = standin.rows(config, split, n, random.Random(f"{hub_id}/{config}/{split}"))
            ds = Dataset.from_list(rows, features=features)
            path = folder / standin.files.format(config=config, split=split)
            path.parent.mkdir(parents=True, exist_ok=True)
            ds.to_parquet(str(path))
            sizes[config][split] = (ds.data.nbytes, len(ds))
    (folder / "README.md").write_text(_card(standin, sizes))
    return folder


def write_standins(root: str | Path, hub_ids=None) -> dict[str, Path]:
    """Write the stand-ins of `hub_ids` (default: all) under `root`; {hub id: folder}."""
    return {hub_id: write_standin(hub_id, root) for hub_id in (hub_ids or STANDINS)}


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(
            f"usage: python -m vlm_recipes.data.standins <folder> [hub ids...] (known: {sorted(STANDINS)})"
        )
    for name, path in write_standins(sys.argv[1], sys.argv[2:]).items():
        print(f"{name}: {path}")

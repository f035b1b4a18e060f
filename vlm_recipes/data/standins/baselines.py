"""Stand-ins of the CLIP and ViT baselines' datasets: lmms-lab-encoder/flickr30k, ylecun/mnist,
zalando-datasets/fashion_mnist, AI-Lab-Makerere/beans."""

from __future__ import annotations

from datasets import ClassLabel, Features, Image
from PIL import Image as PILImage
from PIL import ImageDraw

from .drawing import digit, encoded, photo
from .schema import STRING, STRINGS, StandIn

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
        rows.append({"image_file_path": path, "image": encoded(image, "JPEG"), "labels": label})
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


RECORDS = (
    StandIn(
        hub_id="lmms-lab-encoder/flickr30k",
        card="https://huggingface.co/datasets/lmms-lab-encoder/flickr30k/blob/main/README.md",
        features={
            "default": Features(
                {"image": Image(), "caption": STRINGS, "sentids": STRINGS, "img_id": STRING, "filename": STRING}
            )
        },
        splits={"default": {"test": 12}},  # all 31,783 images in one split named test
        rows=_flickr_rows,
        # lmms-lab/flickr30k's card at 0d6d9049be2e08261be315e731e0d8054c1d1c03.
        card_features="""
            - {name: image, dtype: image}
            - {name: caption, sequence: string}
            - {name: sentids, sequence: string}
            - {name: img_id, dtype: string}
            - {name: filename, dtype: string}
        """,
    ),
    StandIn(
        hub_id="ylecun/mnist",
        card="https://huggingface.co/datasets/ylecun/mnist/blob/main/README.md (files mnist/{train,test}-*)",
        features={"mnist": Features({"image": Image(), "label": ClassLabel(names=[str(d) for d in range(10)])})},
        splits={"mnist": {"train": 10, "test": 10}},
        rows=_mnist_rows,
        files="{config}/{split}-00000-of-00001.parquet",
        # The card's dataset_info (configuration mnist; added in 6c5fed17b4a853735e7d56709d184e50374af4a6, unchanged
        # by the Parquet conversion that moved the files to mnist/{train,test}-*).
        card_features="""
            - {name: image, dtype: image}
            - name: label
              dtype:
                class_label:
                  names: {'0': '0', '1': '1', '2': '2', '3': '3', '4': '4', '5': '5', '6': '6', '7': '7', '8': '8',
                          '9': '9'}
        """,
    ),
    StandIn(
        hub_id="zalando-datasets/fashion_mnist",
        card="https://huggingface.co/datasets/zalando-datasets/fashion_mnist/blob/main/README.md "
        "(files fashion_mnist/{train,test}-*)",
        features={"fashion_mnist": Features({"image": Image(), "label": ClassLabel(names=FASHION)})},
        splits={"fashion_mnist": {"train": 10, "test": 10}},
        rows=_mnist_rows,
        files="{config}/{split}-00000-of-00001.parquet",
        # The card's dataset_info (configuration fashion_mnist), as the card on main and the `datasets` library's
        # fashion_mnist.py (7ed16b2d6357495fc3f7a93e0ac952dcde171f10) name the classes: "T - shirt / top", spaced.
        card_features="""
            - {name: image, dtype: image}
            - name: label
              dtype:
                class_label:
                  names: {'0': T - shirt / top, '1': Trouser, '2': Pullover, '3': Dress, '4': Coat, '5': Sandal,
                          '6': Shirt, '7': Sneaker, '8': Bag, '9': Ankle boot}
        """,
    ),
    StandIn(
        hub_id="AI-Lab-Makerere/beans",
        card="https://huggingface.co/datasets/AI-Lab-Makerere/beans/blob/main/README.md",
        features={
            "default": Features({"image_file_path": STRING, "image": Image(), "labels": ClassLabel(names=list(BEANS))})
        },
        splits={"default": {"train": 6, "validation": 3, "test": 3}},
        rows=_beans_rows,
        # The card on main (Parquet; its dataset_info as read for this check, revision not recorded).
        card_features="""
            - {name: image_file_path, dtype: string}
            - {name: image, dtype: image}
            - name: labels
              dtype: {class_label: {names: {'0': angular_leaf_spot, '1': bean_rust, '2': healthy}}}
        """,
    ),
)

"""Small drawn images in the formats the real datasets store: JPEG photos, PNG charts, pages, figures and digits."""

from __future__ import annotations

import io
import random

from PIL import Image as PILImage
from PIL import ImageDraw

COLORS = {"red": (200, 40, 40), "blue": (40, 80, 200), "green": (40, 150, 60), "yellow": (230, 200, 40)}


def encoded(image: PILImage.Image, fmt: str) -> dict:
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
    return encoded(image.convert(mode), "JPEG")


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
    return encoded(image, "PNG")


def page(lines: list[str], size=(96, 120), fmt: str = "PNG") -> dict:
    """A document page (PNG, as DocVQA's scans are stored) or a sign in a photo (JPEG) with `lines` of text."""
    image = PILImage.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((6, 6 + 14 * i), line, fill="black")
    return encoded(image, fmt)


def figure(points: int, rng: random.Random) -> dict:
    """A PNG geometry figure: a polygon with `points` vertices (Geo170K / MathV360K figures are PNG)."""
    image = PILImage.new("RGB", (80, 80), "white")
    corners = [(rng.randint(5, 75), rng.randint(5, 75)) for _ in range(points)]
    ImageDraw.Draw(image).polygon(corners, outline="black")
    return encoded(image, "PNG")


def digit(label: int, rng: random.Random, fashion: bool = False) -> dict:
    """A 28x28 greyscale PNG, as MNIST and Fashion-MNIST store theirs."""
    image = PILImage.new("L", (28, 28), 0)
    draw = ImageDraw.Draw(image)
    if fashion:
        draw.rectangle([6 + label % 3, 5, 22 - label % 4, 23], fill=180 + rng.randint(0, 60))
    else:
        draw.text((9 + rng.randint(-2, 2), 7), str(label), fill=255)
    return encoded(image, "PNG")


# --- the datasets ------------------------------------------------------------------------------------------------

"""Writes the small example inputs of recipes/generate.py (run from the repository root; already committed):

- examples/products/: four drawn product photos and a metadata.jsonl with each one's name and category, for the
  zero-shot product description configs (`generate_product.yaml`);
- examples/video/shapes.mp4: 16 frames (64x64, 4 fps) of a shape changing colour and moving, for video input.

    python examples/make_examples.py
"""

import json
import random
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

from vlm_recipes.data import synthetic

ROOT = Path(__file__).resolve().parent
PRODUCTS = [
    ("mug.png", "Classic Red Mug", "kitchenware", "mug"),
    ("lamp.png", "Arc Desk Lamp", "lighting", "lamp"),
    ("tshirt.png", "Basic Crew T-Shirt", "apparel", "tshirt"),
    ("ball.png", "Pro Match Football", "sports", "ball"),
]


def draw_product(kind: str, size: int = 128) -> Image.Image:
    image = Image.new("RGB", (size, size), (245, 245, 240))
    d = ImageDraw.Draw(image)
    if kind == "mug":
        d.rectangle((34, 34, 84, 100), fill=(200, 30, 40))
        d.ellipse((76, 50, 104, 84), outline=(200, 30, 40), width=7)
    elif kind == "lamp":
        d.rectangle((40, 104, 88, 112), fill=(60, 60, 60))
        d.line((64, 104, 64, 50, 90, 30), fill=(60, 60, 60), width=5)
        d.polygon([(74, 22), (108, 22), (100, 46), (82, 46)], fill=(240, 200, 40))
    elif kind == "tshirt":
        d.polygon([(40, 28), (88, 28), (112, 48), (98, 60), (90, 54), (90, 108), (38, 108), (38, 54), (30, 60),
                   (16, 48)], fill=(40, 90, 200))  # fmt: skip
    else:
        d.ellipse((28, 28, 100, 100), fill=(255, 255, 255), outline=(20, 20, 20), width=3)
        d.regular_polygon((64, 64, 14), 5, fill=(20, 20, 20))
    return image


def main() -> None:
    products = ROOT / "products"
    products.mkdir(exist_ok=True)
    lines = []
    for file_name, name, category, kind in PRODUCTS:
        draw_product(kind).save(products / file_name)
        lines.append(json.dumps({"file_name": file_name, "name": name, "category": category}))
    (products / "metadata.jsonl").write_text("\n".join(lines) + "\n")

    video = ROOT / "video"
    video.mkdir(exist_ok=True)
    rng = random.Random(0)
    colours = list(synthetic.COLORS)
    with av.open(str(video / "shapes.mp4"), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=4)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for i in range(16):
            frame = synthetic.render_scene(rng, 64, [(colours[i // 4], "circle")], region=("left", "right")[i % 2])
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.asarray(frame), format="rgb24")))
        container.mux(stream.encode())


if __name__ == "__main__":
    main()

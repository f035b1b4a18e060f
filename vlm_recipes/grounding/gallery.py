"""A gallery of grounding answers: each held-out image with its reference box and the model's predicted box.

PIL draws (as the image grids of vlm_recipes/baselines/plots.py, which keep the pixels); what this module adds is
taking each answer back from the family's box convention to pixels of the image (`BoxConvention.from_frame`, with
the row's `box_frame` and `image_size`), and a PNG grid with a caption per tile (IoU, or "no box" when the answer
states none). The training recipes write it as `grounding_gallery.png` next to `eval_results.json`.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from .boxes import BoxConvention, box_iou, parse_box

REFERENCE_COLOR = (0, 200, 0)  # green: the reference box
PREDICTED_COLOR = (255, 0, 255)  # magenta: the model's box
TILE = 160  # each image is scaled to fit a TILE x TILE tile, so small images and large photos read alike
CAPTION = 14


def _scaled(box, scale: float, offset: tuple[int, int]) -> list[float]:
    return [
        box[0] * scale + offset[0],
        box[1] * scale + offset[1],
        box[2] * scale + offset[0],
        box[3] * scale + offset[1],
    ]


def draw_gallery(images, predicted, references, path, captions=None, columns: int = 6, line_width: int = 2) -> Path:
    """A PNG grid of `images` (PIL), each with its reference box (green) and predicted box (magenta), both in pixels
    of that image (xyxy; a predicted None draws nothing and says "no box"). Returns `path`."""
    if not images:
        raise ValueError("draw_gallery needs at least one image.")
    rows = (len(images) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * TILE, rows * (TILE + CAPTION)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (image, guess, gold) in enumerate(zip(images, predicted, references)):
        image = image.convert("RGB")
        scale = min(TILE / image.width, TILE / image.height)
        shown = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.NEAREST)
        x0, y0 = (i % columns) * TILE, (i // columns) * (TILE + CAPTION)
        sheet.paste(shown, (x0, y0))
        draw.rectangle(_scaled(gold, scale, (x0, y0)), outline=REFERENCE_COLOR, width=line_width)
        if guess is not None:
            draw.rectangle(_scaled(guess, scale, (x0, y0)), outline=PREDICTED_COLOR, width=line_width)
        text = captions[i] if captions else ("no box" if guess is None else f"IoU {box_iou(guess, gold):.2f}")
        draw.text((x0 + 2, y0 + TILE), text, fill=(0, 0, 0))
    path = Path(path)
    sheet.save(path)
    return path


def gallery_from_answers(rows, predictions, path, max_images: int = 24) -> Path:
    """The gallery of the first `max_images` grounding rows (columns `images`, `bbox`, `image_size`, `box_frame`,
    vlm_recipes/grounding/data.py) and the model's answers to them."""
    n = min(len(rows), len(predictions), max_images)
    images, guesses, golds = [], [], []
    for i in range(n):
        row = rows[i]
        guess = parse_box(predictions[i])
        if guess is not None:
            guess = BoxConvention.from_frame(guess, row["image_size"], row["box_frame"])
        images.append(row["images"][0])
        guesses.append(guess)
        golds.append(tuple(row["bbox"]))
    return draw_gallery(images, guesses, golds, path)

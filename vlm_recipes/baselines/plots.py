"""The pictures people would rather look at than read: confusion matrices, score histograms, image grids.

matplotlib draws the charts (headless `Agg` backend); image grids are plain PIL so they keep the pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_matrix_png(counts: np.ndarray, class_names: list[str], path: Path, title: str) -> Path:
    """counts[true, predicted] as a heat map with the counts written in the cells."""
    plt = _pyplot()
    n = len(class_names)
    size = max(4.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(n), class_names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    peak = counts.max() or 1
    for i in range(n):
        for j in range(n):
            if counts[i, j]:
                color = "white" if counts[i, j] > peak / 2 else "black"
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7, color=color)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def histograms_png(scores: dict[str, np.ndarray], path: Path, title: str, xlabel: str) -> Path:
    """Overlaid histograms of several score sets (e.g. in- vs out-of-distribution)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    values = np.concatenate([np.asarray(v, dtype=float) for v in scores.values()])
    bins = np.linspace(values.min(), values.max() + 1e-9, 40)
    for label, v in scores.items():
        ax.hist(v, bins=bins, alpha=0.55, label=f"{label} (n={len(v)})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("images")
    ax.set_title(title, fontsize=10)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def image_grid_png(images: list, labels: list[str], path: Path, columns: int = 4, cell: int = 128) -> Path:
    """Images in a grid, each with its label (wrapped) underneath."""
    rows = max(1, -(-len(images) // columns))
    text_height = 40
    grid = Image.new("RGB", (columns * cell, rows * (cell + text_height)), "white")
    draw = ImageDraw.Draw(grid)
    for i, (image, label) in enumerate(zip(images, labels)):
        x, y = (i % columns) * cell, (i // columns) * (cell + text_height)
        thumb = image.convert("RGB")
        scale = (cell - 4) / max(thumb.size)  # small images are enlarged too, with visible pixels
        thumb = thumb.resize((max(1, round(thumb.width * scale)), max(1, round(thumb.height * scale))), Image.NEAREST)
        grid.paste(thumb, (x + (cell - thumb.width) // 2, y + (cell - thumb.height) // 2))
        width = max(8, cell // 7)  # characters per line at the default font
        lines = [label[j : j + width] for j in range(0, len(label), width)][:3]
        draw.multiline_text((x + 2, y + cell), "\n".join(lines), fill="black", spacing=1)
    grid.save(path)
    return path

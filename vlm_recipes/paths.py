"""Where the package keeps things on disk: the repository root (the recipes' offline default configs) and the one
cache folder (`$VLM_RECIPES_CACHE`, default `~/.cache/vlm_recipes`) that tiny checkpoints, row lengths, synthetic
videos and image hashes live under. A bottom-layer module: everything may import it, it imports nothing of ours."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_ENV = "VLM_RECIPES_CACHE"


def cache_root() -> Path:
    """The cache folder: `$VLM_RECIPES_CACHE`, or `~/.cache/vlm_recipes`."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "vlm_recipes"))

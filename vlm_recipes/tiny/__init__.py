"""Offline tiny models, built locally from the real architectures and processor classes (no Hub download).

Production code (model loading, merging, the CLIP recipes) reaches the builders only through
`vlm_recipes.models.sources.resolve`, where importing this package registers `resolve` below: it maps a
`tiny:<name>` to its cached checkpoint directory, building it once:

- `vlm_recipes.tiny.vlm`: tiny SmolVLM, Qwen2-VL, LLaVA-1.5, LLaVA-OneVision, LLaVA-NeXT, Qwen2.5-VL, Qwen3-VL,
  Qwen3.5, Gemma 3 and Gemma 4 (`tiny:smolvlm`, `tiny:qwen2_vl`, `tiny:llava`, `tiny:llava_onevision`,
  `tiny:llava_next`, `tiny:qwen2_5_vl`, `tiny:qwen3_vl`, `tiny:qwen3_5`, `tiny:gemma3`, `tiny:gemma4`, `-random`,
  `-sft`); the LLaVA builders are in `vlm_recipes.tiny.llava`, the others' in `vlm_recipes.tiny.qwen2_5_vl`,
  `.qwen3_vl`, `.qwen3_5` and `.gemma` (Gemma 3 and Gemma 4).
- `vlm_recipes.tiny.clip`: tiny CLIP (`tiny:clip`, `tiny:clip-random`).
- `vlm_recipes.tiny.blip`: tiny BLIP (`tiny:blip` captioning, `tiny:blip-itm` retrieval, `tiny:blip-vqa`).
- `vlm_recipes.tiny.common`: the cache, reproducible builds and atomic saving they share.
- `vlm_recipes.tiny.real_size`: real-size SmolVLM-256M / Qwen2-VL-2B / Qwen2.5-VL-3B / Qwen3-VL-2B / Qwen3.5-0.8B
  / gemma-3-4b-it / gemma-4-E2B-it
  architectures with random weights, for benchmarks (not cached, not behind `resolve`).

Build or rebuild from the command line: `python -m vlm_recipes.tiny build [--family smolvlm] [--stage sft] [--force]`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..models.sources import register_source
from .common import SHIPPED_BASES, TINY_PREFIX, shipped_root


def is_tiny(name_or_path: str) -> bool:
    return name_or_path.startswith(TINY_PREFIX)


def _module(name: str):
    """The builder module of `tiny:<name>`: CLIP, BLIP, or the VLM families."""
    if name.startswith(f"{TINY_PREFIX}clip"):
        from . import clip

        return clip
    if name == f"{TINY_PREFIX}blip" or name.startswith(f"{TINY_PREFIX}blip-"):
        from . import blip

        return blip
    from . import vlm

    return vlm


def _builder(name: str):
    return _module(name).build


def checkpoint_dir(name: str):
    """The cache folder of `tiny:<name>` (built or not): its name is the build's cache key."""
    return _module(name).checkpoint_dir(name)


def resolve(name_or_path: str) -> str:
    """Map `tiny:<name>` to its local checkpoint directory (building it if needed); pass anything else through.

    In a multi-process run (torch.distributed initialised) only each machine's local rank 0 builds, the others wait
    at a barrier: transformers' save_pretrained writes model files on global rank 0 only, so a checkpoint built by
    another rank would lack its weights. Every rank must therefore call this the same number of times (they do:
    the recipes resolve the same names in the same order)."""
    if not is_tiny(name_or_path):
        return name_or_path
    builder = _builder(name_or_path)
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return str(builder(name_or_path))
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        path = builder(name_or_path)
        dist.barrier()
        return str(path)
    dist.barrier()  # local rank 0 has built (or found) the checkpoint
    return str(builder(name_or_path))


register_source(TINY_PREFIX, resolve)


def ship(names=SHIPPED_BASES, root: Path | None = None) -> list[Path]:
    """Build (or take from the cache) each of `names` and copy its cache folder into `root` (default `tiny_bases/`),
    removing the shipped folders of earlier keys of the same names. Returns the shipped folders."""
    root = root or shipped_root()
    root.mkdir(parents=True, exist_ok=True)
    shipped = []
    for name in names:
        path = Path(resolve(name))
        stem = path.name.rsplit("-", 1)[0]  # the folder name without its key
        for old in root.glob(f"{stem}-*"):
            if old.name.rsplit("-", 1)[0] == stem and old.name != path.name:
                shutil.rmtree(old)
        if (root / path.name).exists():
            shutil.rmtree(root / path.name)
        shutil.copytree(path, root / path.name)
        shipped.append(root / path.name)
    return shipped

"""What every offline tiny-model build shares: the cache, reproducible builds, atomic saving.

Reproducible builds: CPU matmul kernels split their reductions by the number of intra-op threads, so the same
build run with 1 and with 2 threads writes different weights. Every build therefore runs with a fixed thread count
(`BUILD_THREADS`) and deterministic algorithms, whatever the process that builds first (pytest, a one-thread test
subprocess, `accelerate launch`) was started with; `tiny_build.json` records what the build depended on (thread
count, CPU capability, library versions, build seed). Bit equality across CPU types is not promised.
`VLM_RECIPES_TINY_SEED` (default 0) builds another, equally valid, tiny base (its own cache entry): the learning
benchmarks use it to check that the recipes' defaults do not depend on one lucky base.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch

from ..paths import cache_root  # noqa: F401  (the builders' cache folder)

TINY_PREFIX = "tiny:"  # `tiny:<name>` in model_name_or_path names an offline tiny checkpoint
# Intra-op threads of every build (see the module docstring). One: no parallel reduction at all, and no OpenMP
# barrier to spin on, so a build on a busy machine slows down only by its share of the cores (measured: two pinned
# threads next to another 2-thread job ran 10x slower). Costs ~25% on an idle 2-core machine.
BUILD_THREADS = 1
SEED_ENV = "VLM_RECIPES_TINY_SEED"


def build_seed() -> int:
    """The build seed from `$VLM_RECIPES_TINY_SEED` (default 0): shifts every seed of a build (initialisation,
    training data, batch order), so each value gives a different tiny base with its own cache entry."""
    value = os.environ.get(SEED_ENV, "0")
    if not value.lstrip("-").isdigit():
        raise ValueError(f"{SEED_ENV} must be an integer, got {value!r}.")
    return int(value)


def build_dependencies() -> dict:
    """What a build's weights depend on besides its recipe: part of the cache key and of `tiny_build.json`."""
    import tokenizers
    import transformers

    return {
        "threads": BUILD_THREADS,
        "deterministic_algorithms": True,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "seed": build_seed(),
    }


@contextmanager
def reproducible_build():
    """Run a build with `BUILD_THREADS` intra-op threads and deterministic algorithms; restore both afterwards."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(BUILD_THREADS)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def save_atomically(target: Path, model, processor, info: dict, force: bool = False) -> None:
    """Save into a temporary sibling directory and rename it to `target`, so that concurrent ranks and interrupted
    builds never see a half-written checkpoint."""
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        model.save_pretrained(tmp, is_main_process=True)  # safetensors
        processor.save_pretrained(tmp)
        if not (tmp / "config.json").exists():  # e.g. a non-zero rank of a distributed run: never cache that
            raise RuntimeError(f"Building {target.name}: the model files were not written; build it on rank 0.")
        (tmp / "tiny_build.json").write_text(json.dumps(info, indent=2))
        if force and target.exists():
            shutil.rmtree(target)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first: theirs is identical (deterministic build)
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

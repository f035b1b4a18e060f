"""Output directories that never hold two runs and never keep a half-written run."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

RESULTS_FILE = "eval_results.json"


@contextmanager
def output_dir(path: str | Path, overwrite: bool = False):
    """Yield `path` as a Path, created; refuse one that holds another finished run (unless `overwrite`), and
    remove the directory again if this run created it and fails."""
    out = Path(path)
    if out.exists() and not overwrite and (out / RESULTS_FILE).exists():
        raise FileExistsError(
            f"{out} already holds a run ({RESULTS_FILE}). Choose another output_dir, or pass "
            "--overwrite_output_dir true."
        )
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        yield out
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise

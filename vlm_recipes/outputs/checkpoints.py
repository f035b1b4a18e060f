"""Checkpoints that survive a crash: which one to resume from, and saving so the newest one is always readable.

transformers' Trainer writes `checkpoint-<step>/` file by file, in place. A process killed while saving (SIGKILL,
out of memory, preemption) leaves a directory that looks like the newest checkpoint but lacks the optimizer or the
trainer state, and resuming from it fails or silently restarts the schedule. Here:

- `CompleteCheckpoints` (a Trainer mixin) writes a marker file into a checkpoint once every rank has finished
  writing it, and only then lets the Trainer rotate old checkpoints away (so with `save_total_limit: 1` the previous
  complete checkpoint is deleted only after the new one is complete). It also replaces Trainer's pickled
  `training_args.bin` (which holds `hub_token` in clear text) by a redacted `training_config.json`.
- `vlm_recipes.outputs.resume_point` decides, from these markers, where a run starts.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from pathlib import Path

logger = logging.getLogger(__name__)

COMPLETE_MARKER = "checkpoint_complete.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def _step(path: Path) -> int:
    return int(_CHECKPOINT.match(path.name).group(1))


def checkpoints(out: Path) -> list[Path]:
    """Every `checkpoint-<step>` directory in `out`, complete or not, oldest step first."""
    if not out.is_dir():
        return []
    return sorted((p for p in out.iterdir() if p.is_dir() and _CHECKPOINT.match(p.name)), key=_step)


def is_complete(checkpoint: Path) -> bool:
    return (checkpoint / COMPLETE_MARKER).is_file()


def complete_checkpoints(out: Path) -> list[Path]:
    return [c for c in checkpoints(out) if is_complete(c)]


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def mark_complete(checkpoint: Path, step: int) -> None:
    """Flush the checkpoint's files to disk, then write the marker atomically (write a temp file, rename)."""
    for f in checkpoint.rglob("*"):
        if f.is_file():
            _fsync(f)
    tmp = checkpoint / (COMPLETE_MARKER + ".tmp")
    tmp.write_text(json.dumps({"global_step": step, "time": time.time()}) + "\n")
    _fsync(tmp)
    os.replace(tmp, checkpoint / COMPLETE_MARKER)
    _fsync(checkpoint)


def remove_incomplete(out: Path) -> None:
    """Delete checkpoints a crash left half-written; they can never be resumed from."""
    for c in checkpoints(out):
        if not is_complete(c):
            logger.warning("Removing %s: incomplete (the run stopped while saving it).", c)
            shutil.rmtree(c, ignore_errors=True)


class CompleteCheckpoints:
    """Trainer mixin: a checkpoint gets its completeness marker once fully written, before any rotation."""

    def _save_checkpoint(self, model, trial) -> None:
        limit = self.args.save_total_limit
        self.args.save_total_limit = None  # the Trainer rotates at the end of saving: do it after the marker
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.save_total_limit = limit
        run_dir = Path(self._get_output_dir(trial=trial))
        checkpoint = run_dir / f"checkpoint-{self.state.global_step}"
        self.accelerator.wait_for_everyone()  # every rank's shards are on disk
        if self.args.should_save:
            (checkpoint / "training_args.bin").unlink(missing_ok=True)  # pickled, with hub_token in clear text
            (checkpoint / "training_config.json").write_text(self.args.to_json_string())  # tokens redacted
            mark_complete(checkpoint, self.state.global_step)
            from transformers.trainer_utils import rotate_checkpoints

            rotate_checkpoints(
                output_dir=str(run_dir),
                save_total_limit=limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
            )
        self.accelerator.wait_for_everyone()

"""Checkpoints that survive a crash: which one to resume from, and saving so the newest one is always readable.

transformers' Trainer writes `checkpoint-<step>/` file by file, in place. A process killed while saving (SIGKILL,
out of memory, preemption) leaves a directory that looks like the newest checkpoint but lacks the optimizer or the
trainer state, and resuming from it fails or silently restarts the schedule. Here:

- `CompleteCheckpoints` (a Trainer mixin) writes a marker file into a checkpoint once every rank has finished
  writing it, and only then lets the Trainer rotate old checkpoints away (so with `save_total_limit: 1` the previous
  complete checkpoint is deleted only after the new one is complete). It also replaces Trainer's pickled
  `training_args.bin` (which holds `hub_token` in clear text) by a redacted `training_config.json`.
- `resume_point` decides where a run starts: a checkpoint named on the command line (refused if incomplete), the
  newest complete one (`--resume_from_checkpoint latest`, or automatically when `output_dir` holds an unfinished
  run), or nothing; it refuses an `output_dir` that holds a finished run unless `overwrite_output_dir` is set.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from pathlib import Path

from .outputs import RESULTS_FILE

logger = logging.getLogger(__name__)

COMPLETE_MARKER = "checkpoint_complete.json"
LATEST = ("latest", "true", "auto")
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


def resume_point(output_dir: str, resume_from_checkpoint: str | None, overwrite_output_dir: bool) -> str | None:
    """The checkpoint this run continues from (None: start from scratch), or an error naming the fix.

    Call on the main process first (it deletes incomplete or, with overwrite_output_dir, stale checkpoints).
    """
    out = Path(output_dir)
    if resume_from_checkpoint:
        if resume_from_checkpoint.lower() in LATEST:
            done = complete_checkpoints(out)
            if not done:
                raise FileNotFoundError(
                    f"--resume_from_checkpoint {resume_from_checkpoint}: {out} holds no complete checkpoint "
                    "(checkpoint-<step>/ with a checkpoint_complete.json); drop the option to start from scratch."
                )
            remove_incomplete(out)
            logger.info("Resuming from %s, the newest complete checkpoint in %s.", done[-1], out)
            return str(done[-1])
        path = Path(resume_from_checkpoint)
        if not path.is_dir() and (out / path).is_dir():  # "checkpoint-800" means the one in output_dir
            path = out / path
        if not path.is_dir():
            raise FileNotFoundError(f"--resume_from_checkpoint {path}: no such directory.")
        if not is_complete(path):
            done = complete_checkpoints(path.parent)
            hint = f"resume from {done[-1]} (the newest complete one)" if done else "start from scratch"
            raise ValueError(
                f"--resume_from_checkpoint {path}: incomplete checkpoint (no {COMPLETE_MARKER}: the run stopped "
                f"while saving it); {hint}, or --resume_from_checkpoint latest."
            )
        return str(path)
    if not out.exists():
        return None
    if overwrite_output_dir:
        stale = checkpoints(out)
        if stale:
            logger.warning(
                "overwrite_output_dir: removing %d checkpoint(s) of the previous run in %s.", len(stale), out
            )
            for c in stale:
                shutil.rmtree(c, ignore_errors=True)
        # The previous run's figures must not outlive it: a crashed rerun would otherwise look finished.
        for name in (RESULTS_FILE, "eval_predictions.jsonl", "README.md"):
            (out / name).unlink(missing_ok=True)
        return None
    if (out / RESULTS_FILE).exists():
        raise FileExistsError(
            f"{out} already holds a run that finished ({RESULTS_FILE}). Choose another output_dir, or pass "
            "--overwrite_output_dir true to replace it."
        )
    done = complete_checkpoints(out)
    remove_incomplete(out)
    if done:
        logger.warning(
            "%s holds an unfinished run: resuming from %s (pass --overwrite_output_dir true to start over).",
            out,
            done[-1],
        )
        return str(done[-1])
    return None


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

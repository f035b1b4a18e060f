"""The one output-directory and crash policy of every recipe (training, CLIP/ViT, evaluation, merging).

`run_directory` is entered before any compute:
- an `output_dir` that holds a finished run (`eval_results.json`) is refused, unless `overwrite_output_dir`, which
  removes the previous run's checkpoints and figures first (a crashed rerun must not look finished);
- `resume_point` picks the checkpoint to continue from: the one named by `resume_from_checkpoint` (refused if
  incomplete), the newest complete one for `latest`, or automatically the newest complete one of an unfinished run;
- a run that fails removes the directory it created, unless the directory already holds a complete checkpoint that a
  rerun can resume from (or other finished work a rerun reuses, as `keep_if` says: the benchmark command's finished
  benchmarks). A directory that existed before is never removed.
"""

from __future__ import annotations

import json
import logging
import shutil
from contextlib import contextmanager
from pathlib import Path

from .checkpoints import COMPLETE_MARKER, checkpoints, complete_checkpoints, is_complete, remove_incomplete

logger = logging.getLogger(__name__)

RESULTS_FILE = "eval_results.json"
EVAL_ROWS_FILE = "eval_rows.json"  # which held-out rows were scored (vlm_recipes.data.sampling)
LATEST = ("latest", "true", "auto")


@contextmanager
def run_directory(path: str | Path, overwrite: bool = False, resume_from_checkpoint: str | None = None, keep_if=None):
    """Yield `(output_dir, checkpoint to resume from or None)` under the policy of the module docstring; `keep_if(out)`
    tells whether a failed run's new directory holds finished work to keep (default: a complete checkpoint)."""
    from accelerate import PartialState

    out = Path(path)
    with PartialState().main_process_first():  # the main process removes incomplete or stale checkpoints first
        resume = resume_point(out, resume_from_checkpoint, overwrite)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        yield out, resume
    except BaseException:
        if created and out.exists() and not complete_checkpoints(out) and not (keep_if and keep_if(out)):
            shutil.rmtree(out, ignore_errors=True)
        raise


def resume_point(output_dir: str | Path, resume_from_checkpoint: str | None, overwrite_output_dir: bool) -> str | None:
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
        for name in (RESULTS_FILE, EVAL_ROWS_FILE, "eval_predictions.jsonl", "README.md"):
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


def save_training_config(training_args, out: Path) -> None:
    """The training arguments as JSON, tokens redacted, instead of Trainer's pickled training_args.bin."""
    (out / "training_args.bin").unlink(missing_ok=True)
    (out / "training_config.json").write_text(training_args.to_json_string())


def save_run(trainer, processor, training_args, results: dict, out: Path) -> None:
    """On the main process, after `trainer.save_model` (safetensors) on every rank: the processor, the training
    arguments as JSON (tokens redacted, instead of Trainer's pickled training_args.bin) and eval_results.json."""
    processor.save_pretrained(out)
    save_training_config(training_args, out)
    (out / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n")

"""Output directories that never hold two runs and never keep a half-written run."""

from __future__ import annotations

import json
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

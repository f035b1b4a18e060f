"""Experiment tracking: the trackers a run reports to, and our own figures sent to each of them once.

transformers' Trainer already sends what it logs (loss, learning rate, grad norm, TRL's training-time metrics such as
DPO's reward accuracies or GRPO's rewards) to every integration named in `report_to`: `Trainer.log` calls each
integration's callback (`on_log`). What this module adds:

- `check_trackers`: the trackers the recipes are tested with, `tensorboard` (the default), `trackio` (a local store,
  no Space unless `trackio_space_id` asks for one) and `wandb` (offline with `WANDB_MODE=offline`), or none; a tracker
  whose package is missing is named with the extra that installs it (`pip install -e ".[tracking]"`). Other
  `report_to` values are refused at parse time (vlm_recipes.settings.training).
- `TrackedFigures`: our own figures go through the same `Trainer.log`, so every tracker (and the trainer's
  `log_history`) receives each of them once. At step 0: the held-out figures before training
  (`eval/heldout_<name>`) and, when packing, the packed sequences' fill ratio (`train/packing_fill_ratio`); at the
  last step: the held-out figures after training (the same `eval/heldout_<name>` series, so a tracker draws
  before -> after) and the collator's examples/s over the run (`train/collator_examples_per_second`). The held-out
  figures are the method's: the generation metric (e.g. `accuracy`), the config's `eval_metrics`, DPO/MPO's
  preference accuracy, GRPO's reward.

The trackers close at the end of `Trainer.train` (TensorBoard's writer, `trackio.finish()`), before the held-out
evaluation after training: their `on_train_end` is held back until `TrackedFigures.finish` has logged that evaluation.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import time

from transformers import TrainerCallback
from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

from ..settings.training import TRACKERS, check_report_to

HELD_OUT_PREFIX = "eval_heldout_"  # transformers' trackers write `eval_<x>` as `eval/<x>`


def check_trackers(report_to: list[str]) -> None:
    """Refuse a tracker we do not test, or one whose package is not installed (before anything is loaded)."""
    check_report_to(report_to)  # parse time refused these already; this covers arguments built in Python
    for name in report_to:
        if importlib.util.find_spec(name) is None:  # each tracker's package is named like it
            raise ValueError(
                f"report_to: {name} needs the {name!r} package, which is not installed: "
                'pip install -e ".[tracking]" (or report_to: tensorboard).'
            )


class TimedCollator:
    """A collator that counts the examples it collates and the seconds it spends, in whichever process runs it
    (dataloader workers included: the counters are shared memory). Everything else is the wrapped collator's."""

    def __init__(self, collator):
        self.collator = collator
        self._examples = multiprocessing.Value("q", 0)
        self._seconds = multiprocessing.Value("d", 0.0)

    def __call__(self, rows):
        start = time.perf_counter()
        batch = self.collator(rows)
        elapsed = time.perf_counter() - start
        with self._examples.get_lock():
            self._examples.value += len(rows)
        with self._seconds.get_lock():
            self._seconds.value += elapsed
        return batch

    def __getattr__(self, name):
        if name == "collator":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.collator, name)

    def examples_per_second(self) -> float | None:
        """Examples per second of collator time (per worker when several collate side by side); None before any."""
        seconds = self._seconds.value
        return self._examples.value / seconds if seconds > 0 else None


class _FiguresAtStart(TrainerCallback):
    """Logs the figures known before training through `Trainer.log` once the trackers are set up (they set up in
    their own `on_train_begin`, which runs before this callback's); not again when a run resumes past step 0."""

    def __init__(self, trainer, figures: dict):
        self.trainer, self.figures = trainer, figures

    def on_train_begin(self, args, state, control, **kwargs):
        if self.figures and state.global_step == 0:
            self.trainer.log(dict(self.figures))


class TrackedFigures:
    """Our figures for the trackers of `trainer` (see the module docstring): `attach` before `train()`, `finish`
    after the held-out evaluation."""

    def __init__(self, trainer, before: dict, batching: dict | None, timed: bool):
        self.trainer = trainer
        self._held_back: list = []
        start = held_out(before)
        if batching and "packing_fill_ratio" in batching:
            start["packing_fill_ratio"] = batching["packing_fill_ratio"]
        trainer.add_callback(_FiguresAtStart(trainer, start))
        self.collator = None
        if timed:
            self.collator = trainer.data_collator = TimedCollator(trainer.data_collator)
        trackers = tuple(INTEGRATION_TO_CALLBACK[name] for name in trainer.args.report_to if name in TRACKERS)
        for callback in trainer.callback_handler.callbacks:
            if isinstance(callback, trackers):
                callback.on_train_end = self._hold_back(callback.on_train_end)

    def _hold_back(self, on_train_end):
        def held(args, state, control, **kwargs):
            self._held_back.append((on_train_end, args, state, control, kwargs))

        return held

    def finish(self, after: dict) -> None:
        """Log the figures after training, then let the trackers close."""
        figures = held_out(after)
        rate = self.collator.examples_per_second() if self.collator is not None else None
        if rate is not None:
            figures["collator_examples_per_second"] = round(rate, 2)
        try:
            self.trainer.log(figures)
        finally:
            held, self._held_back = self._held_back, []
            for on_train_end, args, state, control, kwargs in held:
                on_train_end(args, state, control, **kwargs)


def held_out(metrics: dict) -> dict:
    """The held-out figures as tracker keys: `eval_heldout_<name>` (numbers only)."""
    return {
        f"{HELD_OUT_PREFIX}{name}": float(value)
        for name, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }

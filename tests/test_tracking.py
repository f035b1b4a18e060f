"""Experiment tracking: `report_to` takes tensorboard (the default), trackio and wandb, and refuses the rest; a tiny
run logs its loss and our figures (held-out before/after, packing fill, collator examples/s) to each tracker once, read
back from each tracker's own offline store: TensorBoard's event files, Trackio's local SQLite database and W&B's
offline run file. Trackio and W&B come with the `tracking` extra (`pip install -e ".[tracking]"`; `make setup`
installs it); without it their tests skip, saying so."""

import glob
import importlib.util
import json
import os
import sqlite3
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO_ROOT, parse_config

from vlm_recipes.training import tracking

pytestmark = pytest.mark.unit

CONFIG = REPO_ROOT / "recipes/configs/tiny-smolvlm/sft_lora.yaml"
EXTRA = {name: importlib.util.find_spec(name) is not None for name in ("trackio", "wandb")}
NEEDS_EXTRA = 'the tracking extra is not installed (pip install -e ".[tracking]"; make setup installs it)'


@pytest.mark.parametrize(
    ("value", "trackers"),
    [(None, ["tensorboard"]), ("none", []), ("wandb", ["wandb"]), ("tensorboard,trackio", ["tensorboard", "trackio"])],
)
def test_report_to_takes_the_tested_trackers(value, trackers):
    overrides = [] if value is None else ["--report_to", value]
    config = parse_config(CONFIG.parent / "dpo.yaml" if value == "wandb" else CONFIG, *overrides)
    assert next(c for c in config if hasattr(c, "report_to")).report_to == trackers
    if value is None:  # the YAML's tensorboard; and the dataclass default without a YAML
        from vlm_recipes.settings import SFTConfig

        assert SFTConfig(output_dir="x", use_cpu=True, bf16=False).report_to == ["tensorboard"]


@pytest.mark.parametrize("value", ["mlflow", "all", "tensorboard,comet_ml"])
def test_report_to_refuses_other_trackers_naming_the_choices(value):
    with pytest.raises(ValueError, match=r"not supported by the recipes; use tensorboard, trackio, wandb"):
        parse_config(CONFIG, "--report_to", value)


def test_a_tracker_without_its_package_is_named_with_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(
        ValueError, match=r'report_to: wandb needs the \'wandb\' package.*pip install -e "\.\[tracking\]"'
    ):
        tracking.check_trackers(["tensorboard", "wandb"])
    tracking.check_trackers(["tensorboard"])


def test_collator_examples_per_second_counts_dataloader_workers_too():
    import torch

    timed = tracking.TimedCollator(lambda rows: torch.tensor(rows))
    assert timed.examples_per_second() is None
    loader = torch.utils.data.DataLoader(list(range(12)), batch_size=3, num_workers=2, collate_fn=timed)
    assert sum(len(b) for b in loader) == 12
    assert timed._examples.value == 12 and timed.examples_per_second() > 0


def test_held_out_figures_keep_numbers_under_one_prefix():
    """DPO's preference accuracy and GRPO's reward are held-out figures like accuracy: one `eval/heldout_<name>`
    series per figure in every tracker (transformers writes `eval_<x>` as `eval/<x>`)."""
    figures = {"accuracy": 0.5, "preference_accuracy": 1, "reward": -0.25, "note": "text", "flag": True}
    assert tracking.held_out(figures) == {
        "eval_heldout_accuracy": 0.5,
        "eval_heldout_preference_accuracy": 1.0,
        "eval_heldout_reward": -0.25,
    }


# -- a tiny run, read back from every store ------------------------------------------------------------------------
RUN = ["--model_name_or_path", "tiny:smolvlm-random", "--max_steps", "4", "--logging_steps", "2"]
RUN += ["--synthetic_train_samples", "48", "--max_eval_samples", "4", "--per_device_train_batch_size", "4"]
RUN += ["--per_device_eval_batch_size", "4", "--packing", "true", "--run_name", "tracked"]


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    """One tiny SFT run (packed, so that it has a packing fill) reporting to every tracker installed here, each
    writing offline into this run's folder: W&B in offline mode, Trackio into a local store (no Space). In its own
    process, as a user runs it: Trackio reads TRACKIO_DIR when it is imported, and W&B ends its run at exit."""
    base = tmp_path_factory.mktemp("tracked")
    trackers = ["tensorboard", *(name for name, installed in EXTRA.items() if installed)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "TRACKIO_"))}
    env |= {"WANDB_MODE": "offline", "WANDB_DIR": str(base), "WANDB_SILENT": "true", "TRACKIO_DIR": str(base / "tk")}
    env |= {"OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])}
    cmd = [
        sys.executable,
        str(REPO_ROOT / "recipes/sft.py"),
        "--config",
        str(CONFIG),
        "--output_dir",
        str(base / "out"),
    ]
    cmd += [*RUN, "--report_to", ",".join(trackers)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=base)
    assert result.returncode == 0, result.stderr[-3000:]
    return base, json.loads((base / "out" / "eval_results.json").read_text())


# Our figures, and the loss: each logged once per step it belongs to (the trainer's `epoch` comes with every log).
OURS = ("eval/heldout_accuracy", "train/packing_fill_ratio", "train/collator_examples_per_second", "train/loss")


def check_series(series: dict, results: dict) -> None:
    """`series`: {tag: {step: value}} read from a store."""
    assert series["eval/heldout_accuracy"] == {0: pytest.approx(results["accuracy_before"]),
                                               4: pytest.approx(results["accuracy_after"])}  # fmt: skip
    assert series["train/packing_fill_ratio"] == {0: pytest.approx(results["packing_fill_ratio"])}
    assert list(series["train/collator_examples_per_second"]) == [4]
    assert next(iter(series["train/collator_examples_per_second"].values())) > 0
    assert sorted(series["train/loss"]) == [2, 4] and all(v > 0 for v in series["train/loss"].values())


@pytest.mark.integration
def test_tensorboard_store_holds_the_loss_and_our_figures(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    base, results = tracked_run
    (logdir,) = (base / "out" / "runs").iterdir()
    events = EventAccumulator(str(logdir))
    events.Reload()
    series = {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}
    check_series(series, results)
    assert len(list(logdir.glob("events.out.tfevents.*"))) == 1  # one writer: the trackers closed once, at the end


@pytest.mark.integration
@pytest.mark.skipif(not EXTRA["trackio"], reason=NEEDS_EXTRA)
def test_trackio_local_store_holds_the_loss_and_our_figures(tracked_run):
    base, results = tracked_run
    (db,) = (base / "tk").glob("*.db")
    rows = sqlite3.connect(db).execute("select run_name, metrics from metrics").fetchall()
    assert {name for name, _ in rows} == {"tracked"}  # one run, named by run_name
    series: dict = {}
    for _, metrics in rows:
        logged = json.loads(metrics)
        step = logged.pop("train/global_step")
        for tag, value in logged.items():
            assert step not in series.setdefault(tag, {}) or tag not in OURS, f"{tag} logged twice at step {step}"
            series[tag][step] = value
    check_series(series, results)


def wandb_records(path: Path):
    """The records of a W&B offline run file (`run-<id>.wandb`): a LevelDB-style log of 32 KiB blocks, each record
    in chunks with a 7-byte header (checksum, length, type: 1 full, 2 first, 3 middle, 4 last), after a 7-byte file
    header that starts with ':W&B'."""
    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B", data[:7]
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        room = block - pos % block
        if room < 7:  # a block's tail too short for a header is padding
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:
            pos += room
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


@pytest.mark.integration
@pytest.mark.skipif(not EXTRA["wandb"], reason=NEEDS_EXTRA)
def test_wandb_offline_run_holds_the_loss_and_our_figures(tracked_run):
    base, results = tracked_run
    (run_file,) = glob.glob(str(base / "wandb" / "offline-run-*" / "run-*.wandb"))
    series: dict = {}
    for record in wandb_records(Path(run_file)):
        if record.WhichOneof("record_type") != "history":
            continue
        logged = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
        step = logged.pop("train/global_step")
        for tag, value in logged.items():
            if not tag.startswith("_"):
                assert step not in series.setdefault(tag, {}) or tag not in OURS, f"{tag} logged twice at {step}"
                series[tag][step] = value
    check_series(series, results)


@pytest.mark.integration
@pytest.mark.parametrize(("method", "figure"), [("dpo", "preference_accuracy"), ("grpo", "reward")])
def test_preference_accuracy_and_reward_reach_the_tracker(method, figure, tmp_path):
    """DPO's held-out preference accuracy and GRPO's held-out reward, before and after, in TensorBoard's store (the
    same Trainer.log path feeds Trackio and W&B, read back above)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from vlm_recipes.launch import run_recipe

    config = CONFIG.parent / f"{method}.yaml"
    small = ["--model_name_or_path", "tiny:smolvlm-random", "--max_steps", "2", "--logging_steps", "1"]
    small += ["--synthetic_train_samples", "16", "--max_eval_samples", "4", "--per_device_eval_batch_size", "4"]
    small += ["--per_device_train_batch_size", "4"] + (["--num_generations", "2"] if method == "grpo" else [])
    results = run_recipe(method, config, tmp_path / "out", *small, "--report_to", "tensorboard")
    (logdir,) = (tmp_path / "out" / "runs").iterdir()
    events = EventAccumulator(str(logdir))
    events.Reload()
    logged = {e.step: e.value for e in events.Scalars(f"eval/heldout_{figure}")}
    assert logged == {0: pytest.approx(results[f"{figure}_before"]), 2: pytest.approx(results[f"{figure}_after"])}
    assert "train/loss" in events.Tags()["scalars"]

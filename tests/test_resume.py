"""Resume after a crash: a run killed mid-training (SIGKILL) or while saving a checkpoint continues from its newest
complete checkpoint and ends with the same adapter as a run that was never interrupted (same seed)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import run_recipe
from safetensors.torch import load_file

from vlm_recipes.outputs import resume_point
from vlm_recipes.outputs.checkpoints import COMPLETE_MARKER, complete_checkpoints
from vlm_recipes.paths import REPO_ROOT

pytestmark = pytest.mark.unit

CONFIG = REPO_ROOT / "recipes/configs/tiny-smolvlm/sft_lora.yaml"
STEPS = 30  # 64 rows / batch 4 = 16 steps an epoch: the run crosses an epoch boundary
# Small and fast: a checkpoint every step, 2 held-out samples, a 2-token generation budget.
ARGS = (
    f"--max_steps {STEPS} --save_strategy steps --save_steps 1 --save_total_limit 3 --synthetic_train_samples 64 "
    "--per_device_train_batch_size 4 --max_eval_samples 2 --per_device_eval_batch_size 2 --eval_max_new_tokens 2 "
    "--warmup_steps 3 --logging_steps 5 --overwrite_output_dir false"
).split()


def adapter(out: Path) -> dict[str, torch.Tensor]:
    return load_file(out / "adapter_model.safetensors")


def assert_same_adapter(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5), name


def steps_trained_by(monkeypatch, recipe: str = "sft") -> list[int]:
    """Records the global step at every optimizer step of the runs that follow (gradient accumulation is 1)."""
    from vlm_recipes.training.methods import get_method

    trainer_cls = get_method(recipe).trainer_class
    calls, training_step = [], trainer_cls.training_step

    def counting(self, *args, **kwargs):
        calls.append(self.state.global_step)
        return training_step(self, *args, **kwargs)

    monkeypatch.setattr(trainer_cls, "training_step", counting)
    return calls


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    results = run_recipe("sft", CONFIG, out, *ARGS)
    assert results["train_steps"] == STEPS
    return adapter(out)


@pytest.mark.learning
def test_sigkill_mid_training_then_resume_gives_the_same_adapter(tmp_path, monkeypatch, uninterrupted):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, str(REPO_ROOT / "recipes/sft.py"), "--config", str(CONFIG), "--output_dir", str(out)]
    log = (tmp_path / "killed.log").open("w")
    proc = subprocess.Popen([*cmd, "--report_to", "none", *ARGS], env=env, stdout=log, stderr=subprocess.STDOUT)
    marker = out / "checkpoint-3" / COMPLETE_MARKER
    deadline = time.time() + 300
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, (tmp_path / "killed.log").read_text()[-2000:]
    assert not (out / "eval_results.json").exists()  # really killed mid-training
    killed_at = int(complete_checkpoints(out)[-1].name.split("-")[1])
    assert 3 <= killed_at < STEPS

    trained = steps_trained_by(monkeypatch)
    results = run_recipe("sft", CONFIG, out, *ARGS, "--resume_from_checkpoint", "latest")
    assert results["train_steps"] == STEPS
    assert trained == list(range(killed_at, STEPS))  # continued, did not start over
    assert_same_adapter(adapter(out), uninterrupted)


@pytest.mark.learning
def test_crash_while_saving_keeps_the_previous_checkpoint_and_resumes_from_it(tmp_path, monkeypatch, uninterrupted):
    from transformers import Trainer

    out = tmp_path / "run"
    save_rng_state = Trainer._save_rng_state

    def crash_at_step_5(self, output_dir):
        if self.state.global_step == 5:  # the model and optimizer of checkpoint-5 are written, the rest not
            raise KeyboardInterrupt("simulated crash while saving")
        save_rng_state(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_rng_state", crash_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        run_recipe("sft", CONFIG, out, *ARGS)
    monkeypatch.undo()
    assert (out / "checkpoint-5" / "adapter_model.safetensors").exists()  # half-written
    assert [c.name for c in complete_checkpoints(out)] == ["checkpoint-2", "checkpoint-3", "checkpoint-4"]
    # Naming the half-written checkpoint is refused with the fix; `latest` picks checkpoint-4.
    with pytest.raises(ValueError, match=r"checkpoint-5: incomplete checkpoint .* resume from .*checkpoint-4"):
        resume_point(str(out), str(out / "checkpoint-5"), False)
    trained = steps_trained_by(monkeypatch)
    results = run_recipe("sft", CONFIG, out, *ARGS, "--resume_from_checkpoint", "latest")
    assert results["train_steps"] == STEPS
    assert trained == list(range(4, STEPS))
    assert_same_adapter(adapter(out), uninterrupted)
    # Only complete checkpoints remain, at most save_total_limit of them, none with a pickled training_args.bin.
    left = sorted(p for p in out.iterdir() if p.name.startswith("checkpoint-"))
    assert len(left) == 3 and all((c / COMPLETE_MARKER).exists() for c in left)
    assert not list(out.rglob("training_args.bin"))


def make_run_dir(out: Path, steps: list[int], complete: list[int], finished: bool = False) -> None:
    for step in steps:
        (out / f"checkpoint-{step}").mkdir(parents=True)
        if step in complete:
            (out / f"checkpoint-{step}" / COMPLETE_MARKER).write_text("{}")
    if finished:
        (out / "eval_results.json").write_text("{}")


def test_unfinished_run_resumes_automatically_from_its_newest_complete_checkpoint(tmp_path):
    make_run_dir(tmp_path, [2, 10, 12], complete=[2, 10])
    assert resume_point(str(tmp_path), None, overwrite_output_dir=False) == str(tmp_path / "checkpoint-10")
    assert not (tmp_path / "checkpoint-12").exists()  # half-written: removed


def test_finished_run_is_refused_and_overwrite_starts_over(tmp_path):
    make_run_dir(tmp_path, [2, 4], complete=[2, 4], finished=True)
    with pytest.raises(FileExistsError, match="already holds a run that finished.*--overwrite_output_dir true"):
        resume_point(str(tmp_path), None, overwrite_output_dir=False)
    assert resume_point(str(tmp_path), None, overwrite_output_dir=True) is None
    assert not list(tmp_path.glob("checkpoint-*"))  # stale checkpoints of the old run would shadow the new ones
    # ... and its results would make a crashed rerun look finished.
    assert not (tmp_path / "eval_results.json").exists()


def test_a_checkpoint_is_named_by_path_or_by_its_name_in_output_dir(tmp_path):
    make_run_dir(tmp_path, [2, 4], complete=[2, 4])
    assert resume_point(str(tmp_path), str(tmp_path / "checkpoint-2"), False) == str(tmp_path / "checkpoint-2")
    assert resume_point(str(tmp_path), "checkpoint-2", False) == str(tmp_path / "checkpoint-2")
    with pytest.raises(FileNotFoundError, match="checkpoint-3: no such directory"):
        resume_point(str(tmp_path), "checkpoint-3", False)


def test_latest_without_a_complete_checkpoint_is_a_clear_error(tmp_path):
    make_run_dir(tmp_path, [3], complete=[])
    with pytest.raises(FileNotFoundError, match="holds no complete checkpoint"):
        resume_point(str(tmp_path), "latest", overwrite_output_dir=False)


PREFERENCE_AND_RL = {
    "dpo": "--per_device_train_batch_size 2",
    "grpo": "--per_device_train_batch_size 4 --num_generations 2 --max_completion_length 4",
}


@pytest.mark.learning
@pytest.mark.parametrize("recipe", ["dpo", "grpo"])
def test_dpo_and_grpo_resume_after_a_crash_while_saving(tmp_path, monkeypatch, recipe):
    """The same checkpointing serves every trainer (TRL's DPO/GRPO trainers add files to a checkpoint: the
    marker comes after them), and resuming continues with the same result as an uninterrupted run."""
    from transformers import Trainer

    config = REPO_ROOT / f"recipes/configs/tiny-smolvlm/{recipe}.yaml"
    args = (
        "--max_steps 4 --save_strategy steps --save_steps 1 --synthetic_train_samples 16 --max_eval_samples 2 "
        "--per_device_eval_batch_size 2 --eval_max_new_tokens 2 --overwrite_output_dir false"
    ).split() + PREFERENCE_AND_RL[recipe].split()
    run_recipe(recipe, config, tmp_path / "uninterrupted", *args)
    save_rng_state = Trainer._save_rng_state

    def crash_at_step_3(self, output_dir):
        if self.state.global_step == 3:
            raise KeyboardInterrupt("simulated crash while saving")
        save_rng_state(self, output_dir)

    out = tmp_path / "run"
    monkeypatch.setattr(Trainer, "_save_rng_state", crash_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe, config, out, *args)
    monkeypatch.undo()
    assert [c.name for c in complete_checkpoints(out)] == ["checkpoint-1", "checkpoint-2"]
    trained = steps_trained_by(monkeypatch, recipe)
    results = run_recipe(recipe, config, out, *args, "--resume_from_checkpoint", "latest")
    assert results["train_steps"] == 4 and trained == [2, 3]
    assert_same_adapter(adapter(out), adapter(tmp_path / "uninterrupted"))


@pytest.mark.learning
@pytest.mark.slow  # 2 launches of 2 processes (plus the reference run if test_distributed did not make it): ~1 min
@pytest.mark.parametrize("config", ["multi_cpu", "zero2"])
def test_two_rank_run_resumes_from_its_newest_complete_checkpoint(config, tmp_path, tmp_path_factory):
    """Two CPU ranks (DDP, or DeepSpeed ZeRO-2): every checkpoint is marked complete once both ranks wrote it; a run
    that died while saving its last checkpoint is resumed by rerunning the same command (no flag), from the
    newest complete checkpoint, and ends with the weights of the uninterrupted run of test_distributed."""
    import helpers as td

    _, reference, _ = td.small_run(config, tmp_path_factory)
    out = tmp_path / "out"
    saving = [*td.SMALL_RUN, "--save_strategy", "steps", "--save_steps", "4", "--overwrite_output_dir", "false"]
    first = td.launch(config, tmp_path / "dump1", out, *saving)
    assert first.returncode == 0, first.stderr[-3000:]
    assert [c.name for c in complete_checkpoints(out)] == ["checkpoint-4", "checkpoint-8", "checkpoint-12"]
    # As if both ranks died while saving checkpoint-12: no marker, no results.
    (out / "checkpoint-12" / COMPLETE_MARKER).unlink()
    (out / "eval_results.json").unlink()
    second = td.launch(config, tmp_path / "dump2", out, *saving)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"resuming from {out / 'checkpoint-8'}" in second.stderr
    weights, _ = td.rank_records(tmp_path / "dump2")
    for rank in (0, 1):
        assert_same_adapter(weights[rank], reference[0])

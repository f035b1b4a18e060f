"""Safe defaults: no remote code unless asked, safetensors for weights, no unrestricted unpickling, no token leaks."""

import logging
import os
import pickle
import uuid

import pytest
from helpers import BENCHMARK_RECIPES, CONFIGS, INFERENCE_RECIPES, recipe_module, recipe_of, run_recipe

from vlm_recipes.launch import parse
from vlm_recipes.paths import REPO_ROOT

pytestmark = pytest.mark.unit

SFT = REPO_ROOT / "recipes/configs/tiny-smolvlm/sft_lora.yaml"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_remote_code_is_off_in_every_config(path):
    recipe = recipe_of(path)
    module = recipe_module(recipe)
    # GPU configs ask for bf16, which transformers refuses to parse on a GPU-less machine unless use_cpu.
    gpu_training = not path.parent.name.startswith("tiny-") and recipe not in INFERENCE_RECIPES | BENCHMARK_RECIPES
    overrides = ["--use_cpu", "true"] if gpu_training else []
    parsed = parse(module.PARSER_TYPES, module.DEFAULT_CONFIG, ["--config", str(path), *overrides], recipe)
    flags = [obj.trust_remote_code for obj in parsed if hasattr(obj, "trust_remote_code")]
    assert flags and not any(flags)


def test_our_code_never_unpickles():
    for source in (REPO_ROOT / "vlm_recipes").rglob("*.py"):
        text = source.read_text()
        assert "torch.load(" not in text and "import pickle" not in text, source


class _Payload:
    """A pickled object whose unpickling runs code: it creates the folder `marker`."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_resuming_refuses_a_checkpoint_whose_pickles_would_run_code(tmp_path):
    """Resuming reads rng_state.pth, optimizer.pt and scheduler.pt, which torch.save pickles. A checkpoint whose
    pickles carry code (here: a payload that creates a folder when unpickled) must be refused without running it:
    transformers loads them with torch.load(weights_only=True). Exercised on the Trainer's own loaders, so an upgrade
    that changes that fails here."""
    import torch
    from transformers import Trainer, TrainingArguments

    checkpoint = tmp_path / "checkpoint-1"
    checkpoint.mkdir()
    for name in ("rng_state.pth", "optimizer.pt", "scheduler.pt"):
        torch.save({"state": _Payload(str(tmp_path / f"ran-{name}"))}, checkpoint / name)
    args = TrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True, report_to="none")
    trainer = Trainer(model=torch.nn.Linear(2, 2), args=args)
    trainer.create_optimizer_and_scheduler(num_training_steps=2)
    for load in (trainer._load_rng_state, trainer._load_optimizer_and_scheduler):
        with pytest.raises(pickle.UnpicklingError):
            load(str(checkpoint))
    assert not list(tmp_path.glob("ran-*")), "a pickled payload ran"
    # The control: the same file unpickled without weights_only runs the payload.
    torch.load(checkpoint / "rng_state.pth", weights_only=False)
    assert (tmp_path / "ran-rng_state.pth").is_dir()


@pytest.mark.learning
def test_hub_token_is_never_written_or_logged(tmp_path, capfd, caplog):
    token = f"hf_{uuid.uuid4().hex}"
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "run"
    # Checkpoints, TensorBoard logs (which record the training arguments), the final adapter and config.
    run_recipe(
        "sft",
        SFT,
        out,
        *"--max_steps 2 --save_strategy steps --save_steps 1 --synthetic_train_samples 8 --max_eval_samples 2".split(),
        *"--per_device_train_batch_size 2 --eval_max_new_tokens 2 --logging_steps 1 --report_to tensorboard".split(),
        "--hub_token",
        token,
    )
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any("events.out.tfevents" in p.name for p in files) and any("checkpoint-2" in str(p) for p in files)
    leaks = [p for p in files if token.encode() in p.read_bytes()]
    assert not leaks
    captured = capfd.readouterr()
    assert token not in captured.out + captured.err + caplog.text
    # The redacted config is still written, and says a token was given.
    assert "<HUB_TOKEN>" in (out / "training_config.json").read_text()

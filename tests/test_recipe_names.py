"""The SFT recipe answers to both of its names: `recipes/sft.py` and `recipes/sft_lora.py` (the name the project's
design and older notes launch) are one flow with one default, the LoRA config.

Each name is launched the way a user types it, `accelerate launch --config_file accelerate_configs/cpu.yaml
recipes/<name>.py ...`, for two steps on a few synthetic rows (a few seconds each once the tiny SmolVLM is cached)."""

import json
import os
import subprocess

import pytest
from helpers import ACCELERATE
from helpers import recipe_script_module as recipe_module

from vlm_recipes.paths import REPO_ROOT

pytestmark = pytest.mark.learning  # the launches train on the pre-trained tiny SmolVLM

NAMES = ("sft", "sft_lora")
SHORT_RUN = (
    "--max_steps 2 --max_eval_samples 4 --eval_max_new_tokens 3 --synthetic_train_samples 32 "
    "--per_device_train_batch_size 4 --per_device_eval_batch_size 4 --warmup_steps 0 --report_to none"
).split()


@pytest.mark.unit
def test_both_names_are_the_same_recipe_with_the_lora_default():
    sft, sft_lora = (recipe_module(name) for name in NAMES)
    assert sft_lora.METHOD is sft.METHOD and sft.METHOD.name == "sft"
    assert sft_lora.PARSER_TYPES == sft.PARSER_TYPES
    assert sft_lora.DEFAULT_CONFIG == sft.DEFAULT_CONFIG == REPO_ROOT / "recipes/configs/tiny-smolvlm/sft_lora.yaml"


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """{name: eval_results.json of `accelerate launch recipes/<name>.py` on its default config}."""
    from vlm_recipes.tiny import vlm as tiny

    tiny.build("tiny:smolvlm")  # here, once, rather than inside the first launch
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    results = {}
    for name in NAMES:
        out = tmp_path_factory.mktemp(name) / "run"
        cmd = [str(ACCELERATE), "launch", "--config_file", str(REPO_ROOT / "accelerate_configs/cpu.yaml")]
        cmd += [f"recipes/{name}.py", "--output_dir", str(out), *SHORT_RUN]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
        assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stderr[-3000:]}"
        assert (out / "adapter_model.safetensors").is_file(), sorted(p.name for p in out.iterdir())
        results[name] = json.loads((out / "eval_results.json").read_text())
    return results


@pytest.mark.parametrize("name", NAMES)
def test_each_name_launches_and_trains_the_lora_default(launched, name):
    results = launched[name]
    assert results["method"] == "sft"  # one method under both names; the LoRA adapter is checked above
    assert results["train_steps"] == 2 and results["num_eval_samples"] == 4
    assert results["model_name_or_path"] == "tiny:smolvlm" and results["dataset_name"] == "synthetic"


def test_both_names_run_the_same_recipe(launched):
    sft, sft_lora = (launched[name] for name in NAMES)
    # One flow, one config, one seed: the same rows, the same held-out answers before training, the same steps.
    assert sft_lora["accuracy_before"] == sft["accuracy_before"]
    assert sft_lora["trainable_parameters"] == sft["trainable_parameters"]
    assert sft_lora["train_loss"] == pytest.approx(sft["train_loss"], rel=1e-4)

"""GRPO: reward names fail fast, the offline default runs end to end, and (slow) it improves held-out metrics."""

import json

import pytest
from helpers import parse_config, run_recipe
from safetensors.torch import load_file

from vlm_recipes.paths import REPO_ROOT

pytestmark = pytest.mark.unit

CONFIG = REPO_ROOT / "recipes" / "configs" / "tiny-smolvlm" / "grpo.yaml"


def test_unknown_reward_name_fails_when_the_config_is_parsed(tmp_path):
    bad = tmp_path / "grpo.yaml"
    bad.write_text(
        CONFIG.read_text().replace(
            "reward_funcs: [accuracy, length_penalty]", "reward_funcs: [accuracy, lenght_penalty]"
        )
    )
    with pytest.raises(ValueError, match=r"Unknown reward function\(s\) \['lenght_penalty'\]"):
        parse_config(bad)
    bad.write_text(CONFIG.read_text().replace("reward_weights: [1.0, 0.2]", "reward_weights: [1.0]"))
    with pytest.raises(ValueError, match="reward_weights has 1 values for 2 reward_funcs"):
        parse_config(bad)


# LLaVA-1.5 with the same bars, slow: its pre-trained base is built only for slow tests (measured on one base only).
@pytest.mark.learning
@pytest.mark.parametrize(
    "config", ["tiny-smolvlm", "tiny-qwen2-vl", pytest.param("tiny-llava", marks=pytest.mark.slow)]
)
def test_grpo_default_improves_held_out_reward_and_accuracy(tmp_path, config):
    path = REPO_ROOT / "recipes" / "configs" / config / "grpo.yaml"
    out = tmp_path / "run"
    results = run_recipe("grpo", path, out)
    assert results["method"] == "grpo" and results["num_eval_samples"] == 200
    # The bar is half the smallest gain measured over 5 tiny-base seeds x 2 families (issue 11,
    # benches/bench_learning_margins.py; docs/figures.md "GRPO"): reward and accuracy min +0.10.
    assert results["reward_after"] >= results["reward_before"] + 0.05, results
    assert results["accuracy_after"] >= results["accuracy_before"] + 0.05, results
    assert results["frac_reward_zero_std"] < 0.9, results  # most groups taught something
    assert json.loads((out / "eval_results.json").read_text())["reward_after"] == results["reward_after"]
    lora_b = [t for name, t in load_file(out / "adapter_model.safetensors").items() if "lora_B" in name]
    assert lora_b and any(t.abs().sum() > 0 for t in lora_b)  # LoRA B starts at zero: it was trained


@pytest.mark.slow  # about 60 s; the LoRA GRPO defaults prove learning in the default run
def test_grpo_without_lora_with_a_reference_model(tmp_path):
    """Full fine-tuning with beta > 0: TRL builds the reference model from the checkpoint path."""
    out = tmp_path / "run"
    results = run_recipe("grpo", CONFIG, out, "--use_peft", "false", "--beta", "0.04", "--learning_rate", "1e-4")
    assert results["trainable_parameters"] > results["total_parameters"] / 2
    assert (out / "model.safetensors").exists()
    assert results["reward_after"] > results["reward_before"], results

"""GRPO: reward names fail fast, the offline default runs end to end, and (slow) it improves held-out metrics."""

from pathlib import Path

import pytest
from helpers import assert_rl_default_learned, parse_config, run_recipe

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


# The other families with the same bars, slow. Qwen2-VL's (70 s) left the default run on 2026-12-08 to keep the suite
# under 20 minutes: its GRPO code path stays there (tests/test_grpo_mixed_rows.py, test_chat_encoding's GRPO prompts,
# the real configs' two-step runs), SmolVLM's proof is the default run's GRPO learning proof.
@pytest.mark.learning
@pytest.mark.parametrize(
    "config",
    [
        "tiny-smolvlm",
        pytest.param("tiny-qwen2-vl", marks=pytest.mark.slow),
        pytest.param("tiny-llava", marks=pytest.mark.slow),
        pytest.param("tiny-qwen2.5-vl", marks=pytest.mark.slow),
        pytest.param("tiny-qwen3-vl", marks=pytest.mark.slow),
        pytest.param("tiny-qwen3.5", marks=pytest.mark.slow),
        pytest.param("tiny-gemma3", marks=pytest.mark.slow),  # its base is shipped; its proofs are slow
    ],
)
def test_grpo_default_improves_held_out_reward_and_accuracy(tmp_path, config):
    path = REPO_ROOT / "recipes" / "configs" / config / "grpo.yaml"
    out = tmp_path / "run"
    results = run_recipe("grpo", path, out)
    # The bar is half the smallest gain measured over 5 tiny-base seeds x 2 families (issue 11,
    # benches/bench_learning_margins.py; docs/figures.md "GRPO"): reward and accuracy min +0.10.
    assert_rl_default_learned("grpo", results, out)


@pytest.mark.learning
@pytest.mark.slow  # about 60 s; the LoRA GRPO defaults prove learning in the default run
def test_grpo_without_lora_with_a_reference_model(tmp_path):
    """Full fine-tuning with beta > 0: TRL builds the reference model from the checkpoint path."""
    out = tmp_path / "run"
    results = run_recipe("grpo", CONFIG, out, "--use_peft", "false", "--beta", "0.04", "--learning_rate", "1e-4")
    assert results["trainable_parameters"] > results["total_parameters"] / 2
    assert (out / "model.safetensors").exists()
    assert results["reward_after"] > results["reward_before"], results


# -- loss variants (docs/recipes.md, "GRPO loss variants") ------------------------------------------------------------

# What each variant must hand TRL's GRPOTrainer, written out here (not read from the YAML or the method record): a
# config or a record that drifts from its variant fails. eps: (epsilon, the upper bound TRL uses: epsilon_high, else
# epsilon).
VARIANTS = {
    "grpo_dapo.yaml": dict(loss_type="dapo", level="token", eps=(0.2, 0.28), scale="group", mask_truncated=True),
    "grpo_dr_grpo.yaml": dict(loss_type="dr_grpo", level="token", eps=(0.2, 0.2), scale="none", mask_truncated=False),
    "grpo_gspo.yaml": dict(loss_type="grpo", level="sequence", eps=(3e-4, 4e-4), scale="group", mask_truncated=False),
    "grpo_cispo.yaml": dict(loss_type="cispo", level="token", eps=(0.2, 5.0), scale="group", mask_truncated=False),
    "grpo_plain.yaml": dict(loss_type="grpo", level="token", eps=(0.2, 0.2), scale="group", mask_truncated=False),
    "grpo_bnpo.yaml": dict(loss_type="bnpo", level="token", eps=(0.2, 0.2), scale="group", mask_truncated=False),
}
VARIANT_DIR = REPO_ROOT / "recipes" / "configs" / "tiny-smolvlm"


def loss_settings(args) -> dict:
    high = args.epsilon_high if args.epsilon_high is not None else args.epsilon
    return dict(
        loss_type=args.loss_type,
        level=args.importance_sampling_level,
        eps=(args.epsilon, high),
        scale=args.scale_rewards,
        mask_truncated=args.mask_truncated_completions,
    )


@pytest.mark.learning
@pytest.mark.slow  # about a minute each at one thread; side by side with the default: benches/bench_grpo_variants.py
@pytest.mark.parametrize("name", VARIANTS)
def test_a_loss_variant_improves_held_out_reward_and_accuracy(tmp_path, name):
    """Each variant's offline config, from the default's start for the default's steps, clears the GRPO default's
    bars (figures per variant: docs/recipes.md, "GRPO loss variants")."""
    out = tmp_path / "run"
    results = run_recipe("grpo", VARIANT_DIR / name, out)
    assert_rl_default_learned(Path(name).stem, results, out)


@pytest.mark.parametrize("name", VARIANTS)
def test_a_loss_variant_config_is_its_recipe_and_states_the_loss_the_recipe_pins(name):
    from vlm_recipes.launch import method_of_config
    from vlm_recipes.training.methods import get_method

    path = VARIANT_DIR / name
    record = method_of_config(get_method("grpo"), path, ["--config", str(path)])  # what recipes/grpo.py runs
    assert record.name == path.stem and record.script_name == "grpo" and record.name in record.tags
    _, args, _ = parse_config(path)
    assert loss_settings(args) == VARIANTS[name]  # the YAML states its loss itself
    assert args.steps_per_generation == 4  # off-policy steps: ratios differ from 1, so the variants differ
    _, default_args, _ = parse_config(CONFIG)
    record.apply_fixed(default_args)
    assert loss_settings(default_args) == VARIANTS[name]  # and the record's pins alone make the default that loss
    assert record.result_name(args) == path.stem and record.label(args).startswith(f"GRPO (loss {args.loss_type}")
    if name == "grpo_gspo.yaml":
        assert record.label(args) == "GRPO (loss grpo, sequence-level importance ratio: GSPO)"


@pytest.mark.parametrize(
    "name, override, message",
    [
        ("grpo_dapo.yaml", ("--loss_type", "grpo"), r"loss_type: 'grpo' contradicts the grpo_dapo recipe"),
        ("grpo_gspo.yaml", ("--epsilon_high", "0.28"), r"epsilon_high: 0.28 contradicts the grpo_gspo recipe"),
        ("grpo_cispo.yaml", ("--epsilon_high", "0.2"), r"epsilon_high: 0.2 contradicts the grpo_cispo recipe"),
        ("grpo_plain.yaml", ("--importance_sampling_level", "sequence"), r"importance_sampling_level: 'sequence'"),
        ("grpo_dr_grpo.yaml", ("--scale_rewards", "group"), r"scale_rewards: 'group' contradicts the grpo_dr_grpo"),
    ],
)
def test_a_variant_refuses_settings_that_contradict_its_loss(name, override, message):
    with pytest.raises(ValueError, match=message + r".*use recipes/grpo.py with a recipe: grpo config"):
        parse_config(VARIANT_DIR / name, *override)


def test_a_variant_accepts_its_own_values_however_they_are_written(tmp_path):
    # YAML reads "3e-4" (no decimal point) as text: the pinned 3e-4 written so on the command line is the same value.
    _, args, _ = parse_config(VARIANT_DIR / "grpo_gspo.yaml", "--epsilon", "3e-4", "--loss_type", "grpo")
    assert args.epsilon == 3e-4
    drifted = tmp_path / "grpo_gspo.yaml"
    drifted.write_text((VARIANT_DIR / "grpo_gspo.yaml").read_text().replace("loss_type: grpo", "loss_type: dapo"))
    with pytest.raises(ValueError, match=rf"{drifted} \(or the command line\): loss_type: 'dapo' contradicts"):
        parse_config(drifted)


def test_a_misspelled_loss_fails_when_the_config_is_parsed(tmp_path, capsys):
    """TRL 1.16 reads loss_type and importance_sampling_level first in the loss, after the model is loaded and the
    held-out 'before' figures are computed; a misspelled name must not get that far (nor run the default loss)."""
    bad = tmp_path / "grpo.yaml"
    bad.write_text(CONFIG.read_text() + "loss_type: dr-grpo\n")
    with pytest.raises(ValueError, match=r"loss_type must be one of 'grpo', 'dr_grpo', 'dapo'.*got 'dr-grpo'"):
        parse_config(bad)
    with pytest.raises(SystemExit):
        parse_config(CONFIG, "--importance_sampling_level", "sequnce")
    assert "invalid choice: 'sequnce'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "override, message",
    [
        (("--loss_type", "cispo"), r"cispo caps each token's importance weight at epsilon_high, which is unset"),
        (("--loss_type", "cispo", "--epsilon_high", "0.28"), r"which is 0.28.*Set epsilon_high to 1 or more"),
    ],
)
def test_cispo_with_a_weight_cap_below_one_is_refused_before_anything_loads(tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        run_recipe("grpo", CONFIG, tmp_path / "out", *override)
    assert not (tmp_path / "out").exists()
    parse_config(CONFIG, "--loss_type", "cispo", "--epsilon_high", "5.0")  # CISPO as grpo_cispo.yaml sets it


@pytest.mark.learning
@pytest.mark.parametrize("name", VARIANTS)
def test_a_loss_variant_reaches_trls_loss_as_configured(tmp_path, monkeypatch, name):
    """One training step of each variant config through recipes/grpo.py: TRL's loss computation sees the variant's
    loss type, importance sampling level, clipping range, reward scaling and truncation masking, on a rollout of 4
    optimizer steps, and the run is reported under the variant's name."""
    from trl import GRPOTrainer

    seen = []
    compute_loss = GRPOTrainer._compute_loss

    def recording(self, model, inputs):
        seen.append(
            dict(
                loss_type=self.loss_type,
                level=self.importance_sampling_level,
                eps=(self.epsilon_low, self.epsilon_high),
                scale=self.scale_rewards,
                mask_truncated=self.mask_truncated_completions,
                steps_per_generation=self.args.steps_per_generation,
            )
        )
        return compute_loss(self, model, inputs)

    monkeypatch.setattr(GRPOTrainer, "_compute_loss", recording)
    results = run_recipe(
        "grpo", VARIANT_DIR / name, tmp_path / "run", "--max_steps", "1", "--synthetic_train_samples", "64",
        "--max_eval_samples", "4", "--per_device_eval_batch_size", "4",
    )  # fmt: skip
    assert seen and all(s == {**VARIANTS[name], "steps_per_generation": 4} for s in seen), seen
    assert results["train_steps"] == 1 and results["method"] == name.removesuffix(".yaml")

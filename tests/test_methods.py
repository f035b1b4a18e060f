"""The method registry (records, variants), full SFT, the held-out metric per recipe, the one output-directory policy
and the public API."""

import doctest
import json
import shutil

import pytest
import torch
from helpers import CONFIGS, RECIPES, TRAINING_RECIPES, recipe_module, recipe_of, run_recipe

import vlm_recipes
from vlm_recipes.models.families import family_of
from vlm_recipes.outputs import RESULTS_FILE, run_directory
from vlm_recipes.outputs.checkpoints import mark_complete
from vlm_recipes.paths import REPO_ROOT
from vlm_recipes.training.methods import METHODS, Method, get_method

pytestmark = pytest.mark.unit

PACKAGE = REPO_ROOT / "vlm_recipes"


def test_every_method_has_its_recipe_script_and_every_config_a_known_recipe():
    variants = {"grpo_dapo", "grpo_dr_grpo", "grpo_gspo", "grpo_cispo", "grpo_plain", "grpo_bnpo"}
    assert set(METHODS) == {"sft", "dpo", "mpo", "grpo", "rloo"} | variants
    for name, method in METHODS.items():
        assert isinstance(method, Method) and method.name == name
        module = recipe_module(name)  # recipes/<name>.py; a variant's: its method's script
        assert module.METHOD is METHODS[method.script_name] and module.PARSER_TYPES == method.parser_types
        if name in variants:  # config-only: no script of its own, an offline config of its own
            assert method.script_name == "grpo" and method.fixed and not (REPO_ROOT / f"recipes/{name}.py").exists()
            assert any(recipe_of(p) == name for p in CONFIGS), name
            continue
        assert method.script_name == name and not method.fixed
        assert recipe_of(module.DEFAULT_CONFIG) == name
        assert any(recipe_of(p) == name for p in CONFIGS if not p.parent.name.startswith("tiny-")), name
    for path in CONFIGS:
        assert recipe_of(path) in RECIPES, path
    assert TRAINING_RECIPES == set(METHODS)


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"Unknown training method 'ppo'; known methods: sft \(.*dpo.*mpo.*grpo"):
        get_method("ppo")


def test_a_config_launched_with_another_recipe_is_refused_naming_the_right_one(tmp_path):
    config = REPO_ROOT / "recipes/configs/tiny-smolvlm/dpo.yaml"
    with pytest.raises(ValueError, match=r"config for recipe 'dpo'.*launch it with recipes/dpo.py"):
        run_recipe("grpo", config, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_mpo_refuses_a_single_loss(tmp_path):
    config = REPO_ROOT / "recipes/configs/tiny-smolvlm/mpo.yaml"
    with pytest.raises(ValueError, match="MPO mixes several preference losses"):
        run_recipe("mpo", config, tmp_path / "out", "--loss_type", "sigmoid", "--loss_weights", "1.0")


def test_run_directory_keeps_resumable_work_and_nothing_else(tmp_path):
    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError), run_directory(fresh) as (out, resume):
        assert resume is None and out.is_dir()
        raise RuntimeError("crash before any checkpoint")
    assert not fresh.exists()  # created by the run, nothing worth keeping: removed

    with pytest.raises(RuntimeError), run_directory(fresh) as (out, _):
        (out / "checkpoint-4").mkdir()
        mark_complete(out / "checkpoint-4", 4)
        raise RuntimeError("crash after a complete checkpoint")
    assert (fresh / "checkpoint-4").is_dir()  # kept: a rerun resumes from it
    with run_directory(fresh) as (_, resume):
        assert resume == str(fresh / "checkpoint-4")
        (fresh / RESULTS_FILE).write_text("{}")
    with pytest.raises(FileExistsError, match="already holds a run that finished"), run_directory(fresh):
        pass

    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    with pytest.raises(RuntimeError), run_directory(existing) as _:
        raise RuntimeError("crash")
    assert (existing / "notes.txt").read_text() == "mine"  # never remove a directory the run did not create


@pytest.mark.learning
def test_full_sft_improves_and_changes_every_trainable_weight_group(tmp_path):
    """Issue 12: recipes/sft.py with use_peft: false trains every weight (no adapter) and learns."""
    config = REPO_ROOT / "recipes/configs/tiny-smolvlm/sft_full.yaml"
    out = tmp_path / "run"
    results = run_recipe("sft", config, out)
    assert results["method"] == "sft" and results["trainable_parameters"] == results["total_parameters"]
    assert results["accuracy_after"] >= results["accuracy_before"] + 0.5, results
    assert (out / "model.safetensors").exists() and not (out / "adapter_model.safetensors").exists()

    from transformers import AutoModelForImageTextToText

    from vlm_recipes.tiny import resolve

    base = AutoModelForImageTextToText.from_pretrained(resolve("tiny:smolvlm"))
    trained = dict(AutoModelForImageTextToText.from_pretrained(out).named_parameters())
    family = family_of(base)
    unchanged, parts = {}, set()
    for name, weight in base.named_parameters():
        parts.add(family.part_of(name))
        if torch.equal(weight, trained[name]):
            unchanged.setdefault(family.part_of(name), []).append(name)
    assert parts == {"vision_tower", "projector", "language_model"}
    assert not unchanged, f"weights full fine-tuning left untouched: {unchanged}"


@pytest.mark.learning
def test_eval_metrics_match_evaluate_models_for_the_same_adapter_and_rows(tmp_path):
    """`eval_metrics: [anls, relaxed_accuracy]` writes <metric>_before/_after, equal to what evaluate_models.py
    reports for the base model and for the trained adapter on the same held-out rows."""
    config = REPO_ROOT / "recipes/configs/tiny-smolvlm/sft_lora.yaml"
    run = tmp_path / "run"
    common = ["--max_eval_samples", "24", "--eval_max_new_tokens", "8"]
    results = run_recipe(
        "sft",
        config,
        run,
        *common,
        "--max_steps",
        "20",
        "--per_device_eval_batch_size",
        "8",
        "--eval_metrics",
        "anls",
        "relaxed_accuracy",
    )
    for name in ("anls", "relaxed_accuracy"):
        assert {f"{name}_before", f"{name}_after"} <= set(results)
    card = (run / "README.md").read_text()
    assert "| anls |" in card and "| relaxed_accuracy |" in card

    report = recipe_module("evaluate_models").main(
        [
            "--config",
            str(REPO_ROOT / "recipes/configs/tiny-smolvlm/evaluate.yaml"),
            "--adapter_paths",
            str(run),
            "--other_models",
            "",
            "--labels",
            "",
            "--metrics",
            "anls",
            "relaxed_accuracy",
            "--batch_size",
            "8",
            "--max_new_tokens",
            "8",
            "--max_eval_samples",
            "24",
            "--output_dir",
            str(tmp_path / "eval"),
        ]
    )
    base, adapter = report["models"]
    for name in ("anls", "relaxed_accuracy"):
        assert base["metrics"][name] == pytest.approx(results[f"{name}_before"], abs=1e-9)
        assert adapter["metrics"][name] == pytest.approx(results[f"{name}_after"], abs=1e-9)
    assert results["anls_after"] > results["anls_before"]
    saved = json.loads((run / RESULTS_FILE).read_text())
    assert saved["anls_after"] == results["anls_after"]


@pytest.mark.learning
def test_eval_references_column_must_exist(tmp_path):
    config = REPO_ROOT / "recipes/configs/tiny-smolvlm/sft_lora.yaml"
    with pytest.raises(ValueError, match="eval_references_column 'answers' is not a column"):
        run_recipe("sft", config, tmp_path / "out", "--eval_metrics", "anls", "--eval_references_column", "answers")
    assert not (tmp_path / "out").exists()


@pytest.mark.learning
def test_the_public_api_docstring_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    failures, tried = doctest.testmod(vlm_recipes, extraglobs={"tmp_dir": str(tmp_path)}, optionflags=doctest.ELLIPSIS)
    assert tried >= 4 and failures == 0
    methods_doc = doctest.testmod(__import__("vlm_recipes.training.methods", fromlist=["x"]))
    assert methods_doc.attempted >= 2 and methods_doc.failed == 0
    assert set(vlm_recipes.__all__) >= {"load_config", "train", "VisionChatCollator", "FAMILIES", "get_method"}
    shutil.rmtree(tmp_path / "run", ignore_errors=True)


def test_a_config_only_variant_is_one_record_and_runs_through_its_base_script(tmp_path, monkeypatch):
    import yaml

    from vlm_recipes.launch import method_of_config, parse

    base = get_method("grpo")
    variant = base.variant("gspo_demo", "GRPO with sequence-level ratios", {"importance_sampling_level": "sequence"})
    monkeypatch.setitem(METHODS, "gspo_demo", variant)
    assert variant.script_name == "grpo" and variant.trainer_class is base.trainer_class
    assert "gspo_demo" in variant.tags
    config = yaml.safe_load((REPO_ROOT / "recipes/configs/tiny-smolvlm/grpo.yaml").read_text())
    path = tmp_path / "gspo_demo.yaml"
    path.write_text(yaml.safe_dump({**config, "recipe": "gspo_demo"}))
    assert method_of_config(base, path, ["--config", str(path)]) is variant
    _, args, _ = parse(variant.parser_types, path, ["--config", str(path)], recipe="gspo_demo")
    variant.apply_fixed(args)
    assert args.importance_sampling_level == "sequence"
    with pytest.raises(ValueError, match="importance_sampling_level: 'token' contradicts the gspo_demo recipe"):
        parse(variant.parser_types, path, ["--config", str(path), "--importance_sampling_level", "token"], "gspo_demo")
    with pytest.raises(ValueError, match=r"config for recipe 'gspo_demo'.*launch it with recipes/grpo.py"):
        method_of_config(get_method("sft"), path, ["--config", str(path)])

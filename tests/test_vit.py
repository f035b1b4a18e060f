"""The ViT baseline from scratch, offline: real digits to >= 0.9 held-out top-1, outputs, bad input."""

import json

import pytest
from helpers import run_recipe
from safetensors.torch import load_file

from vlm_recipes.baselines.image_data import ImageDataArguments, load_classification
from vlm_recipes.paths import REPO_ROOT

pytestmark = pytest.mark.unit

DIGITS = REPO_ROOT / "recipes/configs/tiny-vit/vit_digits.yaml"


def test_digits_split_is_held_out_and_stratified():
    train, test, names = load_classification(ImageDataArguments(dataset_name="digits", max_eval_samples=None), seed=42)
    assert names == [str(d) for d in range(10)]
    assert len(train) + len(test) == 1797 and len(test) == 360
    counts = [test["label"].count(c) for c in range(10)]
    assert min(counts) >= 35 and max(counts) <= 37  # every class about 20% of its 178-183 images
    train_pixels = {img.tobytes() for img in train["image"]}
    # Some digits scans are pixel-identical; apart from those, no held-out image was trained on.
    assert sum(img.tobytes() in train_pixels for img in test["image"]) <= 3


@pytest.mark.learning
def test_vit_from_scratch_on_digits_reaches_090_held_out(tmp_path):
    out = tmp_path / "run"
    results = run_recipe("vit_baseline", DIGITS, out)
    assert results["top1_before"] < 0.3
    assert results["top1_after"] >= 0.9
    assert results["num_eval_samples"] == 360 and results["num_classes"] == 10
    saved = json.loads((out / "eval_results.json").read_text())
    assert saved["top1_after"] == results["top1_after"] and saved["top5_after"] >= saved["top1_after"]
    assert (out / "confusion_matrix.png").stat().st_size > 0
    assert load_file(out / "model.safetensors")  # weights as safetensors, no pickle
    assert not (out / "training_args.bin").exists()
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"]["3"] == "3" and config["image_size"] == 16


def test_output_dir_with_another_run_is_refused(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "eval_results.json").write_text("{}")
    with pytest.raises(FileExistsError, match="already holds a run"):
        run_recipe("vit_baseline", DIGITS, out, "--overwrite_output_dir", "false")
    assert (out / "eval_results.json").read_text() == "{}"


def test_patch_size_must_divide_image_size(tmp_path):
    with pytest.raises(ValueError, match="multiple of patch_size"):
        run_recipe("vit_baseline", DIGITS, tmp_path / "run", "--patch_size", "5")


def test_missing_label_column_names_the_columns(tmp_path):
    from PIL import Image

    folder = tmp_path / "data"
    folder.mkdir()
    for i in range(4):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(folder / f"{i}.png")
    (folder / "metadata.jsonl").write_text("".join(f'{{"file_name": "{i}.png", "kind": "x"}}\n' for i in range(4)))
    with pytest.raises(ValueError, match=r"no column \['label'\]"):
        run_recipe("vit_baseline", DIGITS, tmp_path / "run", "--dataset_name", str(folder))
    assert not (tmp_path / "run").exists()


@pytest.mark.integration
def test_real_finetuning_config_runs_on_the_beans_standin(tmp_path, standins):
    """vit_finetune.yaml on AI-Lab-Makerere/beans' layout (train/validation/test, ClassLabel `labels`), with a
    small ViT from scratch in place of the Hub checkpoint."""
    config = REPO_ROOT / "recipes/configs/vit-base-patch16-224/vit_finetune.yaml"
    results = run_recipe(
        "vit_baseline", config, tmp_path / "run", "--model_name_or_path", "scratch", "--image_size", "16",
        "--hidden_size", "32", "--num_hidden_layers", "1", "--intermediate_size", "32", "--use_cpu", "true",
        "--dataset_name", str(standins["AI-Lab-Makerere/beans"]), "--max_steps", "2",
        "--per_device_train_batch_size", "3", "--dataloader_num_workers", "0",
    )  # fmt: skip
    assert results["train_steps"] == 2 and results["num_classes"] == 3
    assert results["num_eval_samples"] == 3 and results["num_train_samples"] == 6  # the test split, not held out
    assert sorted(results["per_class_recall"]) == ["angular_leaf_spot", "bean_rust", "healthy"]

"""The CLIP recipes end to end on the tiny CLIP, offline: zero-shot tasks, search over a folder, training."""

import json

import pytest
from helpers import recipe_module, run_recipe
from PIL import Image

from vlm_recipes.data import synthetic
from vlm_recipes.paths import REPO_ROOT

pytestmark = pytest.mark.learning

ZERO_SHOT = REPO_ROOT / "recipes/configs/tiny-clip/clip_zero_shot.yaml"


def zero_shot(out, *argv: str) -> dict:
    """The offline default zero-shot config, with overrides (the recipe has no training loggers to turn off)."""
    return recipe_module("clip_zero_shot").main(["--config", str(ZERO_SHOT), "--output_dir", str(out), *argv])


@pytest.fixture(scope="module")
def zero_shot_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("zs") / "run"
    results = zero_shot(out, "--max_eval_samples", "240", "--binding_samples", "100")
    return results, out


def test_zero_shot_classification_beats_chance_by_a_wide_margin(zero_shot_run):
    results, out = zero_shot_run
    classify = results["classify"]
    chance = 1 / len(synthetic.CLASS_NAMES)
    for variant in ("bare_name", "single_template", "ensemble"):
        assert classify[variant]["top1"] > 6 * chance, variant  # > 0.5 on 12 classes
        assert classify[variant]["top5"] >= classify[variant]["top1"]
    assert classify["num_images"] == 240
    assert (out / "confusion_matrix.png").stat().st_size > 0
    assert (
        json.loads((out / "eval_results.json").read_text())["classify"]["ensemble"]["top1"]
        == classify["ensemble"]["top1"]
    )


def test_zero_shot_retrieval_ood_and_failure_cases(zero_shot_run):
    results, out = zero_shot_run
    retrieval = results["retrieval"]
    assert retrieval["text_to_image_recall@1"] > 0.5 and retrieval["image_to_text_recall@1"] > 0.5
    assert (
        retrieval["text_to_image_recall@10"]
        >= retrieval["text_to_image_recall@5"]
        >= retrieval["text_to_image_recall@1"]
    )
    # Digits look nothing like the shapes the tiny CLIP knows: both OOD scores separate them.
    assert results["ood"]["mcm"]["auroc"] > 0.8 and results["ood"]["max_cosine"]["auroc"] > 0.8
    failures = results["failures"]
    for probe in ("swapped_attributes", "replaced_attribute", "swapped_relation"):
        assert 0.0 <= failures[f"{probe}_accuracy"] <= 1.0
    # A word-level change (a colour that is not in the image) is easy; the spatial relation was never in the
    # training captions, so the model cannot do much better than chance on it.
    assert failures["replaced_attribute_accuracy"] > 0.9
    assert failures["swapped_relation_accuracy"] < failures["replaced_attribute_accuracy"]
    for name in ("retrieval_examples.png", "ood_mcm_histogram.png", "ood_max_cosine_histogram.png", "search_0.png"):
        assert (out / name).stat().st_size > 0, name


def test_image_search_over_a_folder_finds_the_queried_shape(tmp_path):
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    import random

    rng = random.Random(0)
    kinds = [("red", "circle"), ("blue", "square"), ("green", "triangle"), ("yellow", "square")]
    for i in range(12):
        color, shape = kinds[i % 4]
        where = folder / "nested" if i % 2 else folder
        synthetic.render_scene(rng, 64, [(color, shape)]).save(where / f"{i:02d}_{color}_{shape}.png")
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    argv = ["--tasks", "search", "--search_folder", str(folder), "--search_queries", "a red circle", "--top_k", "3"]
    results = zero_shot(out, *argv)
    assert results["search"]["num_images"] == 12
    found = json.loads((out / "search_results.json").read_text())["a red circle"]
    assert [Image.open(f["path"]).size for f in found] == [(64, 64)] * 3
    assert all("red_circle" in f["path"] for f in found)  # the three red circles, out of 12 images
    assert (out / "search_0.png").exists()


def test_zero_shot_classification_from_a_local_image_folder(tmp_path):
    """A folder with one subfolder per class is a dataset: class names come from the folder names."""
    import random

    rng = random.Random(1)
    for name in ("red circle", "blue square"):
        color, shape = name.split()
        (tmp_path / "data" / "test" / name).mkdir(parents=True)
        for i in range(6):
            synthetic.render_scene(rng, 64, [(color, shape)]).save(tmp_path / "data" / "test" / name / f"{i}.png")
    out = tmp_path / "out"
    results = zero_shot(out, "--tasks", "classify", "--dataset_name", str(tmp_path / "data"))
    assert results["classify"]["ensemble"]["top1"] > 0.9
    assert "top5" not in results["classify"]["ensemble"]  # 2 classes
    assert set(results["classify"]["ensemble"]["per_class_recall"]) == {"red circle", "blue square"}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--tasks", "classify", "colour"], "Unknown zero-shot task"),
        (["--templates", "a photo of a cat"], "'{}'"),
        (["--tasks", "search", "--search_folder", "/nonexistent/photos"], "not a directory"),
    ],
)
def test_bad_zero_shot_input_is_refused_and_leaves_no_output(tmp_path, argv, message):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=message):
        zero_shot(out, *argv)
    assert not out.exists()


def test_empty_search_folder_names_the_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty has no images"):
        zero_shot(tmp_path / "out", "--tasks", "search", "--search_folder", str(tmp_path / "empty"))


def test_contrastive_training_improves_held_out_zero_shot_figures(tmp_path):
    out = tmp_path / "run"
    config = REPO_ROOT / "recipes/configs/tiny-clip/clip_train.yaml"
    secret = "hf_ClipTrainSecret987"
    results = run_recipe(
        "clip_train", config, out, "--max_steps", "150", "--synthetic_train_samples", "3000",
        "--max_eval_samples", "200", "--save_strategy", "steps", "--save_steps", "100", "--hub_token", secret,
    )  # fmt: skip
    files = [p for p in out.rglob("*") if p.is_file()]
    assert (out / "checkpoint-100" / "model.safetensors").exists()
    assert not [p for p in files if p.suffix == ".bin"]  # no pickled training arguments, in checkpoints either
    assert not [p for p in files if secret.encode() in p.read_bytes()]
    assert "library_name: transformers" in (out / "README.md").read_text()
    assert results["zero_shot_top1_after"] > results["zero_shot_top1_before"] + 0.2
    assert results["text_to_image_r1_after"] > results["text_to_image_r1_before"]
    assert (out / "model.safetensors").exists() and not (out / "training_args.bin").exists()
    assert json.loads((out / "eval_results.json").read_text())["train_steps"] == 150


@pytest.mark.integration
def test_siglip_loss_needs_a_model_with_a_bias(tmp_path):
    config = REPO_ROOT / "recipes/configs/tiny-clip/clip_train.yaml"
    with pytest.raises(ValueError, match="logit_bias"):
        run_recipe(
            "clip_train", config, tmp_path / "run", "--loss", "siglip", "--max_steps", "1", "--max_eval_samples", "8"
        )
    assert not (tmp_path / "run").exists()


def test_zero_shot_classification_from_a_metadata_file_with_label_names(tmp_path):
    import random

    rng = random.Random(2)
    folder = tmp_path / "data"
    folder.mkdir()
    lines = []
    for i in range(12):
        color, shape = ("yellow", "triangle") if i % 2 else ("green", "circle")
        synthetic.render_scene(rng, 64, [(color, shape)]).save(folder / f"{i}.png")
        lines.append(json.dumps({"file_name": f"{i}.png", "label": f"{color} {shape}"}))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    results = zero_shot(
        tmp_path / "out", "--tasks", "classify", "--dataset_name", str(folder), "--test_fraction", "0.5"
    )
    # A folder without splits: zero-shot scores the half a clip_train run on it would hold out, not its training rows.
    assert results["classify"]["num_images"] == 6
    assert results["classify"]["ensemble"]["top1"] > 0.9
    assert sorted(results["classify"]["ensemble"]["per_class_recall"]) == ["green circle", "yellow triangle"]


BASELINE_REAL = {
    "clip": REPO_ROOT / "recipes/configs/clip-vit-base-patch32/clip_zero_shot.yaml",
    "siglip": REPO_ROOT / "recipes/configs/siglip-base-patch16-224/clip_zero_shot.yaml",
}


@pytest.mark.parametrize("name", sorted(BASELINE_REAL))
def test_real_zero_shot_config_runs_on_the_dataset_standins(tmp_path, standins, name):
    """The real zero-shot configs (MNIST classification, Flickr30k retrieval, FashionMNIST as OOD) on the tiny CLIP
    and the stand-ins of their three datasets; only the model, the dataset paths and the budget are swapped."""
    import yaml

    config = yaml.safe_load(BASELINE_REAL[name].read_text())
    results = recipe_module("clip_zero_shot").main(
        [
            "--config", str(BASELINE_REAL[name]), "--model_name_or_path", "tiny:clip", "--use_cpu", "true",
            "--dataset_name", str(standins[config["dataset_name"]]),
            "--caption_dataset_name", str(standins[config["caption_dataset_name"]]),
            "--ood_dataset_name", str(standins[config["ood_dataset_name"]]),
            "--max_eval_samples", "8", "--binding_samples", "8", "--batch_size", "8",
            "--output_dir", str(tmp_path / "out"),
        ]
    )  # fmt: skip
    assert results["classify"]["num_images"] == 8 and results["classify"]["templates"] == config["templates"]
    assert results["retrieval"]["num_pairs"] == 8  # the first caption of 8 of the 12 stand-in images
    assert results["ood"]["num_in"] == 8 and results["ood"]["num_out"] == 8
    assert "swapped_attributes_accuracy" in results["failures"]


def test_real_contrastive_training_config_runs_on_the_flickr30k_standin(tmp_path, standins):
    """clip_train on lmms-lab-encoder/flickr30k's layout: its one split (`test`) is trained on, test_fraction held
    out."""
    config = REPO_ROOT / "recipes/configs/clip-vit-base-patch32/clip_train.yaml"
    results = run_recipe(
        "clip_train", config, tmp_path / "run", "--model_name_or_path", "tiny:clip", "--use_cpu", "true",
        "--dataset_name", str(standins["lmms-lab-encoder/flickr30k"]), "--max_steps", "2",
        "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4", "--dataloader_num_workers", "0",
    )  # fmt: skip
    assert results["train_steps"] == 2
    assert results["num_eval_pairs"] == 2 and results["num_train_samples"] == 10  # 10% of 12, rounded up
    assert "text_to_image_r1_after" in results

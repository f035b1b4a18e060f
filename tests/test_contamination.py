"""The contamination check (vlm_recipes/data/contamination.py, image_hashes.py): re-encoded and resized copies of a
scored image are found in the training data, other scenes are not; question text is compared normalised; the
refusal names the numbers and the fix and leaves nothing behind; allow_overlap runs and marks the figure; hashes are
cached by content."""

import io
import json
import random

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vlm_recipes.data import image_hashes
from vlm_recipes.data.contamination import (
    MAX_DISTANCE,
    ContaminationError,
    Fingerprint,
    fingerprint_dataset,
    fingerprint_rows,
    measure,
    near_pairs,
    normalize_question,
    refuse_above,
)
from vlm_recipes.data.image_hashes import HashCache, phash

pytestmark = pytest.mark.unit


def scene(seed: int, size: int = 224) -> Image.Image:
    """A photo-like synthetic scene: a smooth random background (an upsampled 6x6 field) and five shapes."""
    rng = random.Random(seed)
    field = np.array([[rng.randint(40, 215) for _ in range(6)] for _ in range(6)], dtype=np.uint8)
    image = Image.fromarray(field).resize((size, size), Image.Resampling.BICUBIC).convert("RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(5):
        x, y, side = rng.randint(0, size - 40), rng.randint(0, size - 40), rng.randint(20, 60)
        color = tuple(rng.randint(0, 255) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x, y, x + side, y + side), fill=color)
    return image


def jpeg_copy(image: Image.Image, scale: float = 0.6, quality: int = 70) -> dict:
    """A resized copy re-encoded as JPEG at `quality`, as `datasets` stores an undecoded image."""
    small = image.resize((int(image.width * scale), int(image.height * scale)), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=quality)
    return {"bytes": buffer.getvalue(), "path": None}


def png(image: Image.Image) -> dict:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def bits(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


def test_a_jpeg_q70_resized_copy_is_close_and_other_scenes_of_the_same_size_are_far():
    for seed in range(20):
        original = scene(seed)
        assert bits(phash(png(original)), phash(jpeg_copy(original))) <= 2
        for other in (seed + 100, seed + 200):
            assert bits(phash(png(original)), phash(png(scene(other)))) > MAX_DISTANCE


def test_the_check_finds_a_reencoded_resized_copy_in_the_training_set_and_ignores_other_scenes(tmp_path):
    cache = HashCache(tmp_path / "hashes.sqlite")
    scored_images = [scene(1000 + i) for i in range(10)]
    # Training: 40 other scenes of the same size, plus a JPEG q70, 60%-size copy of scored image 3.
    train_images = [[png(scene(i))] for i in range(40)] + [[jpeg_copy(scored_images[3])]]
    training = fingerprint_rows("train", train_images, ["q"] * 41, [f"t{i}" for i in range(41)], cache)
    scored = fingerprint_rows(
        "scored", [[png(im)] for im in scored_images], ["other"] * 10, [f"s{i}" for i in range(10)], cache
    )
    overlap = measure(training, scored)
    assert (overlap.rows, overlap.image_rows, overlap.question_rows, overlap.same_rows) == (10, 1, 0, 0)
    assert overlap.examples[0][:2] == ("s3", "t40")
    assert overlap.above and overlap.refused  # 10% > 1%


def test_plain_one_colour_images_are_not_compared(tmp_path):
    blank = [[png(Image.new("RGB", (64, 64), (200, 10 * i, 10)))] for i in range(4)]
    training = fingerprint_rows("train", blank[:2], ["q", "q"], ["a", "b"], HashCache(tmp_path / "h.sqlite"))
    scored = fingerprint_rows("scored", blank[2:], ["x", "y"], ["c", "d"], HashCache(tmp_path / "h.sqlite"))
    overlap = measure(training, scored)
    assert overlap.image_rows == 0 and overlap.images_plain == 2


def test_question_normalisation_catches_case_punctuation_and_whitespace_variants():
    base = "What is the title of the document?"
    for variant in ("what is the TITLE of the document", "  What is the title   of the document ?!", "What, is the "
                    "title of the document...", "ＷＨＡＴ is the title of\tthe document?"):  # fmt: skip
        assert normalize_question(variant) == normalize_question(base), variant
    assert normalize_question("What is the date of the document?") != normalize_question(base)
    training = fingerprint_rows("train", [[]] * 2, [base, "Who signed it?"], ["t0", "t1"], None)
    scored = fingerprint_rows("scored", [[]] * 3, ["WHAT is the title of the document", "who SIGNED it", "When?"],
                              ["s0", "s1", "s2"], None)  # fmt: skip
    overlap = measure(training, scored)
    assert overlap.question_rows == 2 and overlap.image_rows == 0 and not overlap.refused  # text alone never refuses


def test_same_item_needs_the_image_and_the_question_on_one_training_row(tmp_path):
    cache = HashCache(tmp_path / "h.sqlite")
    page = scene(7)
    # Training: the page with another question, and the question on another page.
    training = fingerprint_rows(
        "train", [[png(page)], [png(scene(8))]], ["Who signed it?", "What is the date?"], ["t0", "t1"], cache
    )
    scored = fingerprint_rows("scored", [[jpeg_copy(page)]], ["what is the date"], ["s0"], cache)
    overlap = measure(training, scored)
    assert (overlap.image_rows, overlap.question_rows, overlap.same_rows) == (1, 1, 0)
    scored = fingerprint_rows("scored", [[jpeg_copy(page)]], ["who signed it"], ["s0"], cache)
    assert measure(training, scored).same_rows == 1


def test_multi_index_search_finds_exactly_the_pairs_all_pairs_finds():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2**63, 5000, dtype=np.uint64) * np.uint64(2)
    queries = rng.integers(0, 2**63, 800, dtype=np.uint64)
    for k in range(60):  # planted pairs 0..10 bits apart, around the threshold of 8
        flips = rng.choice(64, size=k % 11, replace=False)
        queries[k] = base[k * 7] ^ np.uint64(sum(1 << int(f) for f in flips))
    queries[60:70] = base[0]  # several queries on one base hash
    expected = set(zip(*near_pairs(queries, base, 8, method="all")))
    found = set(zip(*near_pairs(queries, base, 8, method="index")))
    assert found == expected
    assert {(k, k * 7) for k in range(60) if k % 11 <= 8} <= found
    assert not {(k, k * 7) for k in range(60) if k % 11 > 8} & found


def test_the_refusal_names_the_numbers_and_the_fix_and_allow_overlap_marks_it(tmp_path):
    page = scene(3)
    training = fingerprint_rows("train", [[png(page)]], ["q"], ["train[0]"], None)
    scored = fingerprint_rows("held-out", [[jpeg_copy(page)], [png(scene(4))]], ["a", "b"], ["r1", "r2"], None)
    with pytest.raises(ContaminationError) as info:
        refuse_above([measure(training, scored)], "Contamination check")
    message = str(info.value)
    assert "held-out: 1 of 2 rows (50.0%) have an image seen in training" in message
    assert "over max_overlap 1%" in message and "r1 ~ train[0]" in message and "allow_overlap: true" in message
    allowed = measure(training, scored, allowed=True)
    refuse_above([allowed], "Contamination check")  # no error
    assert "ABOVE 1% (allowed by allow_overlap: true)" in allowed.line()
    assert allowed.as_dict()["above_threshold"] and allowed.as_dict()["allowed"]
    assert not measure(training, scored, max_overlap=0.5).above  # 50% is not above 50%


def test_hashes_are_cached_by_content_and_a_changed_image_is_hashed_again(tmp_path, monkeypatch):
    calls = []
    thumbnail = image_hashes._thumbnail
    monkeypatch.setattr(image_hashes, "_thumbnail", lambda v: calls.append(1) or thumbnail(v))
    paths = []
    for i in range(5):
        path = tmp_path / f"{i}.png"
        scene(i, 96).save(path)
        paths.append(str(path))
    cache = HashCache(tmp_path / "hashes.sqlite")
    first = fingerprint_rows("t", [[p] for p in paths], [None] * 5, list("abcde"), cache)
    assert len(calls) == 5 and first.stats.hashed == 5
    again = fingerprint_rows(
        "t", [[p] for p in paths], [None] * 5, list("abcde"), HashCache(tmp_path / "hashes.sqlite")
    )
    assert len(calls) == 5 and again.stats.cached == 5  # nothing rehashed
    assert again.image_hash.tolist() == first.image_hash.tolist()
    scene(99, 96).save(paths[2])  # the same path, another content
    changed = fingerprint_rows("t", [[p] for p in paths], [None] * 5, list("abcde"), cache)
    assert len(calls) == 6 and changed.stats.hashed == 1 and changed.image_hash[2] != first.image_hash[2]


def test_a_fingerprint_round_trips_through_its_file(tmp_path):
    from datasets import Dataset, Image, List

    rows = [{"images": [png(scene(i, 64))], "messages": [{"role": "user", "content": f"Q{i}?"}]} for i in range(3)]
    ds = Dataset.from_list(rows).cast_column("images", List(Image()))
    fp = fingerprint_dataset(ds, "train", None, id_prefix="train")
    fp.save(tmp_path / "fp.npz")
    back = Fingerprint.load(tmp_path / "fp.npz")
    assert back.row_ids == ["train[0]", "train[1]", "train[2]"]
    assert (
        back.image_hash.tolist() == fp.image_hash.tolist() and back.question_key.tolist() == fp.question_key.tolist()
    )
    assert json.loads(json.dumps(measure(back, fp).as_dict()))["image_overlap"] == 3


# -- through the recipes: a local data file whose held-out rows share images with its training rows -----------------

SFT_CONFIG = "recipes/configs/tiny-smolvlm/sft_lora.yaml"
EVALUATE_CONFIG = "recipes/configs/tiny-smolvlm/evaluate.yaml"
TINY = ["--model_name_or_path", "tiny:smolvlm-random"]


def shared_page_data(tmp_path):
    """12 rows on 4 scenes (three questions per scene, as DocVQA asks several questions per page): holding out half
    of the rows by row leaves their scenes in training."""
    (tmp_path / "imgs").mkdir()
    for i in range(4):
        scene(500 + i, 96).save(tmp_path / "imgs" / f"{i}.png")
    rows = [
        {"image": f"imgs/{i % 4}.png", "question": f"Question {i}: what is in the picture?", "answer": "shapes"}
        for i in range(12)
    ]
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return ["--dataset_name", str(path), "--image_column", "image", "--question_column", "question",
            "--answer_column", "answer", "--eval_fraction", "0.5"]  # fmt: skip


def split_folder(tmp_path, copies: int):
    """A local dataset laid out like a Hub repository: a train split of 8 scenes and a test split of 4 others, the
    first `copies` of which are replaced by JPEG q70, 60%-size copies of training scenes."""
    from datasets import Dataset, Image

    def split(seeds, name, copied=()):
        rows = []
        for n, seed in enumerate(seeds):
            image = jpeg_copy(scene(seed, 96)) if n in copied else png(scene(seed, 96))
            rows.append({"image": image, "question": f"{name} question {n}?", "answer": "shapes"})
        ds = Dataset.from_list(rows).cast_column("image", Image())
        (tmp_path / "repo" / "data").mkdir(parents=True, exist_ok=True)
        ds.to_parquet(tmp_path / "repo" / "data" / f"{name}-00000-of-00001.parquet")

    split(range(600, 608), "train")
    split([600 + k for k in range(copies)] + list(range(700, 704 - copies)), "test", copied=range(copies))
    return ["--dataset_name", str(tmp_path / "repo"), "--image_column", "image", "--question_column", "question",
            "--answer_column", "answer", "--dataset_test_split", "test"]  # fmt: skip


SMALL = ["--max_steps", "1", "--per_device_train_batch_size", "2", "--max_eval_samples", "6",
         "--per_device_eval_batch_size", "6", "--eval_max_new_tokens", "2"]  # fmt: skip


@pytest.mark.integration
def test_training_refuses_a_test_split_with_copies_of_training_images_and_allow_overlap_runs_and_marks_it(tmp_path):
    from helpers import run_recipe

    data = split_folder(tmp_path, copies=1)
    out = tmp_path / "run"
    with pytest.raises(ContaminationError) as info:
        run_recipe("sft", SFT_CONFIG, out, *TINY, *data, *SMALL)
    message = str(info.value)
    assert (
        "Contamination check: " in message
        and "held-out: 1 of 4 rows (25.0%) have an image seen in training" in message
    )
    assert "over max_overlap 1%" in message and "allow_overlap: true" in message and "\n" not in message
    assert not out.exists()  # refused before the model loaded and before anything was written

    results = run_recipe("sft", SFT_CONFIG, out, *TINY, *data, *SMALL, "--allow_overlap", "true")
    (held_out,) = results["contamination"]
    assert (held_out["rows"], held_out["image_overlap"], held_out["question_overlap"]) == (4, 1, 0)
    assert held_out["mark"] == "ABOVE 1% (allowed by allow_overlap: true)"
    assert json.loads((out / "eval_results.json").read_text())["contamination"] == results["contamination"]
    assert (out / "training_data_hashes.npz").is_file()  # evaluations of this adapter check against it
    card = (out / "README.md").read_text()
    assert "## Training-data overlap" in card and "image 1/4 **ABOVE 1% (allowed by allow_overlap: true)**" in card


@pytest.mark.integration
def test_a_held_out_split_carved_from_train_is_shown_and_evaluating_the_adapter_on_it_is_refused(tmp_path):
    """DocVQA's case: several questions per page, 50% of the rows held out: training shows (and marks) the shared
    pages; evaluate_models of the adapter on those rows refuses unless allow_overlap, and then marks the figure."""
    from helpers import recipe_module, run_recipe

    data = shared_page_data(tmp_path)
    out = tmp_path / "run"
    results = run_recipe("sft", SFT_CONFIG, out, *TINY, *data, *SMALL)  # not refused: rows disjoint by construction
    (held_out,) = results["contamination"]
    seen = held_out["image_overlap"]
    assert held_out["rows"] == 6 and seen >= 1 and not held_out["enforced"]
    assert held_out["mark"] == "ABOVE 1% (held out of the training split: shown, not enforced)"

    evaluate = ["--evaluate_base", "false", "--other_models", "", "--adapter_paths", str(out), "--batch_size", "6",
                "--max_new_tokens", "2", "--metrics", "exact_match", "--max_eval_samples", "6"]  # fmt: skip
    report_dir = tmp_path / "evaluate"
    evaluate += ["--config", EVALUATE_CONFIG, "--output_dir", str(report_dir), *TINY, *data]
    evaluate_models = recipe_module("evaluate_models").main
    with pytest.raises(ContaminationError, match=rf"evaluate_models: .*: {seen} of 6 rows .*allow_overlap: true"):
        evaluate_models(evaluate)
    assert not report_dir.exists()
    report = evaluate_models([*evaluate, "--allow_overlap", "true"])
    (figures,) = report["contamination"]["run"]
    assert figures["image_overlap"] == seen and figures["allowed"] and figures["enforced"]
    assert "ABOVE 1% (allowed by allow_overlap: true)" in (report_dir / "report.md").read_text()


@pytest.mark.integration
def test_a_benchmark_of_an_adapter_trained_on_its_rows_is_refused_before_anything_is_written(tmp_path):
    from helpers import recipe_module

    from vlm_recipes.data.contamination import RECORD_FILE
    from vlm_recipes.evaluation.benchmarks.runner import dataset_root
    from vlm_recipes.evaluation.benchmarks.samples import prepare
    from vlm_recipes.evaluation.benchmarks.tasks import load_task
    from vlm_recipes.evaluation.contamination import benchmark_fingerprint

    # An adapter folder whose training record holds AI2D's stand-in rows (the model is never loaded: refused first).
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    with dataset_root("standins", [load_task("ai2d")]) as root:
        benchmark_fingerprint(prepare(load_task("ai2d"), root), None).save(adapter / RECORD_FILE)
    out = tmp_path / "bench"
    argv = ["--config", "recipes/configs/tiny-smolvlm/benchmark.yaml", "--model_name_or_path", "tiny:smolvlm-random",
            "--adapter_paths", str(adapter), "--other_models", "", "--evaluate_base", "false", "--benchmarks", "ai2d",
            "--dataset_source", "standins", "--output_dir", str(out)]  # fmt: skip
    with pytest.raises(
        ContaminationError, match=r"benchmark: .*ai2d \(test\): 3 of 3 rows \(100.0%\) .*allow_overlap"
    ):
        recipe_module("benchmark").main(argv)
    assert not out.exists()


def test_the_reports_mark_a_figure_above_the_threshold_and_name_models_without_a_record():
    from vlm_recipes.evaluation.contamination import as_json, markdown_lines

    page = scene(1)
    training = fingerprint_rows("train", [[png(page)]], ["q"], ["t0"], None)
    images = [[jpeg_copy(page)], [png(scene(2))]]
    scored = fingerprint_rows("docvqa_val (validation)", images, ["a", "b"], ["s0", "s1"], None)
    found = {"base": [], "run": [measure(training, scored, allowed=True)]}
    lines = "\n".join(markdown_lines(as_json(found)))
    assert "- base: training data unknown" in lines
    assert "- run on docvqa_val (validation): image 1/2 (50.0%) **ABOVE 1% (allowed by allow_overlap: true)**" in lines


def test_worker_processes_give_the_same_hashes(monkeypatch):
    from datasets import Dataset, Image, List

    monkeypatch.setattr(image_hashes, "PARALLEL_FROM", 10)  # a pool for 80 images
    rows = [{"images": [jpeg_copy(scene(i, 80), scale=1.0)], "messages": []} for i in range(80)]
    ds = Dataset.from_list(rows).cast_column("images", List(Image()))
    serial = fingerprint_dataset(ds, "t", None, workers=1)
    parallel = fingerprint_dataset(ds, "t", None, workers=2)
    assert parallel.image_hash.tolist() == serial.image_hash.tolist() and parallel.stats.hashed == 80


@pytest.mark.integration
def test_make_preflight_prints_the_figures_and_exits_1_above_the_threshold(tmp_path, capsys):
    from vlm_recipes.launch import preflight as preflight_cli

    data = split_folder(tmp_path, copies=1)
    argv = ["--config", SFT_CONFIG, *TINY, *data, "--pipeline_rows", "0"]
    assert preflight_cli.main(argv) == 1
    printed = capsys.readouterr().out
    assert "Training-data overlap" in printed and "held-out: 1 of 4 scored rows (25.0%) have an image seen" in printed
    assert "allow_overlap: true runs" in printed
    assert preflight_cli.main([*argv, "--allow_overlap", "true"]) == 0
    assert "[ABOVE 1% (allowed by allow_overlap: true)]" in capsys.readouterr().out


@pytest.mark.integration
def test_grounding_reports_one_image_overlap_the_contamination_checks_measured_once(tmp_path, standins, monkeypatch):
    """RefCOCO's held-out objects carved from `val` sit on training photos (two objects a photo). The run measures the
    held-out overlap once (the contamination check, at start-up) and `grounding_scored` quotes that figure: before,
    the grounding loader and the results each counted shared images a second way (by COCO id) beside it."""
    from helpers import run_recipe

    from vlm_recipes.training.preflight import overlap

    calls = []
    original = overlap.measure
    monkeypatch.setattr(overlap, "measure", lambda *a, **k: calls.append(a[1].name) or original(*a, **k))
    refcoco = ["--dataset_name", str(standins["lmms-lab-encoder/RefCOCO"]), "--dataset_train_split", "val",
               "--dataset_test_split", "val", "--eval_fraction", "0.3", "--image_column", "image",
               "--bbox_column", "bbox", "--bbox_layout", "xywh", "--grounding_query_column", "answer",
               "--grounding_prompt", "Locate the {query}.", "--eval_metrics", "iou_accuracy"]  # fmt: skip
    small = ["--max_steps", "1", "--per_device_train_batch_size", "2", "--max_eval_samples", "3",
             "--per_device_eval_batch_size", "8", "--eval_max_new_tokens", "2"]  # fmt: skip
    config = "recipes/configs/tiny-smolvlm/sft_grounding.yaml"
    results = run_recipe("sft", config, tmp_path / "run", *TINY, *refcoco, *small)
    assert calls == ["held-out"]  # measured once, for the one scored set
    (held_out,) = results["contamination"]
    quoted = results["grounding_scored"]["image_overlap"]
    assert quoted == {k: held_out[k] for k in ("rows", "image_overlap", "image_overlap_fraction", "mark")}
    assert quoted["rows"] == results["grounding_scored"]["expressions"] and quoted["image_overlap"] >= 1
    saved = json.loads((tmp_path / "run" / "eval_results.json").read_text())
    assert saved["grounding_scored"]["image_overlap"] == quoted

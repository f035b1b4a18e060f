"""The offline stand-ins of the real datasets, and how the loaders read them: only the splits needed, images as the
dataset stores them, and a misspelled split, column or configuration named in the error.

Every real config runs on its stand-in in test_sft_e2e.py (training), test_inference.py (evaluation) and
test_clip_recipes.py / test_vit.py (the baselines).
"""

import re
import shutil

import pytest
import yaml
from datasets import Image, get_dataset_config_names, get_dataset_split_names, load_dataset
from helpers import CONFIGS, parse_config, recipe_of

from vlm_recipes.baselines.image_data import ImageDataArguments, load_captions, load_classification
from vlm_recipes.data.images import undecoded
from vlm_recipes.data.loading import images_as_list_column, load_eval_split, load_splits
from vlm_recipes.data.standins import STANDINS
from vlm_recipes.settings import DataArguments

pytestmark = pytest.mark.unit


def test_every_hub_dataset_a_config_names_has_a_standin():
    named = set()
    for path in CONFIGS:
        config = yaml.safe_load(path.read_text())
        named |= {config[k] for k in ("dataset_name", "caption_dataset_name", "ood_dataset_name") if k in config}
    hub_ids = {name for name in named if "/" in name}
    assert hub_ids and hub_ids <= set(STANDINS), sorted(hub_ids - set(STANDINS))


@pytest.mark.parametrize("hub_id", sorted(STANDINS))
def test_standin_loads_with_the_schema_written_in_its_generator(standins, hub_id):
    standin, folder = STANDINS[hub_id], standins[hub_id]
    assert sorted(get_dataset_config_names(str(folder))) == sorted(standin.features)
    for config, features in standin.features.items():
        assert get_dataset_split_names(str(folder), config) == list(standin.splits[config])
        for split, rows in standin.splits[config].items():
            ds = load_dataset(str(folder), config, split=split)
            assert ds.features == features, (config, split)
            assert list(ds.features) == list(features)  # the card's column order too
            assert len(ds) == rows


def copy_of(standins, hub_id, tmp_path):
    """A private copy of a stand-in (tests that damage files must not touch the session's)."""
    return shutil.copytree(standins[hub_id], tmp_path / hub_id)


def test_loading_the_evaluation_split_reads_only_that_splits_files(standins, tmp_path):
    folder = copy_of(standins, "lmms-lab-encoder/textvqa", tmp_path)
    (folder / "data/train-00000-of-00001.parquet").write_bytes(b"not parquet: must never be read")
    args = DataArguments(
        dataset_name=str(folder),
        dataset_train_split="train",
        dataset_test_split="validation",
        image_column="image",
        question_column="question",
        answer_column="answers",
    )
    held_out = load_eval_split(args)  # evaluate_models.py's path
    assert len(held_out) == 4 and held_out.features == STANDINS["lmms-lab-encoder/textvqa"].features["default"]
    with pytest.raises(ValueError, match="magic bytes"):  # training reads the train split: the damage shows
        load_splits(args)
    # The baselines' zero-shot path reads the test split alone too.
    mnist = copy_of(standins, "ylecun/mnist", tmp_path)
    (mnist / "mnist/train-00000-of-00001.parquet").write_bytes(b"not parquet")
    _, test, names = load_classification(ImageDataArguments(dataset_name=str(mnist)), with_train=False)
    assert len(test) == 10 and names == [str(d) for d in range(10)]


REAL = {path.relative_to(path.parents[1]).as_posix(): path for path in CONFIGS}


def misspelled(path, tmp_path, **changes):
    """A copy of a real config with some fields changed, as a user's typo would."""
    config = yaml.safe_load(path.read_text())
    config.update(changes)
    copy = tmp_path / path.name
    copy.write_text(yaml.safe_dump(config))
    return copy


@pytest.mark.parametrize(
    "config, changes, message",
    [
        ("smolvlm-256m-instruct/sft_lora_chartqa.yaml", {"question_column": "querry"}, "no column 'querry'"),
        ("smolvlm-256m-instruct/sft_lora_chartqa.yaml", {"dataset_test_split": "tset"}, r"no split 'tset' \(splits"),
        ("qwen2-vl-2b-instruct/sft_lora_textvqa.yaml", {"dataset_train_split": "trian"}, "no split 'trian'"),
        ("qwen2-vl-2b-instruct/sft_lora_docvqa.yaml", {"dataset_config": "DocVQ"}, "no configuration 'DocVQ'"),
        ("qwen2-vl-2b-instruct/sft_lora_docvqa.yaml", {"answer_column": "answer"}, "no column 'answer'"),
        ("smolvlm-256m-instruct/sft_lora.yaml", {"image_column": "images"}, "no image column 'images'"),
        ("qwen2.5-vl-3b-instruct/grpo.yaml", {"answer_column": "solutions"}, "no column 'solutions'"),
        ("smolvlm-256m-instruct/dpo.yaml", {"dataset_test_split": "validation"}, "no split 'validation'"),
    ],
)
def test_a_misspelled_split_column_or_configuration_fails_naming_it(standins, tmp_path, config, changes, message):
    from vlm_recipes.training.methods import get_method

    path = REAL[config]
    hub_id = yaml.safe_load(path.read_text())["dataset_name"]
    bad = misspelled(path, tmp_path, dataset_name=str(standins[hub_id]), **changes)
    data_args, _, _ = parse_config(bad, "--use_cpu", "true")
    with pytest.raises(ValueError, match=message):
        get_method(recipe_of(path)).load_splits(data_args)
    # The unchanged config loads (the error above is the typo's, nothing else's).
    good = misspelled(path, tmp_path, dataset_name=str(standins[hub_id]))
    data_args, _, _ = parse_config(good, "--use_cpu", "true")
    train, held_out = get_method(recipe_of(path)).load_splits(data_args)
    assert len(train) and len(held_out)


def test_a_misspelled_caption_column_of_a_baseline_config_is_named(standins, tmp_path):
    path = REAL["clip-vit-base-patch32/clip_train.yaml"]
    bad = misspelled(
        path, tmp_path, dataset_name=str(standins["lmms-lab-encoder/flickr30k"]), caption_column="captions"
    )
    data_args, _, _ = parse_config(bad, "--use_cpu", "true")
    with pytest.raises(ValueError, match=r"no column \['captions'\]"):
        load_captions(data_args)


def test_a_single_image_column_keeps_the_datasets_jpeg_bytes(standins):
    """merve/vqav2-small stores one COCO JPEG per row: the images the collator decodes are those bytes, not a
    re-encoding of the decoded pixels."""
    folder = str(standins["merve/vqav2-small"])
    stored = load_dataset(folder, split="validation").cast_column("image", Image(decode=False))
    listed = images_as_list_column(load_dataset(folder, split="validation"), "image")
    listed = undecoded(listed)
    assert [row[0]["bytes"] for row in listed["images"]] == [im["bytes"] for im in stored["image"]]
    assert stored["image"][0]["bytes"][:2] == b"\xff\xd8"  # JPEG
    # Through the whole SFT loading path (conversations built, eval_fraction held out) as well.
    args = DataArguments(
        dataset_name=folder,
        dataset_train_split="validation",
        image_column="image",
        question_column="question",
        answer_column="multiple_choice_answer",
    )
    train, held_out = load_splits(args)
    by_question = {q: im["bytes"] for q, im in zip(stored["question"], stored["image"])}
    for ds in (train, held_out):
        ds = undecoded(ds)
        for messages, images in zip(ds["messages"], ds["images"]):
            question = messages[-2]["content"][-1]["text"]
            assert images[0]["bytes"] == by_question[question]


def test_caption_pairs_are_capped_before_any_image_is_decoded(standins, monkeypatch):
    decoded = []
    original = Image.decode_example
    monkeypatch.setattr(Image, "decode_example", lambda self, value, **kw: decoded.append(1) or original(self, value))
    folder = str(standins["lmms-lab-encoder/flickr30k"])
    args = ImageDataArguments(dataset_name=folder, max_eval_samples=3)
    _, pairs = load_captions(args, seed=0, with_train=False)
    assert decoded == [] and len(pairs) == 3
    stored = load_dataset(folder, split="test").cast_column("image", Image(decode=False))
    first_captions = {c[0] for c in stored["caption"]}
    raw = pairs.cast_column("image", Image(decode=False))
    assert {im["bytes"] for im in raw["image"]} <= {im["bytes"] for im in stored["image"]}  # not re-encoded
    assert set(pairs["caption"]) <= first_captions and pairs["canonical"] == pairs["caption"]


def test_moved_datasets_are_named_by_their_new_ids_and_old_ids_still_read(tmp_path, caplog):
    """lmms-lab's datasets moved on 2026-07-30 (lmms-eval pull request #1416): every shipped config, benchmark task and
    stand-in names the new id; an old id is read as the new one, with a one-line notice."""
    from helpers import REPO_ROOT

    from vlm_recipes.data.standins import write_standin
    from vlm_recipes.evaluation.benchmarks.tasks import BenchmarkTask
    from vlm_recipes.settings.baselines import ZeroShotArguments
    from vlm_recipes.settings.blip import BlipDataArguments
    from vlm_recipes.settings.common import MOVED_DATASETS

    assert len(MOVED_DATASETS) == 9
    shipped = [*CONFIGS, *(REPO_ROOT / "vlm_recipes/evaluation/benchmarks/tasks").glob("*.yaml")]
    for path in shipped:
        named = [old for old in MOVED_DATASETS if re.search(rf"\b{re.escape(old)}\b", path.read_text())]
        assert not named, (path, named)
    assert not set(MOVED_DATASETS) & set(STANDINS) and set(MOVED_DATASETS.values()) <= set(STANDINS)

    caplog.set_level("WARNING")
    assert DataArguments(dataset_name="lmms-lab/textvqa").dataset_name == "lmms-lab-encoder/textvqa"
    notices = [r.getMessage() for r in caplog.records if "moved" in r.getMessage()]
    assert notices == [
        "dataset_name lmms-lab/textvqa moved to lmms-lab-encoder/textvqa on the Hub (2026-07-30): reading "
        "lmms-lab-encoder/textvqa; use the new id."
    ]
    assert ImageDataArguments(dataset_name="lmms-lab/flickr30k").dataset_name == "lmms-lab-encoder/flickr30k"
    assert BlipDataArguments(dataset_name="lmms-lab/flickr30k").dataset_name == "lmms-lab-encoder/flickr30k"
    zero_shot = ZeroShotArguments(caption_dataset_name="lmms-lab/flickr30k")
    assert zero_shot.caption_dataset_name == "lmms-lab-encoder/flickr30k"
    task = BenchmarkTask(
        name="t", title="T", dataset_name="lmms-lab/ai2d", split="test", metric="exact_match", prompt="{question}"
    )
    assert task.dataset_name == "lmms-lab-encoder/ai2d"
    assert write_standin("lmms-lab/ActivityNetQA", tmp_path) == tmp_path / "lmms-eval/ActivityNetQA"
    assert DataArguments(dataset_name="synthetic").dataset_name == "synthetic"  # anything else is left alone


# The stand-ins whose card's `dataset_info.features` is copied into their record (`card_features`); the others name
# the card they were read from in `card` and have not been re-read against a copied text yet.
CHECKED_AGAINST_CARD = ["lmms-eval/ActivityNetQA", "lmms-lab-encoder/ai2d", "lmms-lab-encoder/flickr30k",
                        "lmms-lab-encoder/textvqa", "lmms-lab-encoder/DocVQA", "HuggingFaceM4/ChartQA",
                        "merve/vqav2-small", "lmms-lab-encoder/ScienceQA", "lmms-lab-encoder/RefCOCO",
                        "lmms-lab-encoder/MMMU", "AI4Math/MathVista", "echo840/OCRBench", "AI-Lab-Makerere/beans",
                        "HuggingFaceH4/rlaif-v_formatted", "Lin-Chen/MMStar", "ylecun/mnist",
                        "zalando-datasets/fashion_mnist", "lmms-lab/multimodal-open-r1-8k-verified"]  # fmt: skip
# Not checked against a copied card: lmms-lab-encoder/MMBench (the `en` section of the card on main could not be read;
# checked below against lmms-eval's reader and the `cn` configuration) and AKCIT/coco2017-captioning (its card could
# not be found for this check: the schema is what the BLIP recipes read, unverified).


def test_the_checked_list_is_every_standin_with_a_copied_card():
    assert sorted(h for h, s in STANDINS.items() if s.card_features) == sorted(CHECKED_AGAINST_CARD)


@pytest.mark.parametrize("hub_id", CHECKED_AGAINST_CARD)
def test_standin_schema_is_the_one_its_card_publishes(hub_id):
    """Column names, order and types equal the card's (ActivityNet-QA's `type` is a string, as the card says)."""
    standin = STANDINS[hub_id]
    published = standin.published_features()
    assert published and set(published) == set(standin.features)
    for config, features in published.items():
        assert list(standin.features[config]) == list(features)
        assert standin.features[config] == features, config


def test_activitynet_standin_rows_look_like_the_real_ones(standins):
    """Bare YouTube ids in video_name, question ids v_<id>_<n>, type numbers as text, files all_test/v_<id>.<ext>."""
    folder = standins["lmms-eval/ActivityNetQA"]
    ds = load_dataset(str(folder), split="test")
    for row in ds:
        assert re.fullmatch(r"[A-Za-z0-9_-]{11}", row["video_name"])
        assert re.fullmatch(rf"v_{re.escape(row['video_name'])}_\d", row["question_id"])
        assert row["type"] in [str(t) for t in range(9)]
        assert len(list((folder / "all_test").glob(f"v_{row['video_name']}.*"))) == 1
    assert len(set(ds["video_name"])) < len(ds)  # several questions per video, as in the real data


def test_mmbench_standin_has_every_column_lmms_eval_reads_in_the_cn_order(standins):
    """lmms-eval's mmbench en task (lmms_eval/tasks/mmbench/en_utils.py at 75571cf, dataset_name en, test_split dev)
    reads index, question, answer, hint, source, split, category, L2-category, image and the option letters; the card's
    `cn` configuration on main (56ba1af) has the same columns in this order (its `en` section was not readable). The
    answer is a letter among the row's non-empty options; circular copies share index % 1,000,000."""
    folder = standins["lmms-lab-encoder/MMBench"]
    order = ["index", "question", "hint", "answer", "A", "B", "C", "D", "category", "image", "source", "L2-category",
             "comment", "split"]  # fmt: skip
    assert list(STANDINS["lmms-lab-encoder/MMBench"].features["en"]) == order
    dev = load_dataset(str(folder), "en", split="dev")
    by_question = {}
    for row in dev:
        options = [letter for letter in "ABCD" if row[letter]]
        assert row["answer"] in options and row["split"] == "dev"
        by_question.setdefault(row["index"] % 1_000_000, set()).add(row[row["answer"]])
    assert all(len(golds) == 1 for golds in by_question.values())  # every rotation keeps the same right option text
    assert all(answer is None for answer in load_dataset(str(folder), "en", split="test")["answer"])


def test_mmstar_standin_rows_look_like_the_real_ones(standins):
    """lmms-eval's mmstar task (lmms_eval/tasks/mmstar/utils.py at 75571cf) sends `question` as it is (the options are
    written into it as "Options: A: ..., B: ..."), compares the answer letter A-D, and groups by category/l2_category
    with its eval_type_dict."""
    l2_of = {
        "coarse perception": {"image scene and topic", "image style & quality", "image emotion"},
        "fine-grained perception": {"object counting", "recognition", "localization"},
    }
    ds = load_dataset(str(standins["Lin-Chen/MMStar"]), "val", split="val")
    parsable = [q for q in ds["question"] if re.search(r"\nOptions: A: .+, B: .+", q)]
    assert len(parsable) == len(ds) - 1  # one row's options deliberately unparsable (scored wrong, run goes on)
    for row in ds:
        assert row["answer"] in "ABCD" and len(row["answer"]) == 1
        assert row["l2_category"] in l2_of[row["category"]]

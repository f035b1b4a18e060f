"""The one held-out rule of every loader (VLM recipes, CLIP/ViT baselines, BLIP): a held-out split that is the train
split is never scored as it stands; `eval_fraction` (`test_fraction`) of it is held out instead, and an evaluation-only
run (evaluate_models.py, a zero-shot recipe given a trained model) scores exactly the rows the training run held out.

Each loader kind is checked on the stand-in of a one-split dataset the shipped configs train on (ActivityNet-QA,
Flickr30k) or on Beans with its train split named as both splits.
"""

from pathlib import Path

import pytest
from datasets import Image

from vlm_recipes.baselines.image_data import load_captions, load_classification
from vlm_recipes.captioning.data import load_task_splits
from vlm_recipes.data.loading import held_out_plan, load_eval_split, load_splits
from vlm_recipes.settings import DataArguments
from vlm_recipes.settings.baselines import ImageDataArguments
from vlm_recipes.settings.blip import BlipDataArguments

pytestmark = pytest.mark.unit


def pictures(ds):
    """The stored bytes of each row's image (undecoded): which rows a split holds."""
    return {row["bytes"] for row in ds.cast_column("image", Image(decode=False))["image"]}


def test_the_rule_on_literal_split_lists():
    def plan(splits, train, test):
        return held_out_plan("d", splits, train, test, "eval_fraction", 0.1)

    assert plan(["train", "test"], "train", "test") == "test"
    assert plan(["train", "test"], "train", None) is None
    assert plan(["test"], "test", "test") is None  # the train split named as held-out split: held out of it
    assert plan(["train", "validation"], "validation", "validation") is None
    assert plan(["train"], "train", "test") is None  # the dataset's only split
    with pytest.raises(ValueError, match="no split 'val'.*'train', 'validation'"):
        plan(["train", "validation"], "train", "val")
    with pytest.raises(ValueError, match="no split 'train'.*set dataset_train_split"):
        plan(["test"], "train", "test")


def test_vlm_loader_never_scores_the_split_it_trains_on(standins):
    """ActivityNet-QA has one split (`test`); the video configs trained on it with dataset_test_split left at `test`,
    and the 'held-out' score was on training rows."""
    args = DataArguments(
        dataset_name=str(standins["lmms-eval/ActivityNetQA"]),
        dataset_train_split="test",
        dataset_test_split="test",
        eval_fraction=0.25,
        question_column="question",
        answer_column="answer",
        image_column="video_name",  # read as a plain column: only which rows land where is compared here
    )
    train, held_out = load_splits(args)
    train_ids, held_ids = set(train["question_id"]), set(held_out["question_id"])
    assert not train_ids & held_ids
    assert len(held_ids) == 3 and len(train_ids) == 9
    assert set(load_eval_split(args)["question_id"]) == held_ids  # evaluate_models.py: the rows training held out


def test_image_loader_zero_shot_scores_only_the_rows_training_held_out(standins):
    """A zero-shot run (with_train=False) of a model trained with the same config must not score its training rows."""
    args = ImageDataArguments(
        dataset_name=str(standins["AI-Lab-Makerere/beans"]),
        dataset_train_split="train",
        dataset_test_split="train",
        label_column="labels",
        test_fraction=0.5,
    )
    train, held_out, _ = load_classification(args, seed=0)
    _, zero_shot, _ = load_classification(args, seed=0, with_train=False)
    assert len(held_out) == 3 and len(train) == 3  # test_fraction 0.5 of the 6 rows, stratified by class
    files = lambda ds: set(ds["image_file_path"])  # noqa: E731
    assert files(zero_shot) == files(held_out) and not files(zero_shot) & files(train)
    # clip_train.yaml / clip_zero_shot.yaml's Flickr30k: one split, `test`.
    flickr = ImageDataArguments(
        dataset_name=str(standins["lmms-lab-encoder/flickr30k"]),
        dataset_train_split="test",
        dataset_test_split="test",
        test_fraction=0.25,
    )
    train, held_out = load_captions(flickr, seed=0)
    _, zero_shot = load_captions(flickr, seed=0, with_train=False)
    assert len(held_out) == 3 and pictures(zero_shot) == pictures(held_out)
    assert not pictures(zero_shot) & pictures(train)


def test_blip_loader_zero_shot_scores_only_the_rows_training_held_out(standins):
    """itm_retrieval_flickr30k / caption_zero_shot_flickr30k name `test` as both splits, and blip_zero_shot.py takes
    the adapter a blip_train.py run on that data wrote (adapter_path)."""
    args = BlipDataArguments(
        dataset_name=str(standins["lmms-lab-encoder/flickr30k"]),
        dataset_train_split="test",
        dataset_test_split="test",
        test_fraction=0.25,
    )
    train, held_out = load_task_splits(args, "caption", seed=42)
    _, zero_shot = load_task_splits(args, "caption", seed=42, with_train=False)
    assert len(held_out) == 3 and len(train) == 9
    assert pictures(zero_shot) == pictures(held_out) and not pictures(zero_shot) & pictures(train)


def test_the_contamination_check_treats_the_train_split_named_as_held_out_split_as_carved():
    """held_out_plan holds part of the train split out when it is named as the held-out split (the video configs'
    old `dataset_test_split: test`): the check shows and marks that overlap (rows disjoint) rather than refusing it,
    as for a null held-out split; a split of its own stays enforced."""
    from vlm_recipes.training.preflight.overlap import held_out_is_carved

    def carved(test, name="lmms-eval/ActivityNetQA"):
        args = DataArguments(dataset_name=name, dataset_train_split="test", dataset_test_split=test)
        return held_out_is_carved(args)

    assert carved("test") and carved(None)
    assert not carved("test", name="synthetic")  # our generators: an independent draw


def test_video_rows_are_held_out_by_whole_videos(standins):
    """ActivityNet-QA asks several questions per video: a held-out fraction of its rows drawn row by row put questions
    of one video on both sides (the model scored on videos it trained on). The one rule holds out whole videos, for
    training and for an evaluation-only run alike."""
    folder = standins["lmms-eval/ActivityNetQA"]
    for seed in range(5):
        args = DataArguments(
            dataset_name=str(folder),
            dataset_train_split="test",
            dataset_test_split="test",
            eval_fraction=0.25,
            question_column="question",
            answer_column="answer",
            video_column="video_name",
            video_root=str(folder / "all_test"),
        )
        train, held_out = load_splits(args, seed=seed)
        videos = lambda ds: {v for row in ds["videos"] for v in row}  # noqa: E731
        assert videos(train) and videos(held_out) and not videos(train) & videos(held_out), seed
        assert len(train) + len(held_out) == 12
        # evaluate_models.py's path: the same videos' rows (its rows keep the raw columns).
        held_names = {Path(v).stem.removeprefix("v_") for v in videos(held_out)}
        assert set(load_eval_split(args, seed=seed)["video_name"]) == held_names


def test_hold_out_by_group_on_literal_rows():
    from datasets import Dataset

    from vlm_recipes.data.loading import hold_out

    rows = Dataset.from_dict({"video": ["a", "a", "a", "b", "b", "c", "d", "d"], "q": list(range(8))})
    for seed in range(10):
        rest, held = hold_out(rows, 0.25, seed, "train", group_by_column="video")
        assert not set(rest["video"]) & set(held["video"]) and len(set(held["video"])) == 1  # 25% of 4 videos
        assert sorted([*rest["q"], *held["q"]]) == list(range(8))
    with pytest.raises(ValueError, match="all 2 rows share one video value"):
        hold_out(rows.select([0, 1]), 0.5, 0, "train", group_by_column="video")

"""Capped evaluations score a seeded random sample, stratified where the data states a stratum, and write the rows
they used: the training recipes' held-out split (`max_eval_samples`), recipes/evaluate_models.py and a benchmark's
`--limit` (vlm_recipes/data/sampling.py). The data here is sorted the way ChartQA's test split is, one stratum first:
the first N rows, what a cap used to take, are all of one kind."""

import json

import pytest
from datasets import ClassLabel, Dataset, Features, Image, Value
from helpers import recipe_module
from PIL import Image as PILImage

from vlm_recipes.data.loading import load_eval_split, load_splits
from vlm_recipes.data.sampling import rows_of, sample_indices
from vlm_recipes.evaluation import compare
from vlm_recipes.evaluation.benchmarks.samples import build_samples, limit_rows
from vlm_recipes.evaluation.benchmarks.scorers import score_answers, summarize
from vlm_recipes.evaluation.benchmarks.tasks import load_task
from vlm_recipes.settings import DataArguments

pytestmark = pytest.mark.unit


def test_samples_are_seeded_random_and_keep_each_stratums_share():
    assert sample_indices(10, None, seed=0) == list(range(10))  # no cap: every row, in order
    assert sample_indices(10, 20, seed=0) == list(range(10))
    drawn = sample_indices(100, 10, seed=0)
    assert drawn == sample_indices(100, 10, seed=0) and drawn == sorted(set(drawn)) and len(drawn) == 10
    assert drawn != list(range(10)) and drawn != sample_indices(100, 10, seed=1)
    halves = ["human"] * 50 + ["augmented"] * 50
    for seed in range(5):
        drawn = sample_indices(100, 10, seed, halves)
        assert sum(i < 50 for i in drawn) == 5  # 5 of each half, whatever the order on disk
    # Shares of 3:1 over 8 rows: 6 and 2. 7 rows of 3 strata (4, 2, 1) capped at 3: shares 12/7, 6/7, 3/7, so
    # floors 1, 0, 0, and the two rows left go to the largest remainders (6/7, then 5/7): a, a, b.
    assert sum(i < 75 for i in sample_indices(100, 8, 0, ["a"] * 75 + ["b"] * 25)) == 6
    strata = ["a"] * 4 + ["b"] * 2 + ["c"]
    assert sorted(strata[i] for i in sample_indices(7, 3, 0, strata)) == ["a", "a", "b"]


def sorted_split(n: int, class_label: bool = False) -> Dataset:
    """`n` question rows, the human-written half first (as ChartQA's test split), with ids and one image each."""
    stratum = ClassLabel(names=["human", "machine"]) if class_label else Value("string")
    features = Features(
        {
            "image": Image(),
            "question": Value("string"),
            "answer": Value("string"),
            "human_or_machine": stratum,
            "question_id": Value("int64"),
        }
    )
    image = PILImage.new("RGB", (8, 8), (200, 40, 40))
    half = [0, 1] if class_label else ["human", "machine"]
    rows = [
        {
            "image": image,
            "question": f"q{i}",
            "answer": f"a{i}",
            "human_or_machine": half[i >= n // 2],
            "question_id": i,
        }
        for i in range(n)
    ]
    return Dataset.from_list(rows, features=features)


@pytest.fixture
def sorted_dataset(tmp_path):
    """A local dataset laid out like a Hub repository: train (4 rows) and test (20 rows, human half first)."""
    folder = tmp_path / "sorted"
    (folder / "data").mkdir(parents=True)
    sorted_split(4).to_parquet(folder / "data/train-00000-of-00001.parquet")
    sorted_split(20).to_parquet(folder / "data/test-00000-of-00001.parquet")
    return folder


def data_args(folder, **changes) -> DataArguments:
    settings = dict(
        dataset_name=str(folder), dataset_train_split="train", dataset_test_split="test", image_column="image",
        question_column="question", answer_column="answer", max_eval_samples=4,
    )  # fmt: skip
    return DataArguments(**{**settings, **changes})


def test_the_held_out_cap_is_a_stratified_sample_and_evaluation_reads_the_same_rows(sorted_dataset):
    args = data_args(sorted_dataset, eval_stratum_column="human_or_machine")
    _, held_out = load_splits(args, seed=42)  # the training recipes' before/after rows
    evaluated = load_eval_split(args, seed=42)  # recipes/evaluate_models.py's rows
    assert held_out["question_id"] == evaluated["question_id"]
    assert sorted(held_out["human_or_machine"]) == ["human", "human", "machine", "machine"]  # was: 4 x human
    record = rows_of(held_out)
    assert record["indices"] == record["ids"] == held_out["question_id"] and record["seed"] == 42
    assert record["strata"] == {"human": 2, "machine": 2} and record["num_rows"] == 20 and record["cap"] == 4
    # Without a stratum: a seeded random sample, not the first 4 rows; another seed draws others.
    plain = load_eval_split(data_args(sorted_dataset), seed=42)
    assert plain["question_id"] != [0, 1, 2, 3] and plain["question_id"] == rows_of(plain)["ids"]
    assert load_eval_split(data_args(sorted_dataset), seed=7)["question_id"] != plain["question_id"]
    with pytest.raises(ValueError, match="Stratum column 'kind' is not in the data"):
        load_eval_split(data_args(sorted_dataset, eval_stratum_column="kind"))


def test_evaluate_models_writes_the_rows_it_scored(sorted_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(compare, "load_for_inference", lambda *args, **kwargs: (None, None))

    def answering(model, processor, rows, *args, **kwargs):
        return [
            {"id": r["id"], "prompt": "q", "prediction": r["reference"], "reference": r["reference"]} for r in rows
        ]

    monkeypatch.setattr(compare, "predict", answering)
    out = tmp_path / "eval"
    recipe_module("evaluate_models").main(
        [
            "--dataset_name", str(sorted_dataset), "--dataset_train_split", "train", "--dataset_test_split", "test",
            "--image_column", "image", "--question_column", "question", "--answer_column", "answer",
            "--max_eval_samples", "6", "--eval_stratum_column", "human_or_machine", "--metrics", "exact_match",
            "--other_models", "", "--labels", "base", "--output_dir", str(out),
        ]
    )  # fmt: skip
    rows = json.loads((out / "eval_rows.json").read_text())
    assert rows["strata"] == {"human": 3, "machine": 3} and len(rows["ids"]) == 6
    assert json.loads((out / "report.json").read_text())["rows_file"] == "eval_rows.json"
    predictions = [json.loads(line) for line in (out / "predictions-0-base.jsonl").read_text().splitlines()]
    assert [f"a{i}" for i in rows["ids"]] == [p["reference"] for p in predictions]


def test_a_benchmark_limit_is_a_stratified_sample_and_chartqa_averages_its_halves():
    chartqa = load_task("chartqa")
    assert chartqa.stratum_column == "human_or_machine"
    ds = sorted_split(20, class_label=True).rename_columns({"question": "query"})
    ds = ds.map(lambda row: {"label": [row["answer"]]}, remove_columns=["answer"])
    limited = limit_rows(chartqa, ds, 6, seed=0)
    assert sorted(limited["human_or_machine"]) == [0, 0, 0, 1, 1, 1]  # the first 6 rows would all be human
    assert limited["question_id"] == rows_of(limited)["ids"] == limit_rows(chartqa, ds, 6, seed=0)["question_id"]
    assert limit_rows(chartqa, ds, 6, seed=1)["question_id"] != limited["question_id"]
    # Right on every human question, wrong on every augmented one: ChartQA's figure is the mean of the halves.
    samples = build_samples(chartqa, ds.select(range(2, 20)))  # 8 human, 10 augmented rows
    predictions = [s.answer[0] if s.info["stratum"] == 0 else "wrong" for s in samples]
    figures = summarize(chartqa, samples, score_answers(chartqa, predictions, samples))
    assert figures["strata"] == {"0": 1.0, "1": 0.0} and figures["score"] == 0.5  # not 8/18

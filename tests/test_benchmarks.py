"""Benchmark scoring on literal model outputs: multiple-choice extraction, circular evaluation, MathVista numbers and
tolerance, MMMU open answers, OCRBench containment; the task files and their stand-ins (vlm_recipes/evaluation/
benchmarks). The runs on tiny models are in test_benchmark_runs.py; lmms-eval's own extractors in
test_benchmark_lmms_eval.py."""

from pathlib import Path

import pytest
from datasets import Dataset, Features, Image, List, Value
from helpers import CHOICE_CASES, SHAPES
from PIL import Image as PILImage

from vlm_recipes.evaluation.benchmarks.extraction import (
    Choice,
    extract_choice,
    extract_number,
    mathvista_hit,
    mmmu_open_hit,
    ocrbench_hit,
    parse_inline_options,
)
from vlm_recipes.evaluation.benchmarks.samples import build_samples, prepare
from vlm_recipes.evaluation.benchmarks.scorers import score_answers, summarize
from vlm_recipes.evaluation.benchmarks.tasks import BenchmarkTask, load_task, shipped_tasks

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("output, expected", CHOICE_CASES, ids=[repr(c[0])[:40] for c in CHOICE_CASES])
def test_multiple_choice_extraction_on_literal_outputs(output, expected):
    assert extract_choice(output, SHAPES).letter == expected


def test_extraction_rules_name_themselves_and_resolve_option_text_and_refusals():
    assert extract_choice("I'm sorry, I cannot determine the answer.", SHAPES).rule == "refusal"
    assert extract_choice("It could be A or B, but I pick C.", SHAPES).rule == "last letter"
    assert extract_choice("The answer is C, not A.", SHAPES).letter == "C"  # inside a statement the first counts
    colours = ["red", "dark red", "blue", "green"]
    assert extract_choice("dark red", colours).letter == "B"  # "red" inside "dark red" is not a second match
    assert extract_choice("red or blue", colours) == Choice(None, "several option texts")
    assert extract_choice("There are three shapes.", ["2", "3", "4", "5"]).letter == "B"  # number words
    # A refusal that is itself an option's text is that option.
    assert extract_choice("None of the above", ["cat", "dog", "None of the above"]).letter == "C"


def test_options_written_into_the_question_are_parsed():
    question = "What is the main object?\nOptions: A: A building, B: A flower, C: 3, D: A cat, a dog"
    assert parse_inline_options(question) == ["A building", "A flower", "3", "A cat, a dog"]
    assert parse_inline_options("What is it?") == []


def task(**changes):
    """A small multiple-choice task for literal datasets."""
    settings = dict(
        name="toy",
        title="Toy",
        dataset_name="toy/toy",
        split="test",
        metric="choice_accuracy",
        prompt="{question}\n{options}\nAnswer with the option's letter.",
        options_column="options",
        answer_format="index",
    )
    return BenchmarkTask(**{**settings, **changes})


def toy_dataset(rows):
    features = Features({"image": Image(), "question": Value("string"), "options": List(Value("string")),
                         "answer": Value("string")})  # fmt: skip
    image = PILImage.new("RGB", (8, 8), (200, 40, 40))
    return Dataset.from_list([{"image": image, **row} for row in rows], features=features)


def test_circular_evaluation_two_questions_four_rotations():
    """Q1's answer is "dog", Q2's is "red". A model naming the right animal every time gets Q1 in all four rotations;
    a model that always says "A" is right once per question (1/4 of the prompts) and gets no question at all."""
    ds = toy_dataset(
        [
            {"question": "Which animal?", "options": ["cat", "dog", "bird", "fish"], "answer": "1"},
            {"question": "Which colour?", "options": ["red", "green", "blue", "yellow"], "answer": "0"},
        ]
    )
    circular = task(circular="rotate")
    samples = build_samples(circular, ds)
    assert [s.id for s in samples] == [f"{q}/rot{k}" for q in "01" for k in range(4)]
    assert [s.options for s in samples[:4]] == [
        ["cat", "dog", "bird", "fish"],
        ["dog", "bird", "fish", "cat"],
        ["bird", "fish", "cat", "dog"],
        ["fish", "cat", "dog", "bird"],
    ]
    assert [s.answer for s in samples] == ["B", "A", "D", "C", "A", "D", "C", "B"]
    assert samples[1].prompt == "Which animal?\nA. dog\nB. bird\nC. fish\nD. cat\nAnswer with the option's letter."

    def figures(predictions):
        return summarize(circular, samples, score_answers(circular, predictions, samples))

    names_the_dog = ["dog"] * 4 + ["A", "D", "C", "A"]  # Q1 always right; Q2 right in rotations 0-2 only
    result = figures(names_the_dog)
    assert result["score"] == 0.5 and result["first_prompt_score"] == 1.0
    assert result["num_questions"] == 2 and result["num_prompts"] == 8 and result["metric"] == "circular accuracy"
    always_a = figures(["A"] * 8)
    assert always_a["score"] == 0.0 and always_a["first_prompt_score"] == 0.5  # guessing earns nothing
    assert always_a["unparsable_rate"] == 0.0
    assert figures(["I don't know"] * 8)["unparsable_rate"] == 1.0
    # Without circular evaluation the same always-"A" answers score 1/2.
    plain = task()
    plain_samples = build_samples(plain, ds)
    assert summarize(plain, plain_samples, score_answers(plain, ["A", "A"], plain_samples))["score"] == 0.5


def test_stored_rotations_are_grouped_and_a_split_without_them_is_refused(standins):
    mmbench = load_task("mmbench_en_dev")
    data = prepare(mmbench, standins["lmms-lab-encoder/MMBench"].parent.parent)
    assert data.num_questions == 4 and len(data.samples) == 13  # questions with 4, 4, 2 and 3 options
    oracle = [s.answer for s in data.samples]
    assert summarize(mmbench, data.samples, score_answers(mmbench, oracle, data.samples))["score"] == 1.0
    always_a = summarize(mmbench, data.samples, score_answers(mmbench, ["A"] * 13, data.samples))
    assert always_a["score"] == 0.0 and always_a["first_prompt_score"] == 0.75  # 3 of 4 first prompts are "A"
    assert data.samples[0].prompt.startswith("What is the main object in the image? There are several options:\nA. ")
    assert data.samples[4].prompt.startswith("The photo was taken in a city in China. Which kind of place")
    # --limit samples whole questions: every stored rotation of 2 of them.
    rotations = {q: sum(s.question_id == q for s in data.samples) for q in {s.question_id for s in data.samples}}
    limited = prepare(mmbench, standins["lmms-lab-encoder/MMBench"].parent.parent, limit=2)
    kept = {q: sum(s.question_id == q for s in limited.samples) for q in {s.question_id for s in limited.samples}}
    assert len(kept) == 2 and all(kept[q] == rotations[q] for q in kept)
    # A dataset whose rows are all distinct questions is not circular: saying "stored" is an error naming the fix.
    stored = task(circular="stored", id_column="question")
    ds = toy_dataset([{"question": "1", "options": ["a", "b"], "answer": "0"}])
    from vlm_recipes.evaluation.benchmarks.samples import limit_rows

    with pytest.raises(ValueError, match="use circular: rotate"):
        limit_rows(stored, ds, None)


@pytest.mark.parametrize(
    "prediction, answer, answer_type, precision, right",
    [
        ("The answer is 14.", "14", "integer", None, True),
        ("7 + 7 = 14", "14", "integer", None, True),
        ("14.0", "14", "integer", None, True),
        ("\\boxed{14}", "14", "integer", None, True),
        ("There are 13 apples.", "14", "integer", None, False),
        ("1,234", "1234", "integer", None, True),
        ("18.66", "18.7", "float", 1.0, True),  # rounded to the answer's precision
        ("18.6", "18.7", "float", 1.0, False),
        ("The average is 18.7.", "18.7", "float", 1.0, True),
        ("1.449", "1.45", "float", 2.0, True),
        ("1.44", "1.45", "float", 2.0, False),
        ("1.5", "1.50", "float", 2.0, True),  # the official string comparison would say no
        ("\\frac{3}{4}", "0.75", "float", 2.0, True),
        ("3/4", "0.75", "float", 2.0, True),
        ("75%", "0.75", "float", 2.0, False),  # a percent sign does not divide by 100
        ("[2018, 2019]", "[2018, 2019]", "list", None, True),
        ("The answer is (2018, 2019).", "[2018, 2019]", "list", None, True),
        ("[2019, 2018]", "[2018, 2019]", "list", None, False),
        ("Paris.", "paris", "text", None, True),
    ],
)
def test_mathvista_free_form_numbers_and_precision(prediction, answer, answer_type, precision, right):
    assert mathvista_hit(prediction, answer, answer_type, precision)[0] is right


def test_mathvista_unreadable_numbers_are_unparsable_and_choices_are_letters(standins):
    assert extract_number("fourteen") is None
    assert mathvista_hit("fourteen", "14", "integer", None) == (False, None)
    mathvista = load_task("mathvista_testmini")
    data = prepare(mathvista, standins["AI4Math/MathVista"].parent.parent)
    choice = next(s for s in data.samples if s.options)  # "Which year has the lowest value?" (2018 / 2019 / 2020)
    assert choice.options == ["2018", "2019", "2020"] and choice.answer == "C"
    assert choice.prompt.endswith("Choices:\n(A) 2018\n(B) 2019\n(C) 2020")  # the dataset's own query
    predictions = ["(C) 2020", "2020", "C", "The lowest is 2019.", "no idea"]
    scored = score_answers(mathvista, predictions, [choice] * 5)
    assert [s.score for s in scored] == [1, 1, 1, 0, 0] and scored[-1].parsed is None


@pytest.mark.parametrize(
    "prediction, answer, right",
    [
        ("The answer is 42.", "42", True),
        ("42.0", "42", True),
        ("about 41.99", "42", False),
        ("The capital is Paris", "paris", True),
        ("Parisian", "paris", False),  # whole words only
        ("24", "['24', '24.0']", True),  # a list of accepted answers
    ],
)
def test_mmmu_open_answers(prediction, answer, right):
    assert mmmu_open_hit(prediction, answer)[0] is right


@pytest.mark.parametrize(
    "prediction, answers, source, right",
    [
        ("The word is SALE.", ["SALE"], "IIIT5K", True),
        ("sale", ["SALE"], "IIIT5K", True),
        ("SAL", ["SALE"], "IIIT5K", False),
        ("ＳＡＬＥ", ["sale"], "IIIT5K", True),  # full-width letters folded
        ("ACME\nLTD", ["ACME LTD"], "SROIE", True),  # newlines as spaces
        ("1,250.00 dollars", ["$1,250.00", "1,250.00"], "docVQA", True),  # any accepted answer
        ("5+7", ["5 + 7"], "HME100k", True),  # formulas: spaces removed
        ("X^2", ["x^2"], "HME100k", False),  # ... and case kept
    ],
)
def test_ocrbench_containment(prediction, answers, source, right):
    assert ocrbench_hit(prediction, answers, source) is right


def test_every_shipped_task_file_loads_and_names_a_dataset_with_a_standin():
    from vlm_recipes.data.standins import STANDINS

    names = shipped_tasks()
    assert {"mmmu_val", "mmbench_en_dev", "mmstar", "ai2d", "scienceqa_img", "mathvista_testmini", "ocrbench"} <= set(
        names
    ) and {"chartqa", "docvqa_val", "textvqa_val"} <= set(names)
    for name in names:
        loaded = load_task(name)
        assert loaded.name == name and loaded.dataset_name in STANDINS, name


def test_a_bad_task_file_is_refused_naming_the_file_and_field(tmp_path):
    path = tmp_path / "mine.yaml"
    text = Path(load_task("ai2d").path).read_text() + "promt: x\n"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"mine.yaml: unknown key\(s\) 'promt' \(did you mean 'prompt'\?\)"):
        load_task(str(path))
    path.write_text(text.replace("promt: x\n", "").replace("metric: choice_accuracy", "metric: accuracy"))
    with pytest.raises(ValueError, match=r"unknown metric 'accuracy'; choose from"):
        load_task(str(path))
    with pytest.raises(ValueError, match=r"Unknown benchmark 'mmbench_en' \(did you mean 'mmbench_en_dev'\?\)"):
        load_task("mmbench_en")
    with pytest.raises(ValueError, match="circular evaluation applies to multiple choice"):
        task(metric="anls", circular="rotate")


def test_a_misspelled_column_or_split_fails_before_any_model_is_loaded(standins, tmp_path):
    import dataclasses

    root = standins["lmms-lab-encoder/ai2d"].parent.parent
    with pytest.raises(ValueError, match=r"has no column\(s\) \['option'\]"):
        prepare(dataclasses.replace(load_task("ai2d"), options_column="option"), root)
    with pytest.raises(ValueError, match=r"has no split 'validation' \(splits: \['test'\]\); fix `split`"):
        prepare(dataclasses.replace(load_task("ai2d"), split="validation"), root)
    with pytest.raises(FileNotFoundError, match="no local copy of lmms-lab-encoder/ai2d"):
        prepare(load_task("ai2d"), tmp_path)


def test_mmmu_images_go_where_the_text_names_them(standins):
    data = prepare(load_task("mmmu_val"), standins["lmms-lab-encoder/MMMU"].parent.parent)
    by_question = {s.prompt.split("\n")[0]: s for s in data.samples}
    two = by_question["Which of the two photographs, <image 1> or <image 2>, shows a building?"]
    assert [p["type"] for p in two.messages[0]["content"]] == ["text", "image", "text", "image", "text"]
    assert two.image_columns == ["image_1", "image_2"] and two.answer == "B"
    options = by_question["Which image shows the handwritten digit 3?"]  # the options are images
    assert options.image_columns == ["image_1", "image_2", "image_3"] and options.options[2] == "<image 3>"
    assert len(data.images(options)) == 3
    open_question = next(s for s in data.samples if not s.options)
    assert open_question.prompt.endswith("Answer the question using a single word or phrase.")


def test_rows_that_cannot_be_read_are_counted_listed_and_scored_wrong_and_the_run_goes_on(standins, monkeypatch):
    """MMStar's stand-in holds a row whose options do not parse, MathVista's one whose answer is not among its
    choices: each benchmark still builds every other prompt, and the bad row counts as a question answered wrong."""
    root = standins["Lin-Chen/MMStar"].parent.parent
    for name, reason in (
        ("mmstar", "no 'Options: A: ..., B: ...'"),
        ("mathvista_testmini", "is not one of its options"),
    ):
        bench = load_task(name)
        data = prepare(bench, root)
        assert len(data.bad_rows) == 1 and reason in data.bad_rows[0].reason, (name, data.bad_rows)
        assert data.num_questions == len(data.samples) + 1
        oracle = [s.answer if isinstance(s.answer, str) else s.answer[0] for s in data.samples]
        figures = summarize(bench, data.samples, score_answers(bench, oracle, data.samples), data.bad_rows)
        assert figures["score"] == pytest.approx(1 - 1 / data.num_questions)  # every readable row right
        assert figures["num_bad_rows"] == 1 and figures["bad_rows"][0]["stage"] == "reading"
        assert reason in figures["bad_rows"][0]["reason"] and figures["bad_rows"][0]["id"] == data.bad_rows[0].id
    # Called without a list to collect them, a bad row still raises (the stand-ins' own checks rely on it).
    with pytest.raises(ValueError, match="is not one of its options"):
        build_samples(load_task("mathvista_testmini"), prepare(load_task("mathvista_testmini"), root).dataset)
    # A --limit sample that draws only bad rows goes on: MMStar's bad row alone scores 0 and is listed.
    mmstar = load_task("mmstar")
    only_bad = next(seed for seed in range(50) if prepare(mmstar, root, limit=1, seed=seed).bad_rows)
    data = prepare(mmstar, root, limit=1, seed=only_bad)
    figures = summarize(mmstar, data.samples, score_answers(mmstar, [], data.samples), data.bad_rows)
    assert data.samples == [] and figures["score"] == 0.0 and figures["num_bad_rows"] == 1
    # A split where no row can be read is an error naming the first reason, not a score of 0.
    from vlm_recipes.evaluation.benchmarks import samples as samples_module

    monkeypatch.setattr(
        samples_module,
        "load_split",
        lambda *args: toy_dataset([{"question": "1", "options": ["a", "b"], "answer": "7"}]),
    )
    with pytest.raises(ValueError, match=r"none of its 1 rows .*answer '7' is not an index"):
        prepare(task(), None)


def test_a_prompt_that_cannot_be_scored_scores_zero_with_its_reason_and_the_others_are_scored():
    textvqa = load_task("textvqa_val")
    features = Features({"image": Image(), "question": Value("string"), "answers": List(Value("string")),
                         "question_id": Value("int64")})  # fmt: skip
    image = PILImage.new("RGB", (8, 8))
    rows = [
        {"image": image, "question": "q", "answers": ["stop"] * 10, "question_id": 1},
        {"image": image, "question": "q", "answers": ["stop", "go"], "question_id": 2},  # too few human answers
        {"image": image, "question": "q", "answers": ["go"] * 10, "question_id": 3},
    ]
    samples = build_samples(textvqa, Dataset.from_list(rows, features=features))
    scored = score_answers(textvqa, ["stop", "stop", "go"], samples)
    assert [s.score for s in scored] == [1.0, 0.0, 1.0] and "at least 4" in scored[1].error
    figures = summarize(textvqa, samples, scored)
    assert figures["num_bad_rows"] == 1 and figures["bad_rows"][0]["id"] == "2"
    assert figures["bad_rows"][0]["stage"] == "scoring" and figures["score"] == pytest.approx(2 / 3)

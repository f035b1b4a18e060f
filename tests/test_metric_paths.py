"""One implementation per metric: the same predictions and references scored through every path that names VQA
accuracy (the training recipes' held-out `eval_metrics`, recipes/evaluate_models.py, the `textvqa_val` benchmark and
the BLIP VQA recipes) give the same per-sample scores and the same figure, the official VQA evaluation's."""

import json
from types import SimpleNamespace

import pytest
from datasets import Dataset, Features, Image, List, Value
from PIL import Image as PILImage

from vlm_recipes.evaluation import compare, generation
from vlm_recipes.evaluation.benchmarks.samples import build_samples
from vlm_recipes.evaluation.benchmarks.scorers import score_answers, summarize
from vlm_recipes.evaluation.benchmarks.tasks import load_task

pytestmark = pytest.mark.unit

# Ten human answers each; the prediction was given by 1, 2, 3, 4 and 0 of them (the last two after the VQA
# evaluation's normalisation: "two" is "2", "the" is dropped).
HUMANS = [
    ["stop"] + ["go"] * 9,
    ["spar", "SPAR"] + ["shop"] * 8,
    ["42", "42", "42"] + ["24"] * 7,
    ["2", "two", "2", "Two"] + ["3"] * 6,
    ["evian"] * 10,
]
PREDICTIONS = ["stop", "spar", "42", "2", "volvic"]
OFFICIAL = [0.3, 0.6, 0.9, 1.0, 0.0]  # min(k/3, 1) would give 1/3, 2/3, 1, 1, 0
MEAN = sum(OFFICIAL) / len(OFFICIAL)


def training_path(monkeypatch) -> list[float]:
    """The held-out figures of every training recipe (`eval_metrics: [vqa_accuracy]`, references `answers`)."""
    monkeypatch.setattr(generation, "generate_answers", lambda *args, **kwargs: list(PREDICTIONS))
    rows = [
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "What does it say?"}]},
                {"role": "assistant", "content": [{"type": "text", "text": humans[-1]}]},
            ],
            "answers": humans,
        }
        for humans in HUMANS
    ]
    out = generation.held_out_metrics(
        None, None, rows, 8, 16, "after", metrics=("vqa_accuracy",), references_column="answers"
    )
    return [out["metrics"]["vqa_accuracy"]]


def evaluate_models_path(monkeypatch, tmp_path) -> tuple[float, list[float]]:
    """recipes/evaluate_models.py's scoring of one entry (the model replaced by the predictions)."""
    monkeypatch.setattr(compare, "load_for_inference", lambda *args, **kwargs: (None, None))
    records = [
        {"id": str(i), "prompt": "q", "prediction": p, "reference": h}
        for i, (p, h) in enumerate(zip(PREDICTIONS, HUMANS))
    ]
    monkeypatch.setattr(compare, "predict", lambda *args, **kwargs: [dict(r) for r in records])
    image = PILImage.new("RGB", (8, 8))
    rows = [{"images": [image], "reference": h} for h in HUMANS]
    entry = SimpleNamespace(label="base", model_args=SimpleNamespace(model_name_or_path="m"), adapter_path=None)
    data_args = SimpleNamespace(video_settings=None, dataset_name="toy")
    eval_args = SimpleNamespace(
        device="cpu", trust_remote_code=False, batch_size=8, max_new_tokens=16, metrics=["vqa_accuracy"],
        gallery_samples=0,
    )  # fmt: skip
    report = compare._compare([entry], rows, data_args, eval_args, tmp_path)
    saved = [json.loads(line)["score"] for line in (tmp_path / "predictions-0-base.jsonl").read_text().splitlines()]
    return report["models"][0]["metrics"]["vqa_accuracy"], saved


def benchmark_path() -> tuple[float, list[float]]:
    """The textvqa_val benchmark (its task file, prompts and scorer) on a literal split of the same rows."""
    task = load_task("textvqa_val")
    features = Features(
        {
            "image": Image(),
            "question": Value("string"),
            "answers": List(Value("string")),
            "question_id": Value("int64"),
        }
    )
    image = PILImage.new("RGB", (8, 8))
    rows = [
        {"image": image, "question": "What does it say?", "answers": h, "question_id": i} for i, h in enumerate(HUMANS)
    ]
    samples = build_samples(task, Dataset.from_list(rows, features=features))
    scored = score_answers(task, PREDICTIONS, samples)
    return summarize(task, samples, scored)["score"], [s.score for s in scored]


def blip_path() -> tuple[float, list[float]]:
    """The BLIP VQA recipes' held-out figures (blip_zero_shot / blip_train, task vqa)."""
    from vlm_recipes.captioning.run import figures

    results, per_row, metric = figures("vqa", list(PREDICTIONS), Dataset.from_dict({"answers": HUMANS}))
    assert metric == "vqa_accuracy" and "leave-one-out" in results["accuracy_metric_reason"]
    return results["accuracy"], per_row


def test_vqa_accuracy_is_the_same_number_through_every_path(monkeypatch, tmp_path):
    (training,) = training_path(monkeypatch)
    evaluated, evaluated_rows = evaluate_models_path(monkeypatch, tmp_path)
    benchmark, benchmark_rows = benchmark_path()
    blip, blip_rows = blip_path()
    assert evaluated_rows == pytest.approx(OFFICIAL)
    assert benchmark_rows == pytest.approx(OFFICIAL)
    assert blip_rows == pytest.approx(OFFICIAL)
    for figure in (training, evaluated, benchmark, blip):
        assert figure == pytest.approx(MEAN)  # 0.56 everywhere (min(k/3, 1) would say 0.6)

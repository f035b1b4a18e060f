"""Inference and evaluation on the tiny offline models: batching, video frames, adapters, reports, bad input."""

import json

import pytest
import torch
from helpers import PRETRAINED_IN_DEFAULT_RUN, recipe_module, run_recipe, tiny_family
from PIL import Image

from vlm_recipes.data import synthetic
from vlm_recipes.evaluation.generation import generate_answers
from vlm_recipes.evaluation.inference import frame_indices, load_for_inference, sample_video_frames
from vlm_recipes.paths import REPO_ROOT
from vlm_recipes.settings import DataArguments, GenerateArguments, VLMModelConfig

pytestmark = pytest.mark.learning

# Distinct solid colours, far apart so that lossy video coding cannot confuse them.
PALETTE = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255), (255, 255, 255)]
PALETTE += [(0, 0, 0), (128, 128, 128), (255, 128, 0)]


def write_video(path, colours, size=32, rate=10):
    import av
    import numpy as np

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "1"}  # best quality: colours survive coding
        for rgb in colours:
            frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), rgb, dtype=np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def nearest_colour(image):
    r, g, b = image.resize((1, 1), Image.BOX).getpixel((0, 0))
    return min(range(len(PALETTE)), key=lambda i: sum((c - v) ** 2 for c, v in zip(PALETTE[i], (r, g, b))))


@pytest.mark.unit
def test_video_frames_are_sampled_evenly_and_in_order(tmp_path):
    path = tmp_path / "colours.mp4"
    write_video(path, PALETTE)  # frame i has colour i
    frames = sample_video_frames(path, num_frames=5)
    assert len(frames) == 5 and all(f.mode == "RGB" and f.size == (32, 32) for f in frames)
    assert [nearest_colour(f) for f in frames] == [1, 3, 5, 7, 9]  # the centres of 5 equal segments of 10
    assert [nearest_colour(f) for f in sample_video_frames(path, num_frames=3)] == frame_indices(10, 3) == [1, 5, 8]
    # Asking for more frames than the video has gives every frame, in order.
    assert [nearest_colour(f) for f in sample_video_frames(path, num_frames=50)] == list(range(10))


@pytest.mark.unit
def test_bad_video_input_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="video: file .*missing.mp4.* not found"):
        sample_video_frames(tmp_path / "missing.mp4")
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("not a video")
    with pytest.raises(ValueError, match="notes.mp4 cannot be decoded"):
        sample_video_frames(not_video)


@pytest.mark.parametrize("family", ["smolvlm", "qwen2_vl"])
def test_batched_generation_equals_one_by_one(family):
    """Left padding must not change greedy answers: prompts of different lengths, batched and one at a time."""
    model, processor = load_for_inference(VLMModelConfig(model_name_or_path=f"tiny:{family}"), device="cpu")
    rows = synthetic.make_dataset("caption", num_samples=6, seed=7)  # prompts of 3 to 11 words
    assert len({len(m[0]["content"][1]["text"]) for m in rows["messages"]}) > 2
    torch.manual_seed(0)
    batched = generate_answers(model, processor, rows, batch_size=6, max_new_tokens=8)
    alone = [generate_answers(model, processor, [rows[i]], batch_size=1, max_new_tokens=8)[0] for i in range(6)]
    assert batched == alone
    assert all(batched)  # the tiny base really says something (captions), not empty strings


def run_generate(tmp_path, *overrides):
    out = tmp_path / "predictions.jsonl"
    config = REPO_ROOT / "recipes/configs/tiny-smolvlm/generate.yaml"
    recipe_module("generate").main(["--config", str(config), "--output_file", str(out), *overrides])
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_generate_product_descriptions_from_a_folder_with_metadata(tmp_path):
    folder = tmp_path / "products"
    folder.mkdir()
    products = [("mug.png", "Red Mug <XL>", "kitchen"), ("lamp.jpg", "Blue Lamp", "lighting")]
    for (name, _, _), colour in zip(products, [(220, 40, 40), (40, 80, 220)]):
        Image.new("RGB", (64, 64), colour).save(folder / name)
    (folder / "metadata.jsonl").write_text(
        "".join(json.dumps({"file_name": f, "name": n, "category": c}) + "\n" for f, n, c in products)
    )
    template = "Write a product description for this {category} item: {name}."
    records = run_generate(tmp_path, "--image_dir", str(folder), "--prompt_template", template, "--batch_size", "2")
    assert [r["id"] for r in records] == [str(folder / "lamp.jpg"), str(folder / "mug.png")]  # sorted by name
    assert records[0]["prompt"] == "Write a product description for this lighting item: Blue Lamp."
    assert records[1]["prompt"] == "Write a product description for this kitchen item: Red Mug <XL>."
    assert all(isinstance(r["prediction"], str) for r in records)


def test_generate_from_a_video_and_a_chat_file(tmp_path):
    video = tmp_path / "clip.mp4"
    write_video(video, PALETTE[:6])
    records = run_generate(tmp_path, "--video", str(video), "--num_frames", "4", "--prompt", "What colours appear?")
    assert len(records) == 1 and records[0]["prompt"] == "What colours appear?"
    chat = tmp_path / "chat.json"
    chat.write_text(json.dumps([{"role": "user", "content": "What color is the shape?"}]))
    Image.new("RGB", (64, 64), (40, 180, 60)).save(tmp_path / "green.png")
    records = run_generate(tmp_path, "--image", str(tmp_path / "green.png"), "--chat_file", str(chat))
    assert records[0]["prompt"] == "What color is the shape?" and records[0]["id"].endswith("green.png")


@pytest.mark.unit
def test_bad_input_names_the_file_or_field_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"image: image file '.*nope\.png' not found .* image_dir"):
        run_generate(tmp_path, "--image", str(tmp_path / "nope.png"))
    with pytest.raises(FileNotFoundError, match=r"adapter_path '.*no_such_run': no such directory\. Pass the output"):
        run_generate(tmp_path, "--adapter_path", str(tmp_path / "no_such_run"))
    not_adapter = tmp_path / "empty_run"
    not_adapter.mkdir()
    with pytest.raises(FileNotFoundError, match="no adapter_config.json in it"):
        run_generate(tmp_path, "--adapter_path", str(not_adapter))
    Image.new("RGB", (64, 64)).save(tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"prompt_template needs \{category\}, but image .*x.png has no 'category'"):
        run_generate(tmp_path, "--image", str(tmp_path / "x.png"), "--prompt_template", "A {category}")
    with pytest.raises(ValueError, match=r"Unknown metric\(s\) \['accuracy'\]; choose from"):
        recipe_module("evaluate_models").main(["--metrics", "accuracy", "--output_dir", str(tmp_path / "e")])
    with pytest.raises(FileNotFoundError, match=r"adapter_paths '.*no_such_run': no such directory"):
        recipe_module("evaluate_models").main(["--adapter_paths", str(tmp_path / "no_such_run")])
    with pytest.raises(ValueError, match="Give one input"):
        GenerateArguments(image=["a.png"], video="b.mp4")


def test_evaluation_of_a_fine_tuned_tiny_model_beats_its_base(tmp_path):
    """Train a LoRA adapter briefly, then compare it with its base through recipes/evaluate_models.py.

    The training recipe's own after-accuracy on the same held-out rows must equal the report's exact match:
    both come from the one exact_match metric module and the same batched generation.
    """
    config = REPO_ROOT / "recipes/configs/tiny-smolvlm/sft_lora.yaml"
    common = ["--synthetic_task", "color", "--max_eval_samples", "40"]
    trained = run_recipe(
        "sft", config, tmp_path / "run", *common, "--max_steps", "30", "--synthetic_train_samples", "480",
        "--per_device_eval_batch_size", "20",
    )  # fmt: skip
    out = tmp_path / "eval"
    report = recipe_module("evaluate_models").main(
        [
            *common,
            "--adapter_paths", str(tmp_path / "run"),
            "--other_models", "",
            "--metrics", "exact_match", "relaxed_accuracy", "bleu",
            "--batch_size", "20",
            "--output_dir", str(out),
        ]
    )  # fmt: skip
    base, tuned = (m["metrics"]["exact_match"] for m in report["models"])
    assert tuned >= base + 0.5, report
    assert base == trained["accuracy_before"] and tuned == trained["accuracy_after"]
    assert [m["label"] for m in report["models"]] == ["tiny:smolvlm", "run"]
    saved = json.loads((out / "report.json").read_text())
    assert saved["models"][1]["metrics"] == report["models"][1]["metrics"] and saved["num_samples"] == 40
    table = (out / "report.md").read_text()
    assert f"| run | {tuned:.3f} |" in table and f"{tuned - base:+.3f}" in table
    predictions = [json.loads(line) for line in (out / "predictions-1-run.jsonl").read_text().splitlines()]
    assert sum(p["score"] for p in predictions) / 40 == pytest.approx(tuned)
    gallery = (out / "gallery.html").read_text()
    assert gallery.count("data:image/png;base64,") == 24 and "What color is the shape?" in gallery


def test_gallery_escapes_html_from_the_data(tmp_path):
    """Questions, answers and predictions from data never become markup in gallery.html."""
    Image.new("RGB", (64, 64), (220, 40, 40)).save(tmp_path / "red.png")
    question = 'What color? <script>alert("x")</script>'
    rows = [
        {"images": ["red.png"], "question": question, "answer": "red & <b>bold</b>"},
        {"images": ["red.png"], "question": "What color is the shape?", "answer": "red"},
    ]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "eval"
    recipe_module("evaluate_models").main(
        [
            "--dataset_name", str(data), "--dataset_train_split", "none", "--dataset_test_split", "train",
            "--question_column", "question",
            "--answer_column", "answer", "--other_models", "", "--labels", "base <i>", "--output_dir", str(out),
        ]
    )  # fmt: skip
    gallery = (out / "gallery.html").read_text()
    assert "<script>" not in gallery and "<b>" not in gallery and "<i>" not in gallery
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in gallery and "red &amp; &lt;b&gt;bold" in gallery


@pytest.mark.unit
def test_dataset_rows_match_the_training_held_out_split():
    from vlm_recipes.data.loading import load_splits
    from vlm_recipes.evaluation.inference import dataset_rows

    args = DataArguments(synthetic_task="shape", max_eval_samples=5, synthetic_train_samples=1)
    _, held_out = load_splits(args)
    rows = dataset_rows(args, GenerateArguments())
    assert [r["reference"] for r in rows] == held_out["answer"]
    assert [r["messages"][0] for r in rows] == [m[0] for m in held_out["messages"]]


REAL_INFERENCE_CONFIGS = sorted(
    p
    for p in (REPO_ROOT / "recipes" / "configs").rglob("*.yaml")
    if "tiny-" not in str(p) and p.stem.startswith(("generate", "evaluate"))
)


@pytest.mark.parametrize("path", REAL_INFERENCE_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_real_inference_config_runs_its_code_path_on_the_tiny_model(tmp_path, path, standins):
    """Each real generate/evaluate config with only the model swapped for a tiny offline one and the dataset for
    its offline stand-in (vlm_recipes/data/standins/: the real splits, configurations, columns and types).

    Kept: the split and configuration names, the column mapping (ChartQA's list-valued `label`, DocVQA's and
    TextVQA's `answers`), system prompt, prompt template, metrics, dtype and resolution controls (SmolVLM's edge
    scaled to the 64 px tiny tiles).
    """
    import yaml

    from vlm_recipes.launch import parse

    config = yaml.safe_load(path.read_text())
    family = tiny_family(config)
    model = f"tiny:{family}" + ("" if family in PRETRAINED_IN_DEFAULT_RUN else "-random")
    overrides = ["--model_name_or_path", model, "--max_new_tokens", "4"]
    if family == "smolvlm":
        overrides += ["--longest_edge", "128"]
    name = "generate" if path.stem.startswith("generate") else "evaluate_models"
    if name == "generate":
        overrides += ["--image_dir", str(REPO_ROOT / "examples/products"), "--output_file", str(tmp_path / "p.jsonl")]
    else:
        overrides += ["--dataset_name", str(standins[config["dataset_name"]]), "--output_dir", str(tmp_path / "eval")]
        overrides += ["--adapter_paths", "", "--labels", ""]  # the adapters of real training runs are not here
    module = recipe_module(name)
    parsed = parse(module.PARSER_TYPES, module.DEFAULT_CONFIG, ["--config", str(path), *overrides])
    assert parsed[1].device == "auto"  # the real config's own setting is kept
    result = module.main(["--config", str(path), *overrides])
    if name == "generate":
        assert len(result) == 4 and all(config["prompt_template"].split("{")[0] in r["prompt"] for r in result)
    else:
        assert result["num_samples"] >= 1 and list(result["models"][0]["metrics"]) == config["metrics"]
        records = (tmp_path / "eval" / result["models"][0]["predictions_file"]).read_text().splitlines()
        reference = json.loads(records[0])["reference"]
        # Scored against the config's answer column as the dataset stores it: lists of answers stay lists.
        assert isinstance(reference, list) == (config["answer_column"] in ("label", "answers"))


def test_a_failing_entry_leaves_no_half_written_report(tmp_path):
    """The first entry is evaluated and written, the second cannot load: nothing of the run is left behind."""
    Image.new("RGB", (64, 64), (220, 40, 40)).save(tmp_path / "red.png")
    rows = [{"images": ["red.png"], "question": "What color is the shape?", "answer": "red"}]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "eval"
    with pytest.raises(Exception, match="no-such-model"):
        recipe_module("evaluate_models").main(
            [
                "--dataset_name", str(data), "--dataset_train_split", "none", "--dataset_test_split", "train",
            "--question_column", "question",
                "--answer_column", "answer", "--other_models", str(tmp_path / "no-such-model"), "--labels", "",
                "--output_dir", str(out),
            ]
        )  # fmt: skip
    assert not out.exists()

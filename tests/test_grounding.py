"""Grounding: box conventions convert both ways, answers parse leniently but never wrongly, the IoU metrics and the
reward score literal boxes as computed by hand, the gallery draws the boxes where they are, the offline SFT default
learns on held-out scenes, GRPO's loss scores the box answers it sampled, and GRPO with the `iou` reward raises
held-out mean IoU from a short SFT start (docs/figures.md, Grounding)."""

import copy
import json

import pytest
from PIL import Image

from vlm_recipes.evaluation.metrics import score
from vlm_recipes.grounding.boxes import box_iou, get_convention, parse_box, parse_boxes, qwen_input_size
from vlm_recipes.models.families import set_image_resolution
from vlm_recipes.settings import DataArguments
from vlm_recipes.training.rewards import box_format_reward, iou_reward

pytestmark = pytest.mark.unit

SMOL, QWEN = get_convention("smolvlm"), get_convention("qwen2.5-vl")


@pytest.fixture(scope="module")
def qwen_processor():
    """The tiny Qwen2-VL's processor, built without its model (resolving `tiny:qwen2_vl-random` would build one)."""
    from vlm_recipes.tiny import vlm as tiny

    return tiny.build_processor("qwen2_vl")


def processed_size(processor, image_size):
    """(width, height) of the image the processor really feeds the model: its patch grid times the patch size."""
    grid = processor.image_processor(images=[Image.new("RGB", image_size)], return_tensors="pt")["image_grid_thw"][0]
    patch = processor.image_processor.patch_size
    return (int(grid[2]) * patch, int(grid[1]) * patch)


@pytest.mark.parametrize("image_size", [(64, 64), (96, 64), (64, 150), (640, 427)])
@pytest.mark.parametrize("bounds", [None, (3136, 200704)])
def test_the_qwen_frame_is_the_image_the_processor_feeds_the_model(qwen_processor, image_size, bounds):
    qwen_processor = copy.deepcopy(qwen_processor)  # the other tests use the tiny model's own bounds
    if bounds is not None:
        set_image_resolution(qwen_processor, min_pixels=bounds[0], max_pixels=bounds[1])
    assert qwen_input_size(image_size, qwen_processor) == processed_size(qwen_processor, image_size)


@pytest.mark.parametrize("convention", ["smolvlm", "qwen2.5-vl"])
@pytest.mark.parametrize("image_size", [(64, 64), (96, 64), (64, 150), (640, 427)])
def test_conversions_round_trip_within_the_grid(qwen_processor, convention, image_size):
    conv = get_convention(convention)
    w, h = image_size
    box = (0.1 * w, 0.25 * h, 0.55 * w, 0.9 * h)
    text, frame = conv.answer(box, image_size, qwen_processor, label="red circle")
    back = conv.read(text, image_size, frame)
    # One rounding to the answer's integer grid: at most half a grid step, in pixels of the image.
    step = (w / frame[0] / 2, h / frame[1] / 2, w / frame[0] / 2, h / frame[1] / 2)
    assert all(abs(a - b) <= s + 1e-9 for a, b, s in zip(back, box, step)), (back, box, frame)
    if convention == "qwen2.5-vl":
        assert frame == processed_size(qwen_processor, image_size) and frame != image_size
    else:
        assert frame == (100, 100)


def test_answers_in_each_convention_literally(qwen_processor):
    # SmolVLM: percent of the sides, integers, half up.
    assert SMOL.answer((16, 16, 32, 48), (64, 64))[0] == "[25, 25, 50, 75]"
    assert SMOL.answer((10, 0, 20, 30), (80, 40))[0] == "[13, 0, 25, 75]"  # 12.5 -> 13
    # Qwen2.5-VL: 64x64 is fed as 112x112 by the tiny processor: pixels x 1.75, with the label as JSON text.
    text, frame = QWEN.answer((16, 16, 32, 48), (64, 64), qwen_processor, label='the "big" one')
    assert frame == (112, 112)
    assert json.loads(text) == [{"bbox_2d": [28, 28, 56, 84], "label": 'the "big" one'}]


@pytest.mark.parametrize(
    "text, expected",
    [
        ('[{"bbox_2d": [28, 28, 56, 84], "label": "red circle"}]', (28, 28, 56, 84)),
        ('```json\n[\n  {"bbox_2d": [1, 2, 30, 40], "label": "cat"}\n]\n```', (1, 2, 30, 40)),
        ('{"bbox_2d": [1.5, 2, 30, 40]}', (1.5, 2, 30, 40)),
        ("[25, 25, 50, 75]", (25, 25, 50, 75)),
        (" The box is [25, 25, 50, 75].", (25, 25, 50, 75)),
        ("(10,20),(30,40)", (10, 20, 30, 40)),
        ("[5, 5, 9, 9] and [1, 1, 3, 3]", (5, 5, 9, 9)),  # several boxes: the first
        ('[{"bbox_2d": [50, 5, 10, 9]}, {"bbox_2d": [1, 1, 3, 3]}]', (1, 1, 3, 3)),  # a non-box is skipped
        ("[5, 5, 1, 1]", None),  # x2 < x1: not repaired into a box
        ("[1, 2, 3]", None),
        ("[1, 2, 3, 4, 5]", None),
        ('[{"bbox_2d": [1, 2, 3]}]', None),
        ("the red circle", None),
        ("", None),
        ("[25, 25, 50, 7", None),  # truncated
    ],
)
def test_answers_parse_leniently_but_never_wrongly(text, expected):
    assert parse_box(text) == expected


def test_parse_boxes_lists_every_box_in_order():
    assert parse_boxes('[{"bbox_2d": [1, 1, 3, 3]}, {"bbox_2d": [5, 5, 9, 9]}]') == [(1, 1, 3, 3), (5, 5, 9, 9)]


def test_an_unknown_convention_and_unused_grounding_settings_are_refused():
    with pytest.raises(ValueError, match=r"Unknown box_format 'yolo'.*qwen2\.5-vl.*smolvlm"):
        DataArguments(synthetic_task="grounding", box_format="yolo")
    with pytest.raises(ValueError, match="set box_format"):
        DataArguments(synthetic_task="grounding")
    with pytest.raises(ValueError, match="grounding_query_column only apply to grounding data"):
        DataArguments(grounding_query_column="query")
    with pytest.raises(ValueError, match="bbox_layout"):
        DataArguments(synthetic_task="grounding", box_format="smolvlm", bbox_layout="cxcywh")
    with pytest.raises(ValueError, match="remove question_column"):
        DataArguments(dataset_name="x.jsonl", box_format="smolvlm", question_column="q", answer_column="a")
    with pytest.raises(ValueError, match="use synthetic_task grounding"):
        DataArguments(box_format="smolvlm")


# -- metrics and reward on literal boxes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prediction, reference, iou",
    [
        ("[0, 0, 10, 10]", "[0, 0, 10, 10]", 1.0),  # identical
        ("[0, 0, 10, 10]", "[20, 20, 30, 30]", 0.0),  # disjoint
        ("[0, 0, 10, 10]", "[10, 0, 20, 10]", 0.0),  # touching edges: no area in common
        ("[0, 0, 10, 10]", "[5, 0, 15, 10]", 50 / 150),  # half of each: 50 / (100 + 100 - 50)
        ("[0, 0, 10, 10]", "[0, 0, 10, 20]", 0.5),  # inside a box twice its size: exactly the 0.5 threshold
        ("[2, 2, 6, 6]", "[0, 0, 10, 10]", 16 / 100),
        ('[{"bbox_2d": [0, 0, 10, 10], "label": "x"}]', '[{"bbox_2d": [5, 0, 15, 10], "label": "x"}]', 50 / 150),
        ("I cannot see it.", "[0, 0, 10, 10]", 0.0),  # unparseable: no box
        ("[10, 10, 0, 0]", "[0, 0, 10, 10]", 0.0),  # not a box
    ],
)
def test_iou_metrics_on_literal_boxes(prediction, reference, iou):
    mean = score("mean_iou", [prediction], [reference])
    assert mean["mean_iou"] == pytest.approx(iou)
    assert score("iou_accuracy", [prediction], [reference])["iou_accuracy"] == float(iou >= 0.5)


def test_iou_metrics_average_over_samples_and_refuse_a_reference_without_a_box():
    predictions = ["[0, 0, 10, 10]", "no", "[0, 0, 10, 10]"]
    references = ["[0, 0, 10, 10]", "[0, 0, 10, 10]", "[5, 0, 15, 10]"]
    assert score("mean_iou", predictions, references)["mean_iou"] == pytest.approx((1 + 0 + 1 / 3) / 3)
    assert score("iou_accuracy", predictions, references)["iou_accuracy"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="states no box"):
        score("mean_iou", ["[0, 0, 1, 1]"], ["red circle"])


def test_iou_in_a_convention_frame_equals_iou_in_pixels():
    """Scaling x and y by the same factors keeps IoU: the metrics may compare answers in the answer's frame."""
    a, b = (10, 20, 50, 60), (30, 10, 70, 50)
    frame, size = (112, 140), (64, 80)
    to_frame = [tuple(v * f / s for v, f, s in zip(box, frame * 2, size * 2)) for box in (a, b)]
    assert box_iou(*to_frame) == pytest.approx(box_iou(a, b))


def test_iou_reward_takes_answers_back_to_pixels(qwen_processor):
    bbox = [16.0, 16.0, 32.0, 48.0]  # pixels of a 64x64 image
    qwen_text, qwen_frame = QWEN.answer(bbox, (64, 64), qwen_processor, label="red circle")
    completions = [
        [{"role": "assistant", "content": "[25, 25, 50, 75]"}],  # SmolVLM's grid
        [{"role": "assistant", "content": qwen_text}],  # Qwen's resized pixels
        [{"role": "assistant", "content": "[25, 25, 50, 50]"}],  # half of the box
        [{"role": "assistant", "content": "somewhere on the left"}],
    ]
    frames = [[100, 100], list(qwen_frame), [100, 100], [100, 100]]
    rewards = iou_reward(completions, bbox=[bbox] * 4, box_frame=frames, image_size=[[64, 64]] * 4)
    assert rewards == pytest.approx([1.0, 1.0, 0.5, 0.0])
    # Without frames (the legacy form) both sides are taken to be in one frame; without a reference: None.
    assert iou_reward(["[16, 16, 32, 48]"], bbox=[bbox]) == [1.0]
    assert iou_reward(["[16, 16, 32, 48]"], bbox=[None]) == [None]


# -- data -------------------------------------------------------------------------------------------------------------


def grounding_args(**changes):
    settings = dict(
        synthetic_task="grounding",
        box_format="smolvlm",
        grounding_query_column="query",
        grounding_prompt="Where is the {query}?",
        synthetic_train_samples=6,
        max_eval_samples=4,
    )
    return DataArguments(**{**settings, **changes})


def test_synthetic_grounding_rows_are_deterministic_and_boxes_are_where_the_circle_is(qwen_processor):
    from vlm_recipes.data.loading import load_splits

    train, test = load_splits(grounding_args())
    again, _ = load_splits(grounding_args())
    assert train["answer"] == again["answer"] and train["answer"] != test["answer"][: len(train)]
    for row in train:
        x1, y1, x2, y2 = (int(v) for v in row["bbox"])
        image = row["images"][0].convert("RGB")
        assert image.getpixel(((x1 + x2) // 2, (y1 + y2) // 2)) == (220, 40, 40)  # the red circle's centre
        assert image.getpixel((x1, y1)) != (220, 40, 40)  # a circle leaves its box's corners empty
        assert row["messages"][0]["content"][-1]["text"] == "Where is the red circle?"
        assert row["messages"][-1]["content"][0]["text"] == row["answer"] == SMOL.answer(row["bbox"], (64, 64))[0]
    # Each row names its convention, and its own answer is a well-formed answer in it (the box_format reward's check).
    assert set(train["box_format"]) == {"smolvlm"}
    assert box_format_reward(train["answer"], box_format=train["box_format"], box_frame=train["box_frame"]) == [
        1.0
    ] * len(train)
    # Qwen's answers need the processor (its frame); given it, they are in the 112x112 frame of the tiny processor.
    with pytest.raises(ValueError, match="load the splits with the run's processor"):
        load_splits(grounding_args(box_format="qwen2.5-vl"))
    train, _ = load_splits(grounding_args(box_format="qwen2.5-vl"), processor=qwen_processor)
    assert train["box_frame"][0] == [112, 112] and json.loads(train["answer"][0])[0]["label"] == "red circle"
    assert box_format_reward(train["answer"], box_format=train["box_format"], box_frame=train["box_frame"]) == [
        1.0
    ] * len(train)
    assert box_format_reward(train["answer"], box_format=["smolvlm"] * len(train), box_frame=train["box_frame"]) == [
        0.0
    ] * len(train)  # a JSON answer is not SmolVLM's bare list


def test_mirrored_boxes_label_the_other_side_in_their_share_of_training_rows_only():
    from vlm_recipes.data.loading import load_splits

    clean, clean_test = load_splits(grounding_args(synthetic_train_samples=400, max_eval_samples=50))
    noisy, noisy_test = load_splits(
        grounding_args(synthetic_train_samples=400, max_eval_samples=50, synthetic_mirrored_boxes=0.6)
    )
    assert noisy_test["answer"] == clean_test["answer"]  # held-out rows keep their true boxes
    mirrored = 0
    for row, truth in zip(noisy, clean):
        assert list(row["images"][0].getdata()) == list(truth["images"][0].getdata())  # the same scenes
        if row["bbox"] != truth["bbox"]:
            x1, y1, x2, y2 = truth["bbox"]
            assert row["bbox"] == [64 - x2, y1, 64 - x1, y2] and box_iou(row["bbox"], truth["bbox"]) == 0.0
            mirrored += 1
    assert 0.5 < mirrored / len(noisy) < 0.7
    for bad in ({"synthetic_task": "grounding_free"}, {"synthetic_mirrored_boxes": 1.0}):
        with pytest.raises(ValueError, match="synthetic_mirrored_boxes"):
            grounding_args(**{"synthetic_mirrored_boxes": 0.5, **bad})
    with pytest.raises(ValueError, match="synthetic_mirrored_boxes"):
        DataArguments(synthetic_mirrored_boxes=0.5)  # not a grounding task


def test_grounding_free_boxes_are_continuous_deterministic_and_where_the_circle_is():
    from vlm_recipes.data.loading import load_splits

    train, test = load_splits(grounding_args(synthetic_task="grounding_free", synthetic_train_samples=40))
    again, _ = load_splits(grounding_args(synthetic_task="grounding_free", synthetic_train_samples=40))
    assert train["answer"] == again["answer"] and train["answer"][:4] != test["answer"]
    sides, corners = set(), set()
    for row in train:
        x1, y1, x2, y2 = (int(v) for v in row["bbox"])
        image = row["images"][0].convert("RGB")
        assert image.getpixel(((x1 + x2) // 2, (y1 + y2) // 2)) == (220, 40, 40)  # the red circle's centre
        assert image.getpixel((x1, y1)) != (220, 40, 40)  # a circle leaves its box's corners empty
        assert row["answer"] == SMOL.answer(row["bbox"], (64, 64))[0]
        sides.add(x2 - x1)
        corners.add((x1 % 16, y1 % 16))
    assert len(sides) >= 8 and len(corners) >= 20  # not the 16 cells of `grounding`: sizes and places vary


def test_a_bad_box_is_named_with_its_row_before_any_model_loads(tmp_path):
    from vlm_recipes.data.loading import load_splits

    Image.new("RGB", (40, 30)).save(tmp_path / "a.png")
    rows = [
        {"image": "a.png", "object": "cat", "bbox": [1, 2, 10, 12]},
        {"image": "a.png", "object": "dog", "bbox": [5, 5, 50, 20]},  # x2 = 50 > width 40
    ]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = dict(dataset_name=str(data), image_column="image", grounding_query_column="object", eval_fraction=0.5)
    with pytest.raises(ValueError, match=r"row_id='data.jsonl:2'.*outside its 40x30 image.*bbox_layout"):
        load_splits(DataArguments(box_format="smolvlm", **args))
    rows[1]["bbox"] = [5, 5, 3, 20]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=r"row_id='data.jsonl:2'.*is not a box in layout xyxy"):
        load_splits(DataArguments(box_format="smolvlm", **args))
    rows[1]["bbox"] = [5, 5, 10, 10]  # as COCO's x, y, width, height: 5..15 x 5..15, inside
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    train, test = load_splits(DataArguments(box_format="smolvlm", bbox_layout="xywh", **args), seed=0)
    assert sorted(tuple(b) for b in [*train["bbox"], *test["bbox"]]) == [(1, 2, 11, 14), (5, 5, 15, 15)]


# -- gallery ----------------------------------------------------------------------------------------------------------


def test_the_gallery_draws_predicted_and_reference_boxes_where_they_are(tmp_path):
    from vlm_recipes.grounding.gallery import PREDICTED_COLOR, REFERENCE_COLOR, TILE, gallery_from_answers

    rows = [
        {"images": [Image.new("RGB", (64, 64), (128, 128, 128))], "bbox": [8, 8, 24, 24], "image_size": [64, 64],
         "box_frame": [100, 100]},
        {"images": [Image.new("RGB", (80, 40), (128, 128, 128))], "bbox": [40, 10, 60, 30], "image_size": [80, 40],
         "box_frame": [100, 100]},
    ]  # fmt: skip
    predictions = ["[50, 50, 75, 75]", "no idea"]  # the first: pixels 32..48 of the 64 px image
    path = gallery_from_answers(rows, predictions, tmp_path / "grounding_gallery.png")
    sheet = Image.open(path).convert("RGB")
    scale = TILE / 64  # the first image fills its tile
    assert sheet.getpixel((int(8 * scale), int(16 * scale))) == REFERENCE_COLOR  # left edge of the reference box
    assert sheet.getpixel((int(40 * scale), int(32 * scale))) == PREDICTED_COLOR  # top edge of the predicted box
    assert sheet.getpixel((int(16 * scale), int(56 * scale))) == (128, 128, 128)  # elsewhere: the image
    # The second tile has only its reference box (the answer states none).
    second = sheet.crop((TILE, 0, 2 * TILE, TILE))
    colours = {c for _, c in second.getcolors(maxcolors=1 << 16)}
    assert REFERENCE_COLOR in colours and PREDICTED_COLOR not in colours


# -- the offline defaults learn ---------------------------------------------------------------------------------------

from helpers import run_recipe  # noqa: E402

from vlm_recipes.paths import REPO_ROOT  # noqa: E402

CONFIGS = REPO_ROOT / "recipes" / "configs"


@pytest.mark.learning
def test_sft_grounding_default_learns_to_find_the_red_circle(tmp_path):
    """The shipped tiny SmolVLM default: held-out IoU@0.5 from 0 to >= 0.8 on scenes drawn with another seed."""
    out = tmp_path / "sft"
    results = run_recipe("sft", CONFIGS / "tiny-smolvlm" / "sft_grounding.yaml", out)
    assert results["num_eval_samples"] == 200
    assert results["iou_accuracy_before"] <= 0.05 and results["mean_iou_before"] <= 0.05, results
    assert results["iou_accuracy_after"] >= 0.8, results
    assert results["mean_iou_after"] >= 0.8, results
    assert (out / "grounding_gallery.png").exists()


@pytest.mark.learning
@pytest.mark.slow
def test_sft_grounding_default_learns_on_qwen2_vl(tmp_path):
    """The tiny Qwen2-VL default (answers in Qwen2-VL's own format, <|box_start|>(x1,y1),(x2,y2)<|box_end|> on a
    [0, 1000) grid, the markers spelled out by the tiny tokenizer): 1000 steps, several minutes on the shared 2 cores,
    so behind slow; the SmolVLM run above is the default proof."""
    results = run_recipe("sft", CONFIGS / "tiny-qwen2-vl" / "sft_grounding.yaml", tmp_path / "sft")
    assert results["iou_accuracy_before"] <= 0.05, results
    assert results["iou_accuracy_after"] >= 0.8 and results["mean_iou_after"] >= 0.8, results


@pytest.mark.learning
def test_grpo_grounding_trains_on_the_distribution_it_samples_from(tmp_path, monkeypatch):
    """Multi-token box answers: at every step, each completion GRPO's loss scores is one the policy sampled for the
    same image, and the loss's per-token log-probabilities are those the sampler drew it with (after temperature), also
    after updates. Guards the suspects of issue 20 (completion logits one position off, masks, EOS, image tokens of
    TRL's second tokenization, a stale policy): had any of them been wrong, the two would differ."""
    import torch
    import transformers.generation.utils as generation_utils
    from trl import GRPOTrainer

    sampled, checked = {}, []
    generate, compute_loss = generation_utils.GenerationMixin.generate, GRPOTrainer._compute_loss

    def recording_generate(self, *args, **kwargs):
        config = kwargs.get("generation_config")
        if config is None or not config.do_sample:
            return generate(self, *args, **kwargs)
        out = generate(self, *args, output_scores=True, return_dict_in_generate=True, **kwargs)
        completions = out.sequences[:, kwargs["input_ids"].shape[1] :]
        logps = torch.stack(out.scores, 1).float().log_softmax(-1)  # the processed (temperature-scaled) scores
        sampled.update(
            pixels=kwargs["pixel_values"].clone(),
            completions=completions.clone(),
            logps=logps.gather(-1, completions.unsqueeze(-1)).squeeze(-1),
        )
        return out.sequences

    def checking_compute_loss(self, model, inputs):
        prompt, completion = inputs["prompt_ids"], inputs["completion_ids"]
        mask = inputs["completion_mask"].bool()
        forward = {k: inputs[k] for k in ("pixel_values", "pixel_attention_mask", "num_images") if k in inputs}
        with torch.no_grad():
            logps, _, _ = self._get_per_token_logps_and_entropies(
                model,
                torch.cat([prompt, completion], 1),
                torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1),
                completion.size(1),
                **forward,
            )
        for i in range(completion.size(0)):
            tokens = completion[i][mask[i]]
            drawn = [
                j
                for j in range(sampled["completions"].size(0))
                if torch.equal(sampled["pixels"][j], inputs["pixel_values"][i])
                and sampled["completions"][j, : len(tokens)].tolist() == tokens.tolist()
            ]
            assert drawn, f"loss row {i}: no completion sampled for this image has these tokens"
            gap = (sampled["logps"][drawn[0], : len(tokens)] - logps[i, : len(tokens)]).abs().max().item()
            checked.append((len(tokens), gap))
        return compute_loss(self, model, inputs)

    monkeypatch.setattr(generation_utils.GenerationMixin, "generate", recording_generate)
    monkeypatch.setattr(GRPOTrainer, "_compute_loss", checking_compute_loss)
    run_recipe(
        "grpo", CONFIGS / "tiny-smolvlm" / "grpo_grounding.yaml", tmp_path / "grpo",
        "--model_name_or_path", "tiny:smolvlm", "--max_steps", "3", "--learning_rate", "1e-3", "--temperature", "0.7",
        "--per_device_train_batch_size", "16",
        "--synthetic_train_samples", "48", "--max_eval_samples", "4", "--per_device_eval_batch_size", "4",
    )  # fmt: skip
    assert len(checked) == 3 * 16
    assert max(n for n, _ in checked) > 1  # multi-token completions
    assert max(gap for _, gap in checked) < 1e-4, checked


def sft_start_then_grpo(tmp_path, sft_args=("--max_steps", "450"), grpo_args=()) -> dict:
    """The chain `make grounding` runs: the SFT default (stopped at 450 steps unless `sft_args` say otherwise),
    merged, then the GRPO config from it."""
    from vlm_recipes.models.merge import MergeArguments, merge_adapter

    start = tmp_path / "sft"
    run_recipe("sft", CONFIGS / "tiny-smolvlm" / "sft_grounding.yaml", start, *sft_args)
    merged = merge_adapter(MergeArguments(adapter=str(start), output_dir=str(tmp_path / "merged")))
    return run_recipe("grpo", CONFIGS / "tiny-smolvlm" / "grpo_grounding.yaml", tmp_path / "grpo",
                      "--model_name_or_path", str(merged), *grpo_args)  # fmt: skip


@pytest.mark.learning
def test_grpo_grounding_raises_mean_iou_further_from_an_sft_start(tmp_path):
    """The issue's bar in the default run, from a start away from SFT's cliff: the grounding SFT default run to the
    end of its schedule (800 steps) on labels of which 60% point at the red circle's mirrored cell
    (`synthetic_mirrored_boxes: 0.6`, a systematic annotation error), so the start has learnt both cells and answers
    the right one for some of the held-out scenes; then 100 GRPO steps at lr 3e-4 with the config's reward
    (`thresholded_iou` since 2026-12-08), which pays the right cell only. Measured (start -> after; mean IoU and
    IoU@0.5 are equal here): `thresholded_iou` 0.380 -> 0.538 (2026-12-08, AMD EPYC); with `iou` (2026-12-07, Intel
    Xeon): 0.396 -> 0.638 as is, 0.412 -> 0.640 under ATen / oneDNN AVX2, 0.228 -> 0.750 under MKL_CBWR=COMPATIBLE
    (which start the argmax lands on moves with the numerics; GRPO's gain, +0.23 to +0.52, is far above the bar); at lr
    1e-4, +0.128 as is.
    The start stopped at 450 steps, which this test used before, sat where SFT's learning turns on: the pinned base
    moved it from 0.43 to 0.19 and GRPO then lost (issue 26). The start is checked first, so a run whose start moved
    says so."""
    # The start's SFT computes its loss from full logits, as when these figures were measured: logits_at_labels (on
    # by default since issue 33) is exact per step to 1e-5, yet over 800 steps it ends at another start, 0.452, from
    # which the same GRPO gained only +0.022 (2026-12-07). The GRPO bar depends on its start; that is measured, not
    # hidden (docs/recipes.md, grounding).
    sft = ("--max_steps", "800", "--synthetic_mirrored_boxes", "0.6", "--max_eval_samples", "50")
    sft += ("--logits_at_labels", "false")
    results = sft_start_then_grpo(tmp_path, sft, ("--max_steps", "100", "--learning_rate", "3e-4"))
    assert results["num_eval_samples"] == 500
    assert 0.1 <= results["mean_iou_before"] <= 0.7, results  # the start measured: both cells learnt
    assert results["mean_iou_after"] >= results["mean_iou_before"] + 0.08, results
    assert results["iou_accuracy_after"] >= results["iou_accuracy_before"] + 0.08, results


@pytest.mark.learning
@pytest.mark.slow
def test_grpo_grounding_raises_mean_iou_from_a_short_sft_start(tmp_path):
    """The documented chain (`make grounding`): the SFT default stopped at 450 steps (held-out boxes still often in
    the wrong cell), merged, then the shipped GRPO config with the `iou` reward raises held-out mean IoU on 500 scenes
    drawn with another seed. Measured from three SFT starts, five runs: +0.048 to +0.315 (docs/figures.md,
    Grounding); this one is the first row (+0.048). 8.5 min at one thread, so behind slow."""
    results = sft_start_then_grpo(tmp_path)
    assert results["num_eval_samples"] == 500
    assert 0.2 <= results["mean_iou_before"] <= 0.9, results  # a start with room to improve
    assert results["mean_iou_after"] >= results["mean_iou_before"] + 0.02, results

"""Qwen3-VL (issue 28): what is specific to the family; the registry-driven tests (collators, chat encoding, packing,
modeling, real configs) cover the rest.

The box convention against the literal examples of Qwen's own material (docs/families.md#qwen3-vl), the foreign
conventions refused, the chat template (TRL's Qwen3-VL template and its training variant, no default system prompt),
video as transformers 5.23 lays it out (a text timestamp before each temporal patch), `mm_token_type_ids` from every
collator (the model refuses image inputs without it), the real-size processor's token counts at the configs'
settings, and a few SFT steps on the random tiny model that make the loss fall.
"""

import json

import pytest
import torch
from helpers import parse_config, run_recipe
from PIL import Image

from vlm_recipes.data.collators import PreferenceCollator, PromptCollator, VisionChatCollator
from vlm_recipes.data.packing import PaddingFreeCollator
from vlm_recipes.data.synthetic_video import write_video
from vlm_recipes.grounding.boxes import get_convention, parse_box
from vlm_recipes.models.chat_templates import training_chat_template
from vlm_recipes.models.families import QWEN3_VL, check_box_format, family_of, set_image_resolution
from vlm_recipes.paths import REPO_ROOT
from vlm_recipes.settings import DataArguments, VLMModelConfig
from vlm_recipes.tiny import vlm as tiny

pytestmark = pytest.mark.unit

CONFIGS = REPO_ROOT / "recipes" / "configs"


@pytest.fixture(scope="module")
def processor():
    return tiny.build_processor("qwen3_vl")


def vqa(image, answer="red"):
    return {
        "images": [image],
        "messages": [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What color is the shape?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ],
    }


# -- the box convention ---------------------------------------------------------------------------------------------
def test_qwen3_vl_boxes_are_json_bbox_2d_on_a_0_1000_grid_literally():
    """Qwen's process_bbox notebook (QwenLM/Qwen3-VL, qwen-vl-finetune/tools): a 640x428 image, box [146, 137, 615,
    415] -> [228, 320, 961, 970] (round(x / w * 1000)); the Qwen3-VL maintainers point to this conversion for
    Qwen3-VL training data. Written as Qwen's JSON `bbox_2d`."""
    convention = get_convention("qwen3-vl")
    answer, frame = convention.answer((146, 137, 615, 415), (640, 428), label="the man")
    assert frame == (1000, 1000)
    assert answer == '[{"bbox_2d": [228, 320, 961, 970], "label": "the man"}]'
    assert convention.is_answer(answer) and convention.is_answer(f"```json\n{answer}\n```")
    back = convention.read(answer, (640, 428), frame)
    assert back == pytest.approx((145.92, 136.96, 615.04, 415.16))
    # A box on the border reaches 1000 (the notebook clamps to [0, 1000], not [0, 1000) like Qwen2-VL's grid).
    assert convention.answer((0, 0, 640, 428), (640, 428))[0] == '[{"bbox_2d": [0, 0, 1000, 1000], "label": ""}]'


def test_qwen3_vl_boxes_do_not_depend_on_the_resize():
    """The maintainers: training coordinates are normalised to 1000, independent of the resolution
    (QwenLM/Qwen3-VL#2008). The same box gives the same answer whatever min_pixels / max_pixels are."""
    convention = get_convention("qwen3-vl")
    small, large = tiny.build_processor("qwen3_vl"), tiny.build_processor("qwen3_vl")
    set_image_resolution(small, min_pixels=32 * 32, max_pixels=64 * 64)
    set_image_resolution(large, min_pixels=512 * 512, max_pixels=1024 * 1024)
    box, size = (146, 137, 615, 415), (640, 428)
    assert convention.answer(box, size, small) == convention.answer(box, size, large) == convention.answer(box, size)
    # Qwen2.5-VL's convention on the same box moves with the resize: the two are not interchangeable.
    qwen25 = get_convention("qwen2.5-vl")
    assert qwen25.answer(box, size, small) != qwen25.answer(box, size, large)


def test_qwen3_vl_answers_from_qwens_material_are_read_as_written():
    """Qwen2.5-VL's README grounding output `{"bbox_2d": [135, 114, 1016, 672]}` (pixels: 1016 > 1000) is not a
    Qwen3-VL answer; a point (`point_2d`, the spatial-understanding cookbook's [925, 618]) is not a box."""
    convention = get_convention("qwen3-vl")
    assert not convention.is_answer('[{"bbox_2d": [135, 114, 1016, 672], "label": "cat"}]')
    assert convention.is_answer('[{"bbox_2d": [135, 114, 1000, 672], "label": "cat"}]')
    assert not convention.is_answer("<|box_start|>(135,114),(999,672)<|box_end|>")  # Qwen2-VL's syntax
    assert parse_box('[{"point_2d": [925, 618], "label": "point_1"}]') is None
    # Several objects: the first box is read, in the answer's frame, then scaled back to the image (480x640).
    two = '[{"bbox_2d": [100, 200, 300, 400], "label": "a"}, {"bbox_2d": [0, 0, 10, 10], "label": "b"}]'
    assert convention.is_answer(two)
    assert convention.read(two, (480, 640), (1000, 1000)) == pytest.approx((48.0, 128.0, 144.0, 256.0))


@pytest.mark.parametrize(
    "model", ["tiny:qwen3_vl", "Qwen/Qwen3-VL-2B-Instruct", "Qwen/Qwen3-VL-4B-Instruct", "Qwen/Qwen3-VL-8B-Instruct"]
)
def test_box_format_auto_is_qwen3_vl_and_older_qwen_conventions_are_refused(model):
    data = DataArguments(synthetic_task="grounding", box_format="auto")
    check_box_format(data, VLMModelConfig(model_name_or_path=model))
    assert data.box_format == "qwen3-vl"
    for foreign in ("qwen2-vl", "qwen2.5-vl"):
        with pytest.raises(
            ValueError, match=rf"box_format {foreign} is not the format .*Qwen3-VL.*use box_format qwen3-vl"
        ):
            check_box_format(DataArguments(synthetic_task="grounding", box_format=foreign), VLMModelConfig(model))
        allowed = DataArguments(synthetic_task="grounding", box_format=foreign, box_format_override=True)
        check_box_format(allowed, VLMModelConfig(model_name_or_path=model))
        assert allowed.box_format == foreign
    with pytest.raises(ValueError, match="is Qwen3-VL's own"):
        check_box_format(
            DataArguments(synthetic_task="grounding", box_format="qwen3-vl", box_format_override=True),
            VLMModelConfig(model_name_or_path=model),
        )


def test_the_grounding_config_trains_qwen3_vl_boxes_and_other_families_refuse_them():
    data = parse_config(CONFIGS / "qwen3-vl-2b-instruct" / "sft_grounding.yaml", "--use_cpu", "true")[0]
    assert data.box_format == "qwen3-vl"
    with pytest.raises(ValueError, match="box_format qwen3-vl is not the format tiny:qwen2_vl"):
        check_box_format(
            DataArguments(synthetic_task="grounding", box_format="qwen3-vl"),
            VLMModelConfig(model_name_or_path="tiny:qwen2_vl"),
        )


# -- the chat template ------------------------------------------------------------------------------------------------
def test_the_chat_template_is_trls_qwen3_vl_and_trains_answer_and_end_of_turn(processor, red_image):
    from trl.chat_template_utils import qwen3_vl_chat_template, qwen3_vl_training_chat_template

    assert processor.chat_template == qwen3_vl_chat_template
    assert training_chat_template(processor) == qwen3_vl_training_chat_template
    assert family_of(processor) is QWEN3_VL
    batch = VisionChatCollator(processor)([vqa(red_image)])
    text = processor.tokenizer.decode(batch["input_ids"][0])
    # No default system prompt (Qwen2-VL's template adds "You are a helpful assistant.").
    assert text == (
        "<|im_start|>user\n<|vision_start|>" + "<|image_pad|>" * 16 + "<|vision_end|>What color is the shape?"
        "<|im_end|>\n<|im_start|>assistant\nred<|im_end|>\n"
    )
    trained = batch["input_ids"][0][batch["labels"][0] != -100]
    assert processor.tokenizer.decode(trained) == "red<|im_end|>"


def test_reasoning_and_tool_call_strings_in_text_stay_text(processor, red_image):
    """`<think>` / `<tool_call>` are plain added tokens of the Qwen3 vocabularies (decode keeps them): in a question
    or an answer they are encoded as text, not as the added tokens."""
    tok = processor.tokenizer
    think = tok.convert_tokens_to_ids("<think>")
    answer = "<think>red</think> <tool_call>x</tool_call>"
    batch = VisionChatCollator(processor)([vqa(red_image, answer=answer)])
    assert think not in batch["input_ids"][0].tolist()
    trained = batch["input_ids"][0][batch["labels"][0] != -100]
    assert tok.decode(trained) == answer + "<|im_end|>"
    assert tok.decode(tok.encode("<think>"), skip_special_tokens=True) == "<think>"


# -- video ------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """12 frames at 4 fps (3 s), FFV1."""
    path = tmp_path_factory.mktemp("video") / "clip.mkv"
    write_video([Image.new("RGB", (32, 32), (10 * i, 100, 50)) for i in range(12)], path, fps=4)
    return str(path)


def video_row(clip):
    return {
        "videos": [clip],
        "messages": [
            {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Which way?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "left"}]},
        ],
    }


def test_video_is_laid_out_with_text_timestamps_as_transformers_5_23_does(processor, clip):
    """Per temporal patch of 2 frames, its mean time as text ("<0.1 seconds>": frames 0 and 1 at 4 fps) and a
    <|vision_start|>...<|vision_end|> block of that patch's tokens; transformers 5.23 keeps the template's outer
    <|vision_start|> / <|vision_end|> around the whole run. No video token, and no timestamp, is a label."""
    batch = VisionChatCollator(processor)([video_row(clip)])
    tok = processor.tokenizer
    t, h, w = batch["video_grid_thw"][0].tolist()
    assert t == 6  # 12 frames, 2 per temporal patch
    per_patch = h * w // 4
    blocks = "".join(
        f"<{time:.1f} seconds><|vision_start|>" + "<|video_pad|>" * per_patch + "<|vision_end|>"
        for time in (0.125, 0.625, 1.125, 1.625, 2.125, 2.625)
    )
    assert tok.decode(batch["input_ids"][0]) == (
        f"<|im_start|>user\n<|vision_start|>{blocks}<|vision_end|>Which way?<|im_end|>\n<|im_start|>assistant\n"
        "left<|im_end|>\n"
    )
    trained = batch["input_ids"][0][batch["labels"][0] != -100]
    assert tok.decode(trained) == "left<|im_end|>"
    # The video tokens are type 2 in mm_token_type_ids (the timestamps are text: type 0).
    video_id = tok.convert_tokens_to_ids("<|video_pad|>")
    assert torch.equal(batch["mm_token_type_ids"][0] == 2, batch["input_ids"][0] == video_id)


@pytest.mark.integration
def test_the_model_needs_mm_token_type_ids_and_every_collator_gives_it(processor, clip, red_image, blue_image):
    model = tiny.build_model("qwen3_vl", processor.tokenizer).eval()
    image_row, text_row = (
        vqa(red_image),
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]},
    )
    pair = {
        "images": [blue_image],
        "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Color?"}]}],
        "chosen": [{"role": "assistant", "content": [{"type": "text", "text": "blue"}]}],
        "rejected": [{"role": "assistant", "content": [{"type": "text", "text": "red"}]}],
    }
    batches = {
        "sft": VisionChatCollator(processor)([image_row, video_row(clip), text_row]),
        "prompts": PromptCollator(processor)([image_row, video_row(clip)]),
        "padding_free": PaddingFreeCollator(processor)([image_row, text_row, vqa(blue_image, "blue")]),
        "preference": PreferenceCollator(processor)([pair]),
    }
    for name, batch in batches.items():
        assert "mm_token_type_ids" in batch, name
        ids = batch.get("input_ids", batch.get("prompt_ids"))
        if ids is not None:
            assert batch["mm_token_type_ids"].shape == ids.shape, name
    sft = batches["sft"]
    with torch.no_grad():
        assert torch.isfinite(model(**sft).logits).all()
        with pytest.raises(ValueError, match="mm_token_type_ids"):
            model(**{k: v for k, v in sft.items() if k != "mm_token_type_ids"})
        assert torch.isfinite(model(**batches["padding_free"]).logits).all()


# -- real size --------------------------------------------------------------------------------------------------------
def test_real_size_processor_counts_image_tokens_at_the_configs_settings():
    """Qwen3-VL-2B's processor at the SFT configs' settings (64..512 tokens per image, one per 32x32 pixels): a
    640x427 photo is resized to 640x416 = 20x13 merged tokens = 260; a large one is capped at 512, a small one raised
    to 64; at the checkpoint's own defaults (no cap) the 640x427 photo costs the same."""
    from vlm_recipes.tiny import real_size

    processor = real_size.build_processor("qwen3-vl-2b")
    assert type(processor).__name__ == "Qwen3VLProcessor"

    def tokens(w, h):
        return int(processor.image_processor(images=[Image.new("RGB", (w, h))])["image_grid_thw"].prod() // 4)

    assert tokens(640, 427) == 260 and tokens(4000, 3000) <= 512 and tokens(64, 64) >= 64
    assert real_size.REAL_SIZE["qwen3-vl-2b"]["min_pixels"] == 65536


# -- learning ---------------------------------------------------------------------------------------------------------
@pytest.mark.integration
def test_a_few_sft_steps_on_the_random_tiny_model_make_the_loss_fall(tmp_path, monkeypatch):
    """The SFT recipe (tiny-qwen3-vl/sft_lora.yaml: LoRA on language model and vision tower, mergers in full) on the
    random tiny Qwen3-VL: the logged training loss falls. (Held-out accuracy >= 0.9 on the pre-trained base: slow.)"""
    from transformers import Trainer

    logged = []
    original = Trainer.log

    def recording(self, logs, *args, **kwargs):
        logged.append(dict(logs))
        return original(self, logs, *args, **kwargs)

    monkeypatch.setattr(Trainer, "log", recording)
    config = CONFIGS / "tiny-qwen3-vl" / "sft_lora.yaml"
    small = ["--model_name_or_path", "tiny:qwen3_vl-random", "--max_steps", "30", "--logging_steps", "5"]
    small += ["--synthetic_train_samples", "480", "--max_eval_samples", "8", "--report_to", "none"]
    small += ["--per_device_train_batch_size", "8", "--synthetic_task", "color", "--warmup_steps", "2"]
    results = run_recipe("sft", config, tmp_path / "run", *small)
    losses = [entry["loss"] for entry in logged if "loss" in entry]
    assert results["train_steps"] == 30 and len(losses) == 6
    # Measured (2026-12-07): 5.94 -> 4.97, 4.52, 4.29, 4.20, 4.11: a fall of 1.8; the bar is about half of it.
    assert losses[-1] <= losses[0] - 1.0 and max(losses[1:]) < losses[0], losses
    assert json.loads((tmp_path / "run" / "eval_results.json").read_text())["train_steps"] == 30

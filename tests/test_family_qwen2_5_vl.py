"""Qwen2.5-VL on its own architecture (issue 28): the tiny model is the real class with the real vision-tower pattern,
the family record owns the Qwen2.5-VL model type and checkpoints, its box format is the one Qwen documents (literal
example), and a video's M-RoPE time follows `second_per_grid_ts`.

What every family shares (chat encoding, masks, packing exactness and its control, real configs' two steps, the SFT
proof) is tested by the registry-driven tests (test_chat_encoding, test_collators, test_packing, test_sft_e2e, ...).
"""

import pytest
import torch
from PIL import Image

from vlm_recipes.data.collators import SampleError, VisionChatCollator
from vlm_recipes.grounding.boxes import get_convention
from vlm_recipes.models.families import (
    QWEN2_5_VL,
    QWEN2_VL,
    check_box_format,
    family_for_model_type,
    family_of,
    family_of_checkpoint,
    model_type_of,
    set_image_resolution,
)
from vlm_recipes.settings import DataArguments, VLMModelConfig
from vlm_recipes.tiny import vlm as tiny

pytestmark = pytest.mark.integration  # builds random tiny models in-process


@pytest.fixture(scope="module")
def built():
    processor = tiny.build_processor("qwen2_5_vl")
    return processor, tiny.build_model("qwen2_5_vl", processor.tokenizer).eval()


def test_the_tiny_model_is_the_real_architecture(built):
    processor, model = built
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert type(processor).__name__ == "Qwen2_5_VLProcessor" and type(processor.tokenizer).__name__ == "Qwen2Tokenizer"
    vision = model.config.vision_config
    # window attention in blocks 0 and 2, full attention at the fixed indices 1 and 3 (real: 7/15/23/31 of 32)
    assert vision.fullatt_block_indexes == [1, 3] and vision.depth == 4 and vision.window_size == 56
    assert model.model.visual.fullatt_block_indexes == [1, 3]
    block = model.model.visual.blocks[0]
    assert "RMSNorm" in type(block.norm1).__name__  # not Qwen2-VL's LayerNorm
    assert {"gate_proj", "up_proj", "down_proj"} <= {n for n, _ in block.mlp.named_children()}  # SwiGLU
    assert vision.hidden_act == "silu" and vision.tokens_per_second == 2
    assert model.config.text_config.rope_parameters["mrope_section"] == [4, 6, 6]


def test_windows_matter_in_the_window_blocks(built):
    """Block 0 attends within 2x2 windows of merged tokens: a change in one window leaves the other windows' outputs
    of block 0 alone (a full-attention block would move them all)."""
    processor, model = built
    red = Image.new("RGB", (112, 112), (200, 30, 30))
    changed = red.copy()
    changed.paste((30, 30, 200), (0, 0, 28, 28))  # top-left corner: one window only
    pixels = [processor.image_processor(images=[im], return_tensors="pt") for im in (red, changed)]
    visual = model.model.visual
    outs = []
    hook = visual.blocks[0].register_forward_hook(lambda module, args, out: outs.append(out))
    try:
        with torch.no_grad():
            for p in pixels:
                visual(p["pixel_values"], grid_thw=p["image_grid_thw"])
    finally:
        hook.remove()
    moved = (outs[0] - outs[1]).abs().amax(dim=-1)  # per patch (in the tower's window order)
    assert (moved > 1e-4).sum() == 16 and (moved <= 1e-6).sum() == 48  # one window of 4x4 patches of 64


def test_the_family_record_owns_qwen2_5_vl():
    assert family_for_model_type("qwen2_5_vl") is QWEN2_5_VL
    assert "qwen2_5_vl" not in QWEN2_VL.model_types and "Qwen2_5_VLProcessor" not in QWEN2_VL.processor_classes
    for hub_id in ("Qwen/Qwen2.5-VL-3B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct"):
        assert family_of_checkpoint(hub_id) is QWEN2_5_VL and model_type_of(hub_id) == "qwen2_5_vl"
    assert family_of_checkpoint("Qwen/Qwen2-VL-2B-Instruct") is QWEN2_VL
    assert model_type_of("tiny:qwen2_5_vl") == model_type_of("tiny:qwen2_5_vl-sft") == "qwen2_5_vl"
    assert QWEN2_5_VL.packing_exact and QWEN2_5_VL.box_format_for("qwen2_5_vl") == "qwen2.5-vl"
    assert QWEN2_VL.box_format_for("qwen2_5_vl") is None
    from vlm_recipes.training.vllm_prompts import family_of_name

    assert family_of_name("tiny:qwen2_5_vl-sft") is QWEN2_5_VL and family_of_name("tiny:qwen2_vl-sft") is QWEN2_VL


def test_processor_and_model_are_told_to_be_qwen2_5_vl(built):
    processor, model = built
    assert family_of(processor) is QWEN2_5_VL and family_of(model) is QWEN2_5_VL


@pytest.mark.parametrize("model", ["tiny:qwen2_5_vl", "Qwen/Qwen2.5-VL-7B-Instruct"])
def test_box_format_auto_is_qwen2_5_vl_and_qwen2_vl_is_refused(model):
    data = DataArguments(synthetic_task="grounding", box_format="auto")
    check_box_format(data, VLMModelConfig(model_name_or_path=model))
    assert data.box_format == "qwen2.5-vl"
    with pytest.raises(ValueError, match="box_format qwen2-vl is not the format .*use box_format qwen2.5-vl"):
        check_box_format(
            DataArguments(synthetic_task="grounding", box_format="qwen2-vl"), VLMModelConfig(model_name_or_path=model)
        )


def test_box_answer_matches_qwens_literal_example(built):
    """Qwen's process_bbox notebook (QwenLM/Qwen3-VL qwen-vl-finetune/tools/process_bbox.ipynb): a 640x428 image,
    box [146, 137, 615, 415], smart_resize(factor 28, min_pixels 56*56, max_pixels 14*14*4*1280) -> 644x420, printed
    [147, 134, 619, 407]: absolute pixels of the resized image, JSON bbox_2d."""
    processor, _ = built
    set_image_resolution(processor, min_pixels=56 * 56, max_pixels=14 * 14 * 4 * 1280)
    try:
        text, frame = get_convention("qwen2.5-vl").answer((146, 137, 615, 415), (640, 428), processor, label="cat")
    finally:
        set_image_resolution(processor, min_pixels=112 * 112, max_pixels=112 * 112)
    assert frame == (644, 420)
    assert text == '[{"bbox_2d": [147, 134, 619, 407], "label": "cat"}]'


def video_row(fps):
    frames = [Image.new("RGB", (32, 32), (20 * i, 100, 50)) for i in range(8)]
    messages = [
        {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Which way?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "left"}]},
    ]
    return {"videos": [frames], "messages": messages}, {"max_frames": 8, "frame_list_fps": fps}


@pytest.mark.parametrize("fps, step", [(1.0, 4), (2.0, 2), (4.0, 1)])
def test_video_time_in_m_rope_follows_second_per_grid_ts(built, fps, step):
    """8 frames at `fps` -> 4 temporal patches of 2 frames, second_per_grid_ts = 2 / fps; the model's temporal
    positions of the video step by tokens_per_second (2) x second_per_grid_ts: absolute time, not the patch index."""
    processor, model = built
    row, video = video_row(fps)
    batch = VisionChatCollator(processor, video=video)([row])
    assert batch["second_per_grid_ts"].tolist() == [2 / fps]
    positions, _ = model.model.get_rope_index(
        batch["input_ids"],
        batch["mm_token_type_ids"],
        video_grid_thw=batch["video_grid_thw"],
        second_per_grid_ts=batch["second_per_grid_ts"],
    )
    is_video = batch["mm_token_type_ids"][0] == 2
    temporal = positions[0, 0][is_video]
    start = int(positions[0, 0][is_video.nonzero()[0, 0] - 1]) + 1
    assert sorted(set((temporal - start).tolist())) == [step * t for t in range(4)]
    with torch.no_grad():
        assert torch.isfinite(model(**batch).loss)


def test_packing_takes_a_video_row_given_the_models_time_scale(built):
    """A padding-free batch with a video needs the model's tokens_per_second (the training run sets it from the loaded
    model's config: `Family.video_time_scale`); without it the row is refused, naming it. Qwen2-VL's videos stay
    refused (tests/test_packing.py proves Qwen2.5-VL's exact)."""
    from vlm_recipes.data.packing import PaddingFreeCollator

    processor, model = built
    row, video = video_row(2.0)
    with pytest.raises(SampleError, match=r"batch item 0.* holds a video: .*need the model's video time scale"):
        PaddingFreeCollator(processor, video=video)([row])
    collator = PaddingFreeCollator(processor, video=video)
    collator.video_time_scale = QWEN2_5_VL.video_time_scale(model.config)
    assert collator.video_time_scale == 2
    batch = collator([row])
    assert batch["position_ids"].shape[:2] == (4, 1) and batch["second_per_grid_ts"].tolist() == [1.0]
    qwen2_vl = tiny.build_processor("qwen2_vl")
    with pytest.raises(SampleError, match="packing / padding_free do not take videos for Qwen2-VL"):
        PaddingFreeCollator(qwen2_vl, video=video)([row])


def test_a_family_can_shorten_its_pre_training_and_the_cache_key_follows(monkeypatch):
    """`"pretrain": {...}` in a family's spec overrides PRETRAIN for that family only (tiny/vlm.py
    `training_settings`), and names another cached base; the other families keep PRETRAIN and their cache names."""
    before = {name: tiny.checkpoint_dir(name) for name in ("tiny:qwen2_5_vl", "tiny:qwen2_vl")}
    assert tiny.training_settings("qwen2_5_vl", "pretrain") == tiny.PRETRAIN
    monkeypatch.setitem(tiny.SPECS, "qwen2_5_vl", {**tiny.SPECS["qwen2_5_vl"], "pretrain": {"steps": 10}})
    assert tiny.training_settings("qwen2_5_vl", "pretrain") == {**tiny.PRETRAIN, "steps": 10}
    assert tiny.training_settings("qwen2_vl", "pretrain") == tiny.PRETRAIN
    assert tiny.checkpoint_dir("tiny:qwen2_5_vl") != before["tiny:qwen2_5_vl"]
    assert tiny.checkpoint_dir("tiny:qwen2_vl") == before["tiny:qwen2_vl"]

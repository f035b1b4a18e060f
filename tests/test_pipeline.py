"""The split image pipeline (vlm_recipes/data/pipeline.py) gives the plain collator's batch.

Real processor classes with the real image settings (vlm_recipes.tiny.real_size: processors only, no model), real
photos cut to a spread of sizes, a text-only row and a two-image row in the same batch.
"""

import json
from types import SimpleNamespace

import pytest
import torch
from PIL import Image
from sklearn.datasets import load_sample_images

from vlm_recipes.data.collators import VisionChatCollator
from vlm_recipes.data.pipeline import (
    DEFERRED_KEY,
    DeviceImageStage,
    ImageStage,
    finish_images,
)
from vlm_recipes.models.families import set_image_resolution
from vlm_recipes.settings import DataArguments
from vlm_recipes.tiny import vlm as tiny
from vlm_recipes.tiny.real_size import build_processor

pytestmark = pytest.mark.unit

SIZES = [(640, 427), (427, 640), (640, 200), (1024, 768), (300, 200)]  # width x height


@pytest.fixture(scope="module")
def photos():
    out = []
    for k, (width, height) in enumerate(SIZES):
        photo = Image.fromarray(load_sample_images().images[k % 2])
        out.append(photo.crop((k * 10, 0, k * 10 + 400, 300)).resize((width, height), Image.BICUBIC))
    return out


def _row(images, question="What is in the picture?", answer="A photo."):
    parts = [{"type": "image"} for _ in images] + [{"type": "text", "text": question}]
    return {
        "images": images,
        "messages": [
            {"role": "user", "content": parts},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ],
    }


def _rows(photos):
    rows = [_row([p]) for p in photos[:-1]]
    rows.append(_row([], "Say hi.", "Hi."))  # text-only row: no frames, all padding
    rows.append(_row([photos[-1], photos[0]], "Compare them.", "Different."))  # two images in one row
    return rows


def _assert_same_batch(expected: dict, got: dict):
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        assert got[key].shape == value.shape, key
        assert got[key].dtype == value.dtype, key
        # Bit for bit: the same resize calls on the CPU, the processor's own normalize constants and op.
        assert torch.equal(got[key], value), f"{key}: max diff {(got[key].double() - value.double()).abs().max()}"


@pytest.mark.parametrize(
    "name,splitting",
    [("smolvlm-256m", True), ("smolvlm-256m", False), ("qwen2-vl-2b", None), ("qwen3-vl-2b", None)],
    ids=str,
)
def test_split_pipeline_gives_the_processors_batch(photos, name, splitting):
    processor = build_processor(name)
    if splitting is False:
        set_image_resolution(processor, image_splitting=False)
    rows = _rows(photos)
    expected = VisionChatCollator(processor)(rows)

    worker = VisionChatCollator(processor, image_processing="worker")
    batch = worker(rows)
    _assert_same_batch(expected, batch)
    # Dense tensors only: the DataLoader pins batches for a GPU, which a broadcast view cannot be copied into.
    assert all(t.is_contiguous() for t in batch.values())

    device = VisionChatCollator(processor, image_processing="device")
    deferred = device(rows)
    assert "pixel_values" not in deferred
    images = deferred[DEFERRED_KEY]["images"]
    assert all(t.dtype == torch.uint8 for image in images for t in image.values())  # what crosses from the workers
    _assert_same_batch(expected, finish_images(deferred, device.image_stage))
    # The channels-last resize the worker stage uses gives what the processor's layout gives, bit for bit.
    as_processor = ImageStage(processor, channels_last=False)
    for photo in photos:
        fast, slow = device.image_stage.prepare(photo), as_processor.prepare(photo)
        assert fast[1] == slow[1] and fast[0].keys() == slow[0].keys()
        assert all(torch.equal(fast[0][k], slow[0][k]) for k in fast[0])


def test_device_stage_finishes_batches_in_the_trainers_input_preparation(photos):
    processor = tiny.build_processor("smolvlm")
    set_image_resolution(processor, longest_edge=128, image_splitting=True)
    rows = [_row([p]) for p in photos[:3]]
    expected = VisionChatCollator(processor)(rows)

    class Base:
        def _prepare_inputs(self, inputs):
            return inputs

    class Trainer(DeviceImageStage, Base):
        def __init__(self, collator):
            self.data_collator, self.args = collator, SimpleNamespace(device=torch.device("cpu"))

    collator = VisionChatCollator(processor, image_processing="device")
    _assert_same_batch(expected, Trainer(collator)._prepare_inputs(collator(rows)))
    # A text-only batch has nothing deferred and passes through unchanged.
    text_only = collator([_row([], "Say hi.", "Hi.")])
    assert Trainer(collator)._prepare_inputs(dict(text_only)).keys() == text_only.keys()


def test_unimplemented_settings_are_refused():
    processor = tiny.build_processor("qwen2_vl")
    processor.image_processor.do_resize = False
    with pytest.raises(ValueError, match="do_resize=True only"):
        ImageStage(processor)
    with pytest.raises(ValueError, match="image_processing must be one of"):
        VisionChatCollator(tiny.build_processor("qwen2_vl"), image_processing="gpu")
    with pytest.raises(ValueError, match="image_processing must be one of 'processor', 'worker', 'device'"):
        DataArguments(image_processing="gpu")


@pytest.mark.learning
def test_sft_with_device_image_processing_trains_on_the_same_batches(tmp_path):
    """The tiny SFT recipe, a few steps: image_processing device (one dataloader worker) gives the losses of the
    processor's path, step for step."""
    from helpers import run_sft

    common = ["--max_steps", "3", "--max_eval_samples", "2", "--logging_steps", "1", "--preflight", "false"]
    common += ["--save_strategy", "steps", "--save_steps", "3"]  # for trainer_state.json: the loss of every step
    losses = {}
    for mode, workers in (("processor", "0"), ("device", "1")):
        out = tmp_path / mode
        run_sft("smolvlm", out, *common, "--image_processing", mode, "--dataloader_num_workers", workers)
        state = json.loads(next(out.glob("checkpoint-*/trainer_state.json")).read_text())
        losses[mode] = [e["loss"] for e in state["log_history"] if "loss" in e]
    assert len(losses["processor"]) == 3
    assert losses["device"] == losses["processor"]


def test_grpo_refuses_split_image_processing(tmp_path):
    from helpers import run_recipe

    from vlm_recipes.paths import REPO_ROOT

    config = REPO_ROOT / "recipes/configs/tiny-qwen2-vl/grpo.yaml"
    with pytest.raises(ValueError, match="image_processing: device needs our collator"):
        run_recipe("grpo", config, tmp_path / "run", "--image_processing", "device")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", ["smolvlm-256m", "qwen2-vl-2b", "qwen3-vl-2b"])
def test_worker_image_processing_gives_the_padding_free_batch(photos, name):
    from vlm_recipes.data.packing import PaddingFreeCollator

    processor, rows = build_processor(name), _rows(photos)
    expected = PaddingFreeCollator(processor)(rows)
    got = PaddingFreeCollator(processor, image_processing="worker")(rows)
    tensors = [{k: v for k, v in b.items() if torch.is_tensor(v)} for b in (expected, got)]
    _assert_same_batch(*tensors)
    assert {k: v for k, v in got.items() if k not in tensors[1]} == {
        k: v for k, v in expected.items() if k not in tensors[0]
    }


@pytest.mark.parametrize("flag", ["--padding_free", "--packing"])
def test_device_image_processing_is_refused_with_padding_free_batches(tmp_path, flag):
    from helpers import run_recipe

    from vlm_recipes.paths import REPO_ROOT

    config = REPO_ROOT / "recipes/configs/tiny-smolvlm/sft_lora.yaml"
    with pytest.raises(ValueError, match=rf"image_processing: device is not implemented with {flag[2:]}"):
        run_recipe(
            "sft", config, tmp_path / "run", flag, "true", "--max_length", "512", "--image_processing", "device"
        )
    assert not (tmp_path / "run").exists()

"""Merging a LoRA adapter keeps everything it trained: the merged model's logits equal base + adapter's."""

import json

import pytest
import torch
from helpers import run_recipe
from safetensors.torch import load_file

from vlm_recipes.data import synthetic
from vlm_recipes.data.collators import VisionChatCollator
from vlm_recipes.models.families import family_of
from vlm_recipes.models.merge import MergeArguments, load_adapter_model, merge_adapter
from vlm_recipes.paths import REPO_ROOT

pytestmark = pytest.mark.unit

CONFIGS = {
    "smolvlm": REPO_ROOT / "recipes/configs/tiny-smolvlm/sft_lora.yaml",
    "qwen2_vl": REPO_ROOT / "recipes/configs/tiny-qwen2-vl/sft_lora.yaml",
    "llava": REPO_ROOT / "recipes/configs/tiny-llava/sft_lora.yaml",
    "llava_onevision": REPO_ROOT / "recipes/configs/tiny-llava-onevision/sft_lora.yaml",
    "qwen2_5_vl": REPO_ROOT / "recipes/configs/tiny-qwen2.5-vl/sft_lora.yaml",
}
# The LLaVA families on their random models (their pre-trained bases are built only by slow tests); LLaVA-OneVision
# trained at a capped anyres grid: the merged model must keep the grid its processor was saved with.
OVERRIDES = {
    "llava": ["--model_name_or_path", "tiny:llava-random"],
    "llava_onevision": ["--model_name_or_path", "tiny:llava_onevision-random", "--max_image_tiles", "2"],
    "qwen2_5_vl": ["--model_name_or_path", "tiny:qwen2_5_vl-random"],
}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def merged(request, tmp_path_factory):
    base = tmp_path_factory.mktemp(request.param)
    adapter = base / "adapter"
    extra = OVERRIDES.get(request.param, [])
    run_recipe("sft", CONFIGS[request.param], adapter, "--max_steps", "15", "--max_eval_samples", "4", *extra)
    out = merge_adapter(MergeArguments(adapter=str(adapter), output_dir=str(base / "merged")))
    return adapter, out


def batch_for(processor):
    rows = synthetic.make_dataset("color_shape", num_samples=4, seed=99)
    return VisionChatCollator(processor)([rows[i] for i in range(len(rows))])


@pytest.mark.learning
def test_merged_logits_equal_adapter_logits(merged):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    adapter, out = merged
    with_adapter, _ = load_adapter_model(str(adapter))
    merged_model = AutoModelForImageTextToText.from_pretrained(out, use_safetensors=True)
    processor = AutoProcessor.from_pretrained(out)
    shared = family_of(merged_model).model_settings  # LLaVA-OneVision: the anyres grid the adapter was trained at
    for key, value in (shared(processor) if shared else {}).items():
        assert getattr(merged_model.config, key) == value, key
    batch = batch_for(processor)
    batch.pop("labels")
    with torch.no_grad():
        expected = with_adapter.eval()(**batch).logits
        got = merged_model.eval()(**batch).logits
        with with_adapter.disable_adapter():  # the base alone: the adapter must matter for this test to mean anything
            base = with_adapter(**batch).logits
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()
    assert (base - expected).abs().max() > 1e-2


@pytest.mark.learning
def test_modules_trained_in_full_are_kept(merged):
    adapter, out = merged
    info = json.loads((out / "merge_info.json").read_text())
    assert info["modules_to_save"] and not (out / "adapter_config.json").exists()
    trained = {k: v for k, v in load_file(adapter / "adapter_model.safetensors").items() if "lora_" not in k}
    merged_weights = load_file(out / "model.safetensors")
    assert trained, "the adapter saved no fully trained module"
    for name, tensor in trained.items():  # e.g. base_model.model.model.connector...weight
        suffix = name.split("base_model.model.", 1)[1]
        match = [k for k in merged_weights if k.endswith(suffix.split(".", 1)[1])]
        assert match and any(torch.equal(merged_weights[k], tensor) for k in match), name
    assert not [k for k in merged_weights if "lora_" in k or "modules_to_save" in k]


def test_merge_refuses_a_folder_without_an_adapter(tmp_path):
    (tmp_path / "not_adapter").mkdir()
    with pytest.raises(ValueError, match="adapter_config.json"):
        merge_adapter(MergeArguments(adapter=str(tmp_path / "not_adapter"), output_dir=str(tmp_path / "out")))
    assert not (tmp_path / "out").exists()


@pytest.mark.learning
def test_merge_refuses_a_non_empty_output_dir(merged, tmp_path):
    adapter, _ = merged
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        merge_adapter(MergeArguments(adapter=str(adapter), output_dir=str(tmp_path / "out")))
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"

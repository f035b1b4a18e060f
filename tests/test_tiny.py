"""Tiny checkpoints build offline and load by path exactly like a real checkpoint."""

import json

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from vlm_recipes import synthetic, tiny
from vlm_recipes.collators import VisionChatCollator


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VLM_RECIPES_CACHE", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("family", ["smolvlm", "qwen2_vl"])
def test_build_save_load_round_trip(cache, family):
    path = tiny.build(f"tiny:{family}-random")
    assert path.is_relative_to(cache)
    files = {p.name for p in path.iterdir()}
    assert "model.safetensors" in files and not any(f.endswith((".bin", ".pt")) for f in files)
    assert json.loads((path / "tiny_build.json").read_text())["family"] == family

    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    assert type(processor).__name__ == {"smolvlm": "SmolVLMProcessor", "qwen2_vl": "Qwen2VLProcessor"}[family]
    assert processor.chat_template == tiny.build_processor(family).chat_template

    # A model built again in memory from the same seed is the saved one, output for output.
    fresh_processor = tiny.build_processor(family)
    fresh = tiny.build_model(family, fresh_processor.tokenizer).eval()
    batch = VisionChatCollator(processor)([synthetic.make_dataset("color", 2, seed=3)[i] for i in range(2)])
    fresh_batch = VisionChatCollator(fresh_processor)(
        [synthetic.make_dataset("color", 2, seed=3)[i] for i in range(2)]
    )
    assert torch.equal(batch["input_ids"], fresh_batch["input_ids"])
    with torch.no_grad():
        loaded_out, fresh_out = model(**batch), fresh(**fresh_batch)
    assert torch.allclose(loaded_out.logits, fresh_out.logits, atol=1e-6)
    assert loaded_out.loss.item() == pytest.approx(fresh_out.loss.item(), abs=1e-6)


def test_cached_build_is_reused_and_force_rebuilds(cache):
    path = tiny.build("tiny:smolvlm-random")
    stamp = (path / "tiny_build.json").stat().st_mtime_ns
    assert tiny.build("tiny:smolvlm-random") == path
    assert (path / "tiny_build.json").stat().st_mtime_ns == stamp
    tiny.build("tiny:smolvlm-random", force=True)
    assert (path / "tiny_build.json").stat().st_mtime_ns != stamp
    assert not [p for p in path.parent.iterdir() if ".tmp-" in p.name]


def test_tokenizer_has_family_special_tokens_as_single_tokens():
    for family, spec in tiny.FAMILY_SPECIAL_TOKENS.items():
        tok = tiny.build_tokenizer(family)
        for special in [t for t in (spec["bos"], spec["eos"], spec["pad"]) if t] + spec["extra"]:
            assert len(tok.encode(special, add_special_tokens=False)) == 1, (family, special)
        text = "What color is the shape? ünïcödé 123"
        assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


def test_unknown_tiny_name_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown tiny model 'tiny:llava'.*tiny:smolvlm"):
        tiny.resolve("tiny:llava")
    assert tiny.resolve("HuggingFaceTB/SmolVLM-256M-Instruct") == "HuggingFaceTB/SmolVLM-256M-Instruct"

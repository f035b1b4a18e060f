"""Tiny checkpoints build offline and load by path exactly like a real checkpoint."""

import json
import os
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from vlm_recipes.data import synthetic
from vlm_recipes.data.collators import VisionChatCollator
from vlm_recipes.paths import REPO_ROOT
from vlm_recipes.tiny import resolve
from vlm_recipes.tiny import vlm as tiny
from vlm_recipes.tiny.common import BUILD_THREADS, SEED_ENV


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VLM_RECIPES_CACHE", str(tmp_path))
    return tmp_path


PROCESSORS = {
    "smolvlm": "SmolVLMProcessor",
    "qwen2_vl": "Qwen2VLProcessor",
    "llava": "LlavaProcessor",
    "llava_onevision": "LlavaOnevisionProcessor",
    "llava_next": "LlavaNextProcessor",
}


@pytest.mark.parametrize("family", sorted(PROCESSORS))
def test_build_save_load_round_trip(cache, family):
    path = tiny.build(f"tiny:{family}-random")
    assert path.is_relative_to(cache)
    files = {p.name for p in path.iterdir()}
    assert "model.safetensors" in files and not any(f.endswith((".bin", ".pt")) for f in files)
    assert json.loads((path / "tiny_build.json").read_text())["family"] == family

    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    assert type(processor).__name__ == PROCESSORS[family]
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
    with pytest.raises(ValueError, match="Unknown tiny model 'tiny:blip2'.*tiny:smolvlm.*tiny:llava_onevision-sft"):
        resolve("tiny:blip2")
    assert resolve("HuggingFaceTB/SmolVLM-256M-Instruct") == "HuggingFaceTB/SmolVLM-256M-Instruct"


# Builds a short version of the real recipe (fewer steps: its own cache entry) in a process started with the thread
# count given, and prints the sha256 of each written model.safetensors; then the same training outside the build's
# pinned settings, at the process's own thread count, to show which knob the build has to fix.
_BUILD_SCRIPT = """
import hashlib, json, sys, torch
torch.set_num_threads(int(sys.argv[1]))
from vlm_recipes.tiny import vlm as tiny
tiny.PRETRAIN["steps"], tiny.WARMUP["steps"] = 12, 3
digests = {}
for name in ("tiny:smolvlm-sft", "tiny:qwen2_vl"):
    digests[name] = hashlib.sha256((tiny.build(name) / "model.safetensors").read_bytes()).hexdigest()
processor = tiny.build_processor("smolvlm")
model = tiny.build_model("smolvlm", processor.tokenizer)
tiny.pretrain(model, processor, **tiny.PRETRAIN)
weights = b"".join(t.detach().numpy().tobytes() for t in model.state_dict().values())
digests["unpinned"] = hashlib.sha256(weights).hexdigest()
print(json.dumps(digests))
"""


def test_build_writes_the_same_weights_whatever_the_thread_count_of_the_process(tmp_path):
    """Issue 11: whichever process builds a tiny base first (a one-thread test subprocess, `accelerate launch`,
    pytest), the cache gets the same weights."""
    digests = []
    for threads in (1, 2):  # one after the other: two pinned 2-thread builds at once oversubscribe 2 cores badly
        env = {
            **os.environ,
            "OMP_NUM_THREADS": str(threads),
            "VLM_RECIPES_CACHE": str(tmp_path / f"threads{threads}"),
            "PYTHONPATH": str(REPO_ROOT),
        }
        cmd = [sys.executable, "-c", _BUILD_SCRIPT, str(threads)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        digests.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    one, two = digests
    # The knob: the same training at 1 and at 2 threads gives other weights (reduction order of the CPU kernels) ...
    assert one.pop("unpinned") != two.pop("unpinned")
    # ... so the build pins it, and both processes cache identical checkpoints.
    assert one == two
    info = json.loads(next((tmp_path / "threads1" / "tiny").glob("qwen2_vl-*/tiny_build.json")).read_text())
    assert info["threads"] == BUILD_THREADS and info["deterministic_algorithms"] is True
    assert {"torch", "transformers", "cpu_capability", "seed", "machine"} <= set(info)


def test_build_seed_names_another_base(monkeypatch):
    default = tiny.checkpoint_dir("tiny:smolvlm")
    monkeypatch.setenv(SEED_ENV, "3")
    seeded = tiny.checkpoint_dir("tiny:smolvlm-sft")
    assert seeded != default and seeded.name.startswith("smolvlm-sft-seed3-")
    monkeypatch.setenv(SEED_ENV, "three")
    with pytest.raises(ValueError, match="VLM_RECIPES_TINY_SEED must be an integer"):
        tiny.checkpoint_dir("tiny:smolvlm")

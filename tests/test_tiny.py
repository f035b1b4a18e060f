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

pytestmark = pytest.mark.integration


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
    "qwen2_5_vl": "Qwen2_5_VLProcessor",
    "qwen3_vl": "Qwen3VLProcessor",
    "qwen3_5": "Qwen3VLProcessor",  # Qwen3.5 has no processor of its own
    "gemma3": "Gemma3Processor",
    "gemma4": "Gemma4Processor",
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


@pytest.mark.unit
def test_tokenizer_has_family_special_tokens_as_single_tokens():
    for family, spec in tiny.FAMILY_SPECIAL_TOKENS.items():
        tok = tiny.build_tokenizer(family)
        for special in [t for t in (spec["bos"], spec["eos"], spec["pad"]) if t] + spec["extra"]:
            assert len(tok.encode(special, add_special_tokens=False)) == 1, (family, special)
        text = "What color is the shape? ünïcödé 123"
        assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


@pytest.mark.learning
def test_unknown_tiny_name_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown tiny model 'tiny:blip2'.*tiny:smolvlm.*tiny:llava_onevision-sft"):
        resolve("tiny:blip2")
    assert resolve("HuggingFaceTB/SmolVLM-256M-Instruct") == "HuggingFaceTB/SmolVLM-256M-Instruct"


# Builds a short version of the real recipes (fewer steps: their own cache entries) in a process started with the
# numerics given, and prints each checkpoint's folder name and the sha256 of its model.safetensors; then the same
# training in the process itself, outside the build's pinned child, to show that these numerics change the weights.
_BUILD_SCRIPT = """
import hashlib, json, torch
from vlm_recipes.tiny import blip, vlm as tiny
tiny.PRETRAIN["steps"], tiny.WARMUP["steps"], blip.PRETRAIN["steps"] = 12, 3, 4
digests = {}
for build, name in ((tiny.build, "tiny:smolvlm-sft"), (tiny.build, "tiny:qwen2_vl"), (blip.build, "tiny:blip")):
    path = build(name)
    digests[name] = [path.name, hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()]
processor = tiny.build_processor("smolvlm")
model = tiny.build_model("smolvlm", processor.tokenizer)
tiny.pretrain(model, processor, **tiny.PRETRAIN)
weights = b"".join(t.detach().numpy().tobytes() for t in model.state_dict().values())
digests["unpinned"] = hashlib.sha256(weights).hexdigest()
print(json.dumps(digests))
"""
# Three machines on one: as is, what an AVX2-only CPU picks (at 2 threads), MKL's CPU-independent path (issue 26).
NUMERICS = {
    "as_is": {"OMP_NUM_THREADS": "1"},
    "avx2_two_threads": {"OMP_NUM_THREADS": "2", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "mkl_compatible": {"OMP_NUM_THREADS": "1", "MKL_CBWR": "COMPATIBLE"},
}


# Slow (about 2.5 minutes: three short builds in subprocesses): the default run trains on the shipped bases and builds
# none, so this check of the builder runs with the slow tier and when the bases are re-shipped.
@pytest.mark.slow
@pytest.mark.skipif(not torch.cpu._is_avx2_supported(), reason="the shared build pins ATen's AVX2 kernels")
def test_build_writes_the_same_weights_whatever_the_numerics_of_the_process(tmp_path):
    """Issues 11 and 26: whichever process builds a tiny base first (a one-thread test subprocess, `accelerate
    launch`, pytest) and whatever CPU numerics it runs with, the cache gets the same weights under the same name."""
    digests = []
    for name, numerics in NUMERICS.items():  # one after the other: two builds at once oversubscribe 2 cores badly
        env = {**os.environ, **numerics, "VLM_RECIPES_CACHE": str(tmp_path / name), "PYTHONPATH": str(REPO_ROOT)}
        proc = subprocess.run(
            [sys.executable, "-c", _BUILD_SCRIPT], env=env, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        digests.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    # The knobs: the same training under each numerics gives other weights (kernels, code paths, reduction order) ...
    assert len({d.pop("unpinned") for d in digests}) == len(NUMERICS)
    # ... so the build pins them, and every process caches identical checkpoints under one name.
    assert digests[0] == digests[1] == digests[2]
    info = json.loads(next((tmp_path / "avx2_two_threads" / "tiny").glob("qwen2_vl-*/tiny_build.json")).read_text())
    assert info["threads"] == BUILD_THREADS and info["deterministic_algorithms"] is True
    assert info["numerics"] == {
        "machine": "x86_64",
        "mkl_cbwr": "AVX2",
        "aten_cpu_capability": "AVX2",
        "mkldnn": False,
    }
    assert info["ran_with"]["cpu_capability"] == "AVX2" and info["ran_with"]["mkldnn_enabled"] is False
    assert {"torch", "transformers", "seed"} <= set(info)


def test_tokenizers_are_the_same_in_every_process():
    """A tokenizer trained with hash-map tie-breaking would give another vocabulary, so another model, per build."""
    script = (
        "import hashlib; from vlm_recipes.tiny import blip, clip, vlm; "
        "toks = [vlm.build_tokenizer(f) for f in vlm.SPECS] + [clip.build_tokenizer(), blip.build_tokenizer()]; "
        "print(hashlib.sha256(repr([sorted(t.get_vocab().items()) for t in toks]).encode()).hexdigest())"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr[-2000:]
    assert runs[0].stdout.split()[-1] == runs[1].stdout.split()[-1]


@pytest.mark.unit
def test_build_seed_names_another_base(monkeypatch):
    default = tiny.checkpoint_dir("tiny:smolvlm")
    monkeypatch.setenv(SEED_ENV, "3")
    seeded = tiny.checkpoint_dir("tiny:smolvlm-sft")
    assert seeded != default and seeded.name.startswith("smolvlm-sft-seed3-")
    monkeypatch.setenv(SEED_ENV, "three")
    with pytest.raises(ValueError, match="VLM_RECIPES_TINY_SEED must be an integer"):
        tiny.checkpoint_dir("tiny:smolvlm")


# -- shipped bases (vlm_recipes/tiny/common.py, "Shipped bases") ------------------------------------------------------


@pytest.mark.unit
def test_the_shipped_bases_are_the_current_builds_of_the_default_runs_bases(monkeypatch):
    """tiny_bases/ holds exactly the current cache folder of each of SHIPPED_BASES, safetensors and text only: a build
    recipe, library pin or numerics change renames the folder, and this fails until the bases are shipped again."""
    from vlm_recipes.tiny import checkpoint_dir
    from vlm_recipes.tiny.common import SHIPPED_BASES, shipped_root

    monkeypatch.delenv(SEED_ENV, raising=False)
    expected = {checkpoint_dir(name).name for name in SHIPPED_BASES}
    shipped = {p.name for p in shipped_root().iterdir() if p.is_dir()}
    fix = "rebuild and ship them: python -m vlm_recipes.tiny ship (then commit tiny_bases/)"
    assert not expected - shipped, f"not shipped: {sorted(expected - shipped)}; {fix}"
    assert not shipped - expected, f"stale shipped bases: {sorted(shipped - expected)}; {fix}"
    for folder in expected:
        files = {p.name for p in (shipped_root() / folder).iterdir()}
        assert {"model.safetensors", "config.json", "tiny_build.json"} <= files, folder
        assert all(f.endswith((".safetensors", ".json", ".jinja", ".txt")) for f in files), (folder, files)


@pytest.mark.learning  # resolves pre-trained names (the tier guard counts that as learning); nothing is trained
def test_a_shipped_base_is_copied_into_the_cache_instead_of_built(tmp_path, monkeypatch):
    from vlm_recipes.tiny import common, ship

    monkeypatch.delenv(SEED_ENV, raising=False)
    monkeypatch.setenv("VLM_RECIPES_CACHE", str(tmp_path / "cache"))
    shipped = tmp_path / "shipped"
    monkeypatch.setattr(common, "shipped_root", lambda: shipped)
    builds = []
    monkeypatch.setattr(common, "_build_in_child", lambda module, name, *rest: builds.append(name) or tmp_path)
    target = tiny.checkpoint_dir("tiny:smolvlm")
    (shipped / target.name).mkdir(parents=True)
    (shipped / target.name / "tiny_build.json").write_text('{"name": "tiny:smolvlm"}')
    (shipped / target.name / "model.safetensors").write_bytes(b"the shipped weights")

    assert resolve("tiny:smolvlm") == str(target) and builds == []
    assert (target / "model.safetensors").read_bytes() == b"the shipped weights"
    assert not [p for p in target.parent.iterdir() if ".tmp-" in p.name]
    resolve("tiny:smolvlm-sft")  # not shipped: built
    assert builds == ["tiny:smolvlm-sft"]
    monkeypatch.setenv(common.SHIPPED_ENV, "0")
    tiny.build("tiny:smolvlm", force=True)  # forced, or shipped bases switched off: built
    (target / "model.safetensors").unlink()
    target.rename(tmp_path / "moved")
    resolve("tiny:smolvlm")
    assert builds == ["tiny:smolvlm-sft", "tiny:smolvlm", "tiny:smolvlm"]

    # `ship` replaces an earlier key's folder of the same name and leaves the other names' folders alone.
    monkeypatch.delenv(common.SHIPPED_ENV)
    (tmp_path / "moved").rename(target)
    (target / "model.safetensors").write_bytes(b"the shipped weights")
    root = tmp_path / "repo_bases"
    for stale in ("smolvlm-0123456789ab", "smolvlm-sft-0123456789ab"):
        (root / stale).mkdir(parents=True)
    assert ship(["tiny:smolvlm"], root=root) == [root / target.name]
    assert sorted(p.name for p in root.iterdir()) == sorted([target.name, "smolvlm-sft-0123456789ab"])

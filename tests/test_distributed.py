"""Every accelerate config loads; the tiny SFT recipe really runs on 2 CPU processes under DDP, DeepSpeed ZeRO-2 and
ZeRO-3, the ranks end with identical weights and the loss falls; a mixed text-only + image dataset under ZeRO-3
completes (and, without our blank-image fix, does not)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import ACCELERATE, DRIVER, SMALL_RUN, free_port, launch, rank_records, small_run

from vlm_recipes.paths import REPO_ROOT

pytestmark = pytest.mark.learning

CONFIGS = sorted((REPO_ROOT / "accelerate_configs").glob("*.yaml"))


@pytest.fixture(autouse=True)
def tiny_smolvlm_built(request):
    """Build (or find) the tiny SmolVLM here, not inside the one-thread subprocesses of the learning tests below (the
    other tiers of this module need no pre-trained model: they do not build it)."""
    tier = next(m.name for m in request.node.iter_markers() if m.name in ("unit", "integration", "learning"))
    if tier == "learning":
        from vlm_recipes.tiny import vlm as tiny

        tiny.build("tiny:smolvlm")


def test_every_accelerate_config_loads_with_accelerates_loader():
    from accelerate.commands.config.config_args import load_config_from_file

    loaded = {p.stem: load_config_from_file(str(p)) for p in CONFIGS}
    assert set(loaded) >= {"cpu", "multi_cpu", "single_gpu", "multi_gpu", "zero2", "zero3", "zero3_offload", "fsdp2"}
    kinds = {name: c.distributed_type.value for name, c in loaded.items()}
    assert kinds["cpu"] == kinds["single_gpu"] == "NO"
    assert kinds["multi_cpu"] == kinds["multi_gpu"] == "MULTI_GPU"
    assert kinds["zero2"] == kinds["zero3"] == kinds["zero3_offload"] == "DEEPSPEED"
    assert kinds["fsdp2"] == "FSDP"
    # Several ranks on a CPU only through the multi-GPU launcher: `use_cpu` in the launch config would start one.
    assert loaded["multi_cpu"].num_processes == 2 and not loaded["multi_cpu"].use_cpu
    assert [loaded[n].deepspeed_config["zero_stage"] for n in ("zero2", "zero3", "zero3_offload")] == [2, 3, 3]
    assert loaded["zero3_offload"].deepspeed_config["offload_optimizer_device"] == "cpu"
    for path in CONFIGS:  # each file says when to use it
        assert path.read_text().startswith("# "), path


@pytest.mark.unit
def test_fsdp2_config_is_valid_for_accelerates_plugin():
    """FSDP cannot run through accelerate without a GPU; we check that accelerate accepts every value instead."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import FullyShardedDataParallelPlugin

    fsdp = load_config_from_file(str(REPO_ROOT / "accelerate_configs/fsdp2.yaml")).fsdp_config
    plugin = FullyShardedDataParallelPlugin(
        fsdp_version=fsdp["fsdp_version"],
        auto_wrap_policy=fsdp["fsdp_auto_wrap_policy"].lower(),
        reshard_after_forward=fsdp["fsdp_reshard_after_forward"],
        state_dict_type=fsdp["fsdp_state_dict_type"],
        cpu_ram_efficient_loading=fsdp["fsdp_cpu_ram_efficient_loading"],
        cpu_offload=fsdp["fsdp_offload_params"],
    )
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True


@pytest.mark.parametrize("config", ["multi_cpu", "zero2", "zero3"])
def test_two_cpu_ranks_train_in_sync(config, tmp_path_factory):
    base, weights, logs = small_run(config, tmp_path_factory)
    assert [log["world_size"] for log in logs] == [2, 2]
    assert all(log["deepspeed"] == config.startswith("zero") for log in logs)
    assert weights[0].keys() == weights[1].keys() and any("lora_A" in k for k in weights[0])
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), f"{config}: ranks differ at {name}"
    exits = [json.loads((base / "dump" / f"rank{r}.exit.json").read_text()) for r in (0, 1)]
    assert not any(e["process_group_alive_after_main"] for e in exits)  # the recipe tore its group down
    losses = logs[0]["losses"]
    assert losses[-1] < losses[0] - 1.0, losses
    results = json.loads((base / "out/eval_results.json").read_text())
    assert results["train_steps"] == 12
    assert (base / "out/adapter_model.safetensors").exists()


@pytest.mark.integration
def test_ddp_and_zero_stages_agree(tmp_path_factory):
    """Same seed, same global batch: DDP, ZeRO-2 and ZeRO-3 are the same optimisation, up to float noise."""
    reference = small_run("multi_cpu", tmp_path_factory)[1][0]
    for config in ("zero2", "zero3"):
        weights = small_run(config, tmp_path_factory)[1][0]
        for name, tensor in reference.items():
            assert torch.allclose(tensor, weights[name], atol=1e-4), f"{config} differs from DDP at {name}"


def mixed_dataset(folder: Path) -> Path:
    """Half image questions, half text-only questions: with one row per rank, ranks often disagree on images."""
    from vlm_recipes.data import synthetic

    folder.mkdir(parents=True)
    images = synthetic.make_dataset("color", num_samples=20, seed=3)
    words = ["one", "two", "three", "four"]
    rows = []
    for i in range(40):
        if i % 2 == 0:
            example = images[i // 2]
            example["images"][0].save(folder / f"{i}.png")
            rows.append({"messages": example["messages"], "images": [f"{i}.png"]})
        else:
            n = i % 3 + 1
            rows.append(
                {
                    "messages": [
                        {"role": "user", "content": [{"type": "text", "text": f"What comes after {words[n - 1]}?"}]},
                        {"role": "assistant", "content": [{"type": "text", "text": words[n]}]},
                    ],
                    "images": [],
                }
            )
    path = folder / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


MIXED = ["--max_steps", "10", "--max_eval_samples", "4", "--per_device_train_batch_size", "1"]


def test_zero3_with_text_only_and_image_batches_completes_and_matches_ddp(tmp_path):
    """Completes, ranks agree, and the blank image changes nothing but the schedule: the weights equal those of a
    DDP run on the same data (DDP tolerates unused modules, so it needs no blank image)."""
    data = mixed_dataset(tmp_path / "data")
    weights = {}
    for config in ("zero3", "multi_cpu"):
        result = launch(config, tmp_path / config, tmp_path / f"out-{config}", "--dataset_name", str(data), *MIXED)
        assert result.returncode == 0, result.stderr[-3000:]
        ranks, _ = rank_records(tmp_path / config)
        for name in ranks[0]:
            assert torch.equal(ranks[0][name], ranks[1][name]), f"{config}: ranks differ at {name}"
        weights[config] = ranks[0]
    for name, tensor in weights["multi_cpu"].items():
        assert torch.allclose(weights["zero3"][name], tensor, atol=1e-5), name


def test_zero3_with_text_only_batches_breaks_without_the_blank_image(tmp_path):
    """The failure the blank-image hook prevents: on GPUs (NCCL) a hang, on a CPU (gloo) an abort."""
    data = mixed_dataset(tmp_path / "data")
    result = launch(
        "zero3", tmp_path / "dump", tmp_path / "out", "--dataset_name", str(data), *MIXED,
        "--no_blank_image", "true", timeout=300,
    )  # fmt: skip
    assert result.returncode != 0
    assert "collective" in result.stderr or "gloo" in result.stderr.lower()


@pytest.mark.slow  # 24-32 s; the SmolVLM/Qwen2-VL DDP runs stay in the default run
def test_llava_trains_in_sync_on_two_ddp_ranks(tmp_path):
    """The tiny LLaVA-1.5 SFT recipe under DDP on 2 CPU ranks: identical weights on both, the loss falls. On the
    random model: the pre-trained base is built only by slow tests."""
    from vlm_recipes.tiny import vlm as tiny

    tiny.build("tiny:llava-random")  # here, not in the one-thread ranks
    config = REPO_ROOT / "recipes/configs/tiny-llava/sft_lora.yaml"
    args = ["--config", str(config), "--model_name_or_path", "tiny:llava-random"]
    result = launch("multi_cpu", tmp_path / "dump", tmp_path / "out", *args, *SMALL_RUN)
    assert result.returncode == 0, result.stderr[-3000:]
    weights, logs = rank_records(tmp_path / "dump")
    assert [log["world_size"] for log in logs] == [2, 2]
    assert any("lora_A" in k for k in weights[0]) and any("multi_modal_projector" in k for k in weights[0])
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), f"ranks differ at {name}"
    losses = logs[0]["losses"]
    assert losses[-1] < losses[0] - 0.5, losses  # from random weights: 6.31 -> 5.38 measured (logged every 2 steps)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llava", "llava_onevision"])
def test_llava_zero3_with_text_only_and_image_batches_completes(family, tmp_path):
    """Mixed text-only and image rows under ZeRO-3 on 2 CPU ranks: the blank image of a text-only batch goes through
    each LLaVA class's image path (OneVision's anyres inputs included), and the ranks end identical."""
    data = mixed_dataset(tmp_path / "data")
    config = REPO_ROOT / f"recipes/configs/tiny-{family.replace('_', '-')}/sft_lora.yaml"
    args = ["--config", str(config), "--model_name_or_path", f"tiny:{family}-random", "--dataset_name", str(data)]
    result = launch("zero3", tmp_path / "dump", tmp_path / "out", *args, *MIXED)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks, _ = rank_records(tmp_path / "dump")
    for name in ranks[0]:
        assert torch.equal(ranks[0][name], ranks[1][name]), f"ranks differ at {name}"


def test_fsdp2_shards_and_trains_the_tiny_vlm_on_two_cpu_ranks(tmp_path):
    """accelerate cannot run FSDP on a CPU; PyTorch's own fully_shard can, so we show the sharding that way."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--nproc_per_node", "2", "--master_port", str(free_port())]
    cmd += [str(REPO_ROOT / "tests/scripts/fsdp2_cpu.py"), str(tmp_path)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for record in ranks:
        assert record["local"] * 2 == record["total"]  # each rank holds half of every weight
        assert record["losses"][-1] < record["losses"][0] - 1.0
    assert ranks[0]["checksum"] == pytest.approx(ranks[1]["checksum"], rel=1e-12)  # one model, gathered


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["dpo", "grpo"])
def test_preference_and_rl_recipes_under_two_ddp_ranks(recipe, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    cmd = [str(ACCELERATE), "launch", "--config_file", str(REPO_ROOT / "accelerate_configs/multi_cpu.yaml")]
    cmd += ["--main_process_port", str(free_port()), str(DRIVER), recipe, str(tmp_path / "dump")]
    cmd += ["--output_dir", str(tmp_path / "out"), "--report_to", "none"]
    cmd += ["--max_steps", "10", "--max_eval_samples", "8", "--logging_steps", "2"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    weights, logs = rank_records(tmp_path / "dump")
    assert [log["world_size"] for log in logs] == [2, 2]
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), name


@pytest.mark.integration
def test_ranks_with_an_empty_cache_share_one_complete_tiny_checkpoint(tmp_path):
    """transformers writes model files on rank 0 only: a tiny model built by another rank would be cached without
    its weights. Only local rank 0 builds; the others wait and load the same directory."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT), "VLM_RECIPES_CACHE": str(tmp_path)}
    torchrun = Path(sys.executable).parent / "torchrun"
    script = REPO_ROOT / "tests/scripts/tiny_build_ranks.py"
    cmd = [str(torchrun), "--nproc_per_node", "2", "--master_port", str(free_port())]
    cmd += [str(script), "tiny:clip-random", str(tmp_path / "out")]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / "out" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1]
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(ranks[0]["files"])
    assert len(list((tmp_path / "tiny").iterdir())) == 1  # built once, no leftover temporary directory

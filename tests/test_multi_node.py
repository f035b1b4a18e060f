"""Multi-machine launch on one CPU host: two `accelerate launch` commands, one per "machine" (`--num_machines 2`,
`--machine_rank 0/1`, `--main_process_ip 127.0.0.1`), train the tiny default under ZeRO-2 and ZeRO-3 to the same loss
curve and weights as one machine running two processes; the multi-node configs load; the Slurm script's per-node
commands under a given SLURM_* environment; a rank that dies makes the other exit with a clear error, not hang."""

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from helpers import ACCELERATE, DRIVER, SMALL_RUN, free_port, rank_records, small_run

from vlm_recipes.paths import REPO_ROOT

pytestmark = pytest.mark.integration  # subprocesses; the two-machine training runs are learning

MULTI_NODE = {name: REPO_ROOT / f"accelerate_configs/multi_node_{name}.yaml" for name in ("ddp", "zero2", "zero3")}
MULTI_NODE["fsdp2"] = REPO_ROOT / "accelerate_configs/multi_node_fsdp2.yaml"
SLURM = REPO_ROOT / "scripts/slurm_train.sh"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}


def launch_machines(config: Path, script_and_args: list[str], logs: Path, timeout: int, cpu_args=(), wait_for=(0, 1)):
    """One `accelerate launch` per machine (2 machines x 1 process) on this host; returns (returncodes, outputs,
    seconds until the machines of `wait_for` ended). A launch still running after `timeout` seconds, or not in
    `wait_for` once those ended, is killed (its returncode is then None)."""
    port = free_port()
    procs = []
    for rank in (0, 1):
        cmd = [str(ACCELERATE), "launch", "--config_file", str(config), "--num_machines", "2", "--num_processes", "2"]
        cmd += ["--machine_rank", str(rank), "--main_process_ip", "127.0.0.1", "--main_process_port", str(port)]
        cmd += [*cpu_args, *script_and_args]
        log = open(logs / f"machine{rank}.log", "w")  # noqa: SIM115 (closed below)
        procs.append((subprocess.Popen(cmd, env=ENV, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                       start_new_session=True), log))  # fmt: skip
    start, codes = time.monotonic(), [None, None]
    for rank in wait_for:
        try:
            codes[rank] = procs[rank][0].wait(timeout=max(1.0, timeout - (time.monotonic() - start)))
        except subprocess.TimeoutExpired:
            pass
    seconds = time.monotonic() - start
    for proc, log in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the launcher and the ranks it started (stopped ones too)
            proc.wait()
        log.close()
    outputs = [(logs / f"machine{r}.log").read_text() for r in (0, 1)]
    return codes, outputs, seconds


@pytest.mark.unit
def test_multi_node_configs_load_with_accelerates_loader():
    from accelerate.commands.config.config_args import load_config_from_file

    for name, path in MULTI_NODE.items():
        config = load_config_from_file(str(path))
        assert config.num_machines == 2 and config.num_processes == 16, name
        assert config.main_process_ip is None, name  # given per job: --main_process_ip
        assert config.rdzv_backend == "static" and config.same_network, name
        assert path.read_text().startswith("# "), name
    kinds = {name: load_config_from_file(str(p)).distributed_type.value for name, p in MULTI_NODE.items()}
    assert kinds == {"ddp": "MULTI_GPU", "zero2": "DEEPSPEED", "zero3": "DEEPSPEED", "fsdp2": "FSDP"}
    for name in ("zero2", "zero3"):  # torchrun on each machine, not DeepSpeed's pdsh/ssh launcher with a hostfile
        deepspeed = load_config_from_file(str(MULTI_NODE[name])).deepspeed_config
        assert deepspeed["deepspeed_multinode_launcher"] == "standard"
        assert deepspeed["zero_stage"] == int(name[-1])
    assert load_config_from_file(str(MULTI_NODE["fsdp2"])).fsdp_config["fsdp_version"] == 2


# -- the Slurm script ---------------------------------------------------------------------------------------------
SLURM_ENV = {
    "SLURM_JOB_ID": "4242",
    "SLURM_NNODES": "3",
    "SLURM_JOB_NODELIST": "gpu-[07-08],gpu-11",
    "SLURM_GPUS_ON_NODE": "4",
}
HOSTS = ["gpu-07", "gpu-08", "gpu-11"]


@pytest.fixture
def slurm_env(tmp_path):
    """The SLURM_* environment of a 3-node job, and a `scontrol show hostnames` that expands its node list."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    expand = f'[ "$1 $2 $3" = "show hostnames {SLURM_ENV["SLURM_JOB_NODELIST"]}" ] || exit 9'
    scontrol.write_text("#!/bin/sh\n" + expand + "\n" + "".join(f"echo {host}\n" for host in HOSTS))
    scontrol.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "MAIN_", "GPUS_PER_NODE"))}
    return {**env, **SLURM_ENV, "PATH": f"{bin_dir}:{env['PATH']}", "SLURM_SUBMIT_DIR": str(REPO_ROOT)}


def run_slurm(env, *args):
    return subprocess.run(["bash", str(SLURM), *args], env=env, capture_output=True, text=True, timeout=30)


ARGS = ["accelerate_configs/multi_node_zero3.yaml", "sft", "--config", "my config.yaml", "--max_steps", "5"]


def expected_node_command(rank: int, port: str) -> str:
    return (
        "accelerate launch --config_file accelerate_configs/multi_node_zero3.yaml --num_machines 3 --num_processes 12 "
        f"--machine_rank {rank} --main_process_ip gpu-07 --main_process_port {port} --rdzv_backend static "
        "--max_restarts 0 recipes/sft.py --config my\\ config.yaml --max_steps 5"
    )


def test_slurm_script_dry_run_prints_one_task_per_node_and_each_nodes_command(slurm_env):
    result = run_slurm({**slurm_env, "DRY_RUN": "1", "MAIN_PORT": "29600"}, *ARGS)
    assert result.returncode == 0, result.stderr
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert lines[0] == (
        "srun --nodes 3 --ntasks 3 --ntasks-per-node 1 --kill-on-bad-exit=1 --output logs/%x-%j-node%n.log "
        f"--chdir {REPO_ROOT} bash {SLURM} accelerate_configs/multi_node_zero3.yaml sft --config my\\ config.yaml "
        "--max_steps 5"
    )
    assert lines[1:] == [f"node {n}: {expected_node_command(n, '29600')}" for n in range(3)]


def test_slurm_script_picks_a_free_port_and_each_node_task_runs_its_own_rank(slurm_env):
    """Without MAIN_PORT the port is one free on the first node (the batch host). Each node's task (the script under
    srun) runs exactly the command the dry run shows for its node id: ACCELERATE=echo prints it."""
    dry = run_slurm({**slurm_env, "DRY_RUN": "1"}, *ARGS)
    port = dry.stdout.splitlines()[1].split("--main_process_port ")[1].split()[0]
    assert 1024 <= int(port) < 65536
    for node in range(3):
        task_env = {**slurm_env, "VLM_RECIPES_NODE_TASK": "1", "SLURM_NODEID": str(node), "MAIN_HOST": "gpu-07"}
        task = run_slurm({**task_env, "MAIN_PORT": port, "GPUS_PER_NODE": "4", "ACCELERATE": "echo"}, *ARGS)
        assert task.returncode == 0, task.stderr
        # echo drops the quoting: the recipe receives "my config.yaml" as one argument
        assert "accelerate " + task.stdout.strip() == expected_node_command(node, port).replace("\\ ", " ")


def test_slurm_script_refuses_a_missing_config_recipe_or_job(slurm_env):
    assert "usage" in run_slurm(slurm_env, "accelerate_configs/multi_node_zero3.yaml").stderr
    missing = run_slurm({**slurm_env, "DRY_RUN": "1"}, "accelerate_configs/nope.yaml", "sft")
    assert missing.returncode == 2 and "no accelerate config" in missing.stderr
    missing = run_slurm({**slurm_env, "DRY_RUN": "1"}, "accelerate_configs/multi_node_zero3.yaml", "nope")
    assert missing.returncode == 2 and "no recipe" in missing.stderr
    outside = run_slurm({k: v for k, v in slurm_env.items() if k != "SLURM_JOB_ID"}, *ARGS)
    assert outside.returncode != 0 and "not inside a Slurm job" in outside.stderr


# -- two machines on one host --------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["kill", "stop"])
def test_a_rank_that_dies_makes_the_other_exit_with_a_clear_error(how, tmp_path):
    """Rank 1 (machine 1) is killed (its connections close) or frozen (they stay open, as with a machine that stops
    answering) mid-loop; rank 0 must not wait in its collective: its launcher exits non-zero, at once or after the
    process group timeout (15 s here; `ddp_timeout` in a recipe), naming the failed collective and pointing at the
    other ranks' logs. A killed rank's launcher exits non-zero too (a frozen one is killed by the test)."""
    script = [str(REPO_ROOT / "tests/scripts/rank_dies.py"), "15", how]
    wait_for = (0, 1) if how == "kill" else (0,)
    codes, outputs, seconds = launch_machines(MULTI_NODE["ddp"], script, tmp_path, timeout=90, wait_for=wait_for)
    # The frozen rank is not in its launcher's process group (torch's elastic agent starts each rank in a session of
    # its own): end it here, or it outlives the test, stopped.
    for pid in re.findall(r"rank 1: \w+ \(pid (\d+)\)", outputs[1]):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    assert codes[0] is not None, f"machine 0 still waited after 90 s: {outputs[0][-3000:]}"
    assert codes[0] != 0 and (how == "stop" or codes[1] != 0), codes
    assert seconds < 60, seconds
    assert f"rank 1: {how}" in outputs[1]
    assert "rank 0 of 2: a collective failed" in outputs[0], outputs[0][-3000:]
    assert "Another rank has most likely died" in outputs[0]
    assert "the loop ended without an error" not in outputs[0]


@pytest.fixture(autouse=False)
def tiny_smolvlm():
    from vlm_recipes.tiny import vlm as tiny

    tiny.build("tiny:smolvlm")  # here, not in the one-thread ranks


@pytest.mark.learning
# ZeRO-3 (parameters, gradients and optimizer states sharded across the two machines) in the default run; ZeRO-2 with
# -m slow.
@pytest.mark.parametrize("config", [pytest.param("zero2", marks=pytest.mark.slow), "zero3"])
def test_two_machines_train_like_one_machine_with_two_processes(config, tmp_path, tmp_path_factory, tiny_smolvlm):
    """Same seed, same data order, same global ranks: the loss curve and the trained weights of 2 machines x 1 process
    equal those of 1 machine x 2 processes (helpers.small_run, also used by test_distributed.py)."""
    _, one_weights, one_logs = small_run(config, tmp_path_factory)
    dump, out = tmp_path / "dump", tmp_path / "out"
    recipe = [str(DRIVER), "sft", str(dump), "--output_dir", str(out), "--report_to", "none", *SMALL_RUN]
    codes, outputs, _ = launch_machines(
        MULTI_NODE[config], recipe, tmp_path, timeout=300, cpu_args=["--mixed_precision", "no"]
    )
    assert codes == [0, 0], [o[-3000:] for o in outputs]
    weights, logs = rank_records(dump)
    assert [log["world_size"] for log in logs] == [2, 2] and all(log["deepspeed"] for log in logs)
    assert logs[0]["losses"] == pytest.approx(one_logs[0]["losses"], abs=1e-6), (logs[0], one_logs[0])
    assert len(logs[0]["losses"]) == 6  # 12 steps, logged every 2
    for name, tensor in one_weights[0].items():
        assert torch.equal(weights[0][name], weights[1][name]), f"machines differ at {name}"
        assert torch.allclose(weights[0][name], tensor, atol=1e-6), f"2 machines != 1 machine at {name}"

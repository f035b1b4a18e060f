#!/usr/bin/env bash
# Multi-machine training under Slurm: one task per node; each runs `accelerate launch`, which starts that node's GPU
# processes. Node i is accelerate's --machine_rank i (Slurm's node id), the main process lives on the job's first
# node, on a port found free there, and each node writes its own log. Nothing else: the engines are accelerate +
# DeepSpeed ZeRO-2/3 or FSDP2, chosen by the accelerate config (accelerate_configs/multi_node_*.yaml).
#
#   sbatch --nodes=2 scripts/slurm_train.sh accelerate_configs/multi_node_zero3.yaml sft \
#       --config recipes/configs/qwen2-vl-7b-instruct/sft_lora.yaml
#
# Arguments: <accelerate config> <recipe (recipes/<name>.py)> [recipe arguments...]. Submit from the repository root:
# every node reads the repository and writes output_dir there (a filesystem the nodes share).
# Environment: GPUS_PER_NODE (default: Slurm's GPUs per node, else 8), MAIN_PORT (default: a port free on the first
# node), LOG_DIR (default: logs), ACCELERATE (default: accelerate), DRY_RUN=1 (print the srun line and every node's
# command instead of running them: what the tests check).
#SBATCH --job-name=vlm-recipes
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --exclusive
#SBATCH --output=logs/%x-%j.out
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: sbatch --nodes=N scripts/slurm_train.sh <accelerate config> <recipe> [recipe arguments...]" >&2
    exit 2
fi
config=$1 recipe=$2
shift 2
: "${SLURM_JOB_ID:?not inside a Slurm job: submit with sbatch (or set DRY_RUN=1 and the SLURM_* variables)}"
: "${SLURM_NNODES:?SLURM_NNODES is unset}"
repo=${SLURM_SUBMIT_DIR:-$PWD}
gpus_per_node=${GPUS_PER_NODE:-${SLURM_GPUS_ON_NODE:-8}}

# The command of the node whose machine rank is $1; the recipe's arguments follow. Sets the array `cmd`.
node_command() {
    local rank=$1
    shift
    cmd=("${ACCELERATE:-accelerate}" launch --config_file "$config"
        --num_machines "$SLURM_NNODES" --num_processes "$((SLURM_NNODES * gpus_per_node))"
        --machine_rank "$rank" --main_process_ip "$MAIN_HOST" --main_process_port "$MAIN_PORT"
        --rdzv_backend static --max_restarts 0
        "recipes/$recipe.py" "$@")
}

if [[ ${VLM_RECIPES_NODE_TASK:-0} == 1 ]]; then  # inside srun: this node's task; its machine rank is its node id
    node_command "${SLURM_NODEID:?SLURM_NODEID is unset}" "$@"
    exec "${cmd[@]}"
fi

[[ -f $repo/$config ]] || { echo "no accelerate config $repo/$config (submit from the repository root)" >&2; exit 2; }
[[ -f $repo/recipes/$recipe.py ]] || { echo "no recipe $repo/recipes/$recipe.py" >&2; exit 2; }
# The main process runs on the job's first node, where this batch script runs: the port is checked free there.
MAIN_HOST=$(scontrol show hostnames "${SLURM_JOB_NODELIST:?SLURM_JOB_NODELIST is unset}" | awk 'NR == 1')  # awk reads all: head would end scontrol with SIGPIPE (pipefail)
MAIN_PORT=${MAIN_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])')}
log_dir=${LOG_DIR:-logs}
export MAIN_HOST MAIN_PORT GPUS_PER_NODE=$gpus_per_node VLM_RECIPES_NODE_TASK=1

# One task per node; node n logs to LOG_DIR/<job name>-<job id>-node<n>.log. --kill-on-bad-exit: a node that fails
# ends the others at once (on GPUs a dead peer otherwise leaves them waiting in NCCL until the process group timeout).
srun_args=(--nodes "$SLURM_NNODES" --ntasks "$SLURM_NNODES" --ntasks-per-node 1 --kill-on-bad-exit=1
    --output "$log_dir/%x-%j-node%n.log" --chdir "$repo")
node_task=(bash "$repo/scripts/slurm_train.sh" "$config" "$recipe" "$@")
if [[ ${DRY_RUN:-0} == 1 ]]; then
    echo "srun $(printf '%q ' "${srun_args[@]}" "${node_task[@]}")"
    for ((node = 0; node < SLURM_NNODES; node++)); do
        node_command "$node" "$@"
        echo "node $node: $(printf '%q ' "${cmd[@]}")"
    done
    exit 0
fi
mkdir -p "$repo/$log_dir"
exec srun "${srun_args[@]}" "${node_task[@]}"

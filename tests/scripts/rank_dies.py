"""Two ranks in a loop of all-reduces; after a few, rank 1 is killed (`kill`: SIGKILL, as the out-of-memory killer
ends a process; its connections close) or frozen (`stop`: SIGSTOP, a machine that stops answering; its connections stay
open). Rank 0, blocked in the next collective, must exit with a clear error, not wait forever: at once when the
connection closes, after the process group's timeout when it does not.

Usage: accelerate launch (or torchrun) ... tests/scripts/rank_dies.py <process group timeout, seconds> kill|stop
The loop runs inside `process_group_teardown`, as every recipe's `main` does (vlm_recipes.processes).
"""

import os
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

from vlm_recipes.processes import process_group_teardown  # noqa: E402


def main():
    dist.init_process_group("gloo", timeout=timedelta(seconds=int(sys.argv[1])))
    rank = dist.get_rank()
    with process_group_teardown():
        x = torch.ones(4)
        for step in range(100_000):
            if rank == 1 and step == 3:
                print(f"rank 1: {sys.argv[2]} (pid {os.getpid()})", flush=True)  # the test ends a stopped one
                os.kill(os.getpid(), signal.SIGKILL if sys.argv[2] == "kill" else signal.SIGSTOP)
            dist.all_reduce(x)
            time.sleep(0.01)
    print(f"rank {rank}: the loop ended without an error", flush=True)


if __name__ == "__main__":
    main()

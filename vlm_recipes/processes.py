"""How every recipe ends when it runs as several processes: the process group is torn down on the way out.

accelerate (and DeepSpeed) join a `torch.distributed` process group when a recipe starts under `accelerate launch` or
torchrun, and nothing destroys it: a process that exits with a live gloo group can abort while its threads are torn
down ("terminate called without an active exception" on rank 1 after a finished run), and PyTorch warns that the group
was never destroyed. Every recipe's `main` is wrapped by `ends_process_group`: on success the ranks meet at a barrier
(no rank closes its connections while a peer is still in a collective), then each destroys the group; on failure the
group is destroyed without a barrier (a failed peer may never reach it). A single process has no group: nothing to do.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager


def _destroy(barrier: bool) -> None:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    try:
        if barrier:
            dist.barrier()
    finally:
        dist.destroy_process_group()


@contextmanager
def process_group_teardown():
    """Destroy the process group this process joined when the block ends, after a barrier if it ended normally."""
    try:
        yield
    except BaseException:
        _destroy(barrier=False)
        raise
    _destroy(barrier=True)


def ends_process_group(main):
    """Decorator for a recipe's `main`: run it inside `process_group_teardown`."""

    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        with process_group_teardown():
            return main(*args, **kwargs)

    wrapped.ends_process_group = True  # what the tests check on every recipe's main
    return wrapped

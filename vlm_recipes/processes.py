"""How every recipe ends when it runs as several processes: the process group is torn down on the way out.

accelerate (and DeepSpeed) join a `torch.distributed` process group when a recipe starts under `accelerate launch` or
torchrun, and nothing destroys it: a process that exits with a live gloo group can abort while its threads are torn
down ("terminate called without an active exception" on rank 1 after a finished run), and PyTorch warns that the group
was never destroyed. Every recipe's `main` is wrapped by `ends_process_group`: on success the ranks meet at a barrier
(no rank closes its connections while a peer is still in a collective), then each destroys the group; on failure the
group is destroyed without a barrier (a failed peer may never reach it). A single process has no group: nothing to do.

A rank that dies (killed for memory, a lost machine) leaves its peers in a collective: on gloo they fail at once
(the connection closes), on NCCL when the process group's timeout (`ddp_timeout`) expires. The failing rank then says
which rank it is and where the cause is likely to be, instead of only the backend's message.
"""

from __future__ import annotations

import functools
import logging
from contextlib import contextmanager

logger = logging.getLogger(__name__)


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
    except BaseException as err:
        _explain_lost_peer(err)
        _destroy(barrier=False)
        raise
    _destroy(barrier=True)


# What a collective's error says when a peer is gone: gloo raises a plain RuntimeError ("[...gloo...] Read error ...:
# Connection reset by peer"), NCCL a DistBackendError after its timeout.
_LOST_PEER_WORDS = ("gloo", "nccl", "connection", "timed out", "timeout")


def _explain_lost_peer(err: BaseException) -> None:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    lost_peer = isinstance(err, dist.DistError) or (
        isinstance(err, RuntimeError) and any(w in str(err).lower() for w in _LOST_PEER_WORDS)
    )
    if not lost_peer:
        return
    logger.error(
        "rank %d of %d: a collective failed (%s: %s). Another rank has most likely died (killed, out of memory, its "
        "machine lost): read the other ranks' logs for the first error (under Slurm, one log per node). This rank "
        "exits now.",
        dist.get_rank(),
        dist.get_world_size(),
        type(err).__name__,
        str(err).splitlines()[0] if str(err) else "",
    )


def ends_process_group(main):
    """Decorator for a recipe's `main`: run it inside `process_group_teardown`."""

    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        with process_group_teardown():
            return main(*args, **kwargs)

    wrapped.ends_process_group = True  # what the tests check on every recipe's main
    return wrapped

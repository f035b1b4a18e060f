"""Measured peak memory of a block of CPU work: what the planner's predictions are checked against.

PyTorch keeps allocator statistics for CUDA (`torch.cuda.max_memory_allocated`) but none for the CPU. Three ways to
measure a CPU peak were weighed:

- The process's resident set (RSS; its high-water mark, resettable through /proc/self/clear_refs): what the operating
  system sees, but it mixes tensors with everything else (Python objects, libraries, thread stacks, glibc's arenas
  that keep freed memory, pages of a large allocation that were never touched) and moves by tens of MB between
  identical runs. A planner of tensor memory cannot be held to it to 15%.
- A custom allocator: the CPU allocator cannot be swapped from Python (`CUDAPluggableAllocator` is CUDA only).
- PyTorch's profiler with `profile_memory=True` (chosen): c10's CPU allocator reports every allocation and free of
  tensor memory (size and time) to the profiler, including tensors autograd saves and the temporaries of each
  operator; the running sum of those events is the CPU counterpart of CUDA's `memory_allocated`, and its maximum of
  `max_memory_allocated`. Memory allocated before the block (weights, optimizer states, the batch) is not in the
  events: it is counted once at the start from the tensors alive then (`live_tensor_bytes`).

`cpu_peak()` returns both figures: `peak` (tensors: the profiler's) and `rss_peak` (the process high-water mark over
the block, minus the resident set at its start, for comparison only).
"""

from __future__ import annotations

import gc
import os
import resource
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import torch


def live_tensor_bytes() -> int:
    """Bytes of the CPU tensor storages alive now (each storage once, however many tensors view it): parameters,
    their gradients, optimizer states, the batch, anything else a Python object holds."""
    seen: dict[int, int] = {}

    def add(t):
        if t is None or not torch.is_tensor(t) or t.device.type != "cpu" or t.is_meta:
            return
        try:
            storage = t.untyped_storage()
        except (RuntimeError, NotImplementedError):
            return
        seen[storage.data_ptr()] = max(seen.get(storage.data_ptr(), 0), storage.nbytes())

    gc.collect()
    with warnings.catch_warnings():  # is_tensor on every object touches deprecated torch.distributed attributes
        warnings.simplefilter("ignore")
        tensors = [obj for obj in gc.get_objects() if torch.is_tensor(obj)]
    for t in tensors:
        add(t)
        add(t.grad if isinstance(t, torch.nn.Parameter) else None)
    seen.pop(0, None)  # empty storages
    return sum(seen.values())


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_rss_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets the high-water mark VmHWM to the current resident set
        return True
    except OSError:
        return False


def _rss_peak_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class Peak:
    """Peak memory of a block: `start` (tensor bytes alive when it began), `peak` (the most tensor bytes alive at
    any moment of it), `end`; `rss_start` / `rss_peak` the process's resident set (None where it cannot be read)."""

    start: int = 0
    peak: int = 0
    end: int = 0
    rss_start: int | None = None
    rss_peak: int | None = None

    @property
    def added(self) -> int:
        """The peak above what was alive at the start (activations and temporaries of the block)."""
        return self.peak - self.start


@contextmanager
def cpu_peak():
    """Measure the block's peak CPU tensor memory (see the module docstring): `with cpu_peak() as p: ...; p.peak`."""
    from torch.profiler import ProfilerActivity, profile

    result = Peak(start=live_tensor_bytes())
    result.rss_start = _rss_bytes() if _reset_rss_peak() else None
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        yield result
    if result.rss_start is not None:
        result.rss_peak = _rss_peak_bytes()
    events = sorted(
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]" and str(e.device_type()).endswith("CPU")
    )
    current = highest = 0
    for _, nbytes in events:
        current += nbytes
        highest = max(highest, current)
    result.peak = result.start + highest
    result.end = result.start + current


def measured_peak(trainer, steps: int = 2) -> tuple[Peak, float]:
    """Run `steps` optimizer steps of a built trainer (`trainer.train()` with max_steps set) under `cpu_peak`;
    returns (Peak, seconds per step). The first step creates the optimizer states, so the peak of two steps covers
    both a step without and one with them."""
    import time

    trainer.args.max_steps = steps
    start = time.perf_counter()
    with cpu_peak() as peak:
        trainer.train()
    return peak, (time.perf_counter() - start) / steps

"""Measuring cost on this machine: wall-clock time and peak memory of a call.

Peak memory is the growth of the process's resident set size (RSS) while the
call runs, sampled by a background thread every ``interval`` seconds (0.5 ms by default). It is coarse (it
sees pages the allocator maps, not individual tensors) but it works on every
device-less laptop and needs no profiler.
"""

from __future__ import annotations

import gc
import statistics
import threading
import time
from collections.abc import Callable

import psutil

__all__ = ["time_call", "peak_memory"]


def time_call(fn: Callable[[], object], *, repeat: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeat`` runs, after ``warmup`` runs."""
    if repeat < 1 or warmup < 0:
        raise ValueError(f"repeat must be >= 1 and warmup >= 0, got {repeat}, {warmup}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_memory(fn: Callable[[], object], *, interval: float = 0.0005) -> int:
    """Bytes by which the process's RSS grew, at its peak, while ``fn()`` ran."""
    if interval <= 0:
        raise ValueError(f"interval must be positive, got {interval}")
    gc.collect()
    proc = psutil.Process()
    baseline = proc.memory_info().rss
    peak = baseline
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, proc.memory_info().rss)
            time.sleep(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        result = fn()
        peak = max(peak, proc.memory_info().rss)
    finally:
        done.set()
        thread.join()
    del result
    return max(0, peak - baseline)

"""Median CPU milliseconds of a call: the per-call figure several benches print."""
import statistics
import time
from typing import Callable


def median_cpu_ms(fn: Callable[[], object], repeats: int,
                  clock: Callable[[], float] = time.process_time) -> float:
    """
    Median CPU ms of ``fn()`` over ``repeats`` calls after one warm-up call.

    CPU rather than wall time: the shared machine's other jobs stretch wall time, not the
    CPU a call takes. ``clock``: ``time.process_time`` (all threads, e.g. torch's pool) or
    ``time.thread_time`` (the calling thread only).
    """
    fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return 1000.0 * statistics.median(times)

"""
CPU-weighted stack sampling of a container's executor thread (`CALL_CPU_PROFILE=DIR`).

Why not cProfile: its per-call overhead inflates pure-Python code (message property setters,
small callbacks) several-fold against torch kernels, so its shares mislead exactly where the
question is "Python glue or maths?". Here a thread wakes every `period` seconds, reads the
executor thread's own CPU clock, and charges the CPU used since the last wake to the stack
that thread is in now (full stack, so a cost can be charged to the node callback above it).
Waiting in the executor uses no CPU and so weighs nothing. The other threads of the process
(DDS receive and event threads, torch's pool) are read once at the start and at the end from
/proc, so their CPU appears as its own line.

Sampling charges an interval's CPU to the stack at its end, so a callback that ends just before
the executor goes idle leaks some CPU to the executor. The exact split comes from
`CallbackClock`: every subscription and timer callback and every `publish` is wrapped to add
its own thread CPU time (`time.thread_time`, two clock reads per call) to a per-node, per-topic
account, and so is each run of Python's cyclic garbage collector; what the executor thread
spent outside all callbacks is the executor (dispatch, take, the C side of deserialisation).
A draining subscription (`call_common.draining`) keeps its `Draining`, whose deliveries are
timed instead. The report is `bench/profile_report.py`.
"""
import collections
import functools
import gc
import json
import os
import sys
import threading
import time
from typing import Optional

from call_common.batching import batcher_stats
from call_common.draining import draining_of

ENV = 'CALL_CPU_PROFILE'


def _thread_cpu() -> dict:
    """CPU seconds per thread of this process, keyed 'tid:name' (Linux /proc; {} elsewhere)."""
    ticks = os.sysconf('SC_CLK_TCK')
    result = {}
    try:
        tids = os.listdir('/proc/self/task')
    except OSError:
        return result
    for tid in tids:
        try:
            with open(f'/proc/self/task/{tid}/stat', encoding='ascii', errors='replace') as f:
                text = f.read()
        except OSError:
            continue
        name, rest = text.split('(', 1)[1].rsplit(')', 1)
        fields = rest.split()
        result[f'{tid}:{name}'] = (int(fields[11]) + int(fields[12])) / ticks
    return result


class CallbackClock:
    """Exact CPU per callback and per publish of a container's nodes (executor thread)."""

    def __init__(self) -> None:
        self.cpu: collections.Counter = collections.Counter()
        self.calls: collections.Counter = collections.Counter()
        self._gc_start: Optional[float] = None

    def _on_gc(self, phase: str, info: dict) -> None:
        """Charge the collector's CPU to its own account (it runs inside whatever allocated)."""
        if phase == 'start':
            self._gc_start = time.thread_time()
        elif self._gc_start is not None:
            self.cpu[('python', 'gc', f'generation {info.get("generation")}')] += \
                time.thread_time() - self._gc_start
            self._gc_start = None

    def _wrap(self, key: tuple, function):
        @functools.wraps(function)   # keeps the signature rclpy inspects
        def timed(*args):
            start = time.thread_time()
            try:
                return function(*args)
            finally:
                self.cpu[key] += time.thread_time() - start
                self.calls[key] += 1
        return timed

    def instrument(self, nodes: list) -> None:
        """Wrap every subscription and timer callback and every publisher's publish."""
        self._gc_start = None
        gc.callbacks.append(self._on_gc)
        for node in nodes:
            name = node.get_name()
            for sub in node.subscriptions:
                key = (name, 'callback', sub.topic_name)
                draining = draining_of(sub.callback)
                if draining is not None:    # keep the Draining the container merges by
                    draining.deliver = self._wrap(key, draining.deliver)
                else:
                    sub.callback = self._wrap(key, sub.callback)
            for timer in node.timers:
                label = getattr(timer.callback, '__name__', 'timer')
                timer.callback = self._wrap((name, 'timer', label), timer.callback)
            for pub in node.publishers:
                pub.publish = self._wrap((name, 'publish', pub.topic_name), pub.publish)

    def close(self) -> None:
        """Stop timing the garbage collector (the wrapped callbacks stay wrapped)."""
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def as_rows(self) -> list:
        """[[node, kind, topic, cpu_s, calls], ...]."""
        return [[*key, cpu, self.calls[key]] for key, cpu in self.cpu.most_common()]


class StackSampler:
    """Sample one thread's stack, weighting each sample by that thread's CPU since the last."""

    def __init__(self, target: Optional[int] = None, period: float = 0.002) -> None:
        self.target = threading.get_ident() if target is None else target
        self.clock = time.pthread_getcpuclockid(self.target)
        self.period = period
        self.stacks: collections.Counter = collections.Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='cpu_profile', daemon=True)
        self.started_wall = self.stopped_wall = 0.0
        self.threads_start: dict = {}
        self.threads_end: dict = {}
        self.callbacks = CallbackClock()
        self.target_cpu_start = self.target_cpu_end = 0.0

    def start(self) -> None:
        """Begin sampling (call from any thread; the target was fixed at construction)."""
        self.threads_start = _thread_cpu()
        self.target_cpu_start = time.clock_gettime(self.clock)
        self.started_wall = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling and read the threads' CPU once more."""
        self._stop.set()
        self._thread.join()
        self.callbacks.close()
        self.stopped_wall = time.monotonic()
        self.target_cpu_end = time.clock_gettime(self.clock)
        self.threads_end = _thread_cpu()

    def _run(self) -> None:
        last = time.clock_gettime(self.clock)
        while not self._stop.wait(self.period):
            now = time.clock_gettime(self.clock)
            frame = sys._current_frames().get(self.target)
            if frame is None:
                break
            stack = []
            while frame is not None:
                code = frame.f_code
                stack.append((code.co_filename, code.co_name))
                frame = frame.f_back
            self.stacks[tuple(reversed(stack))] += now - last
            self.samples += 1
            last = now

    def dump(self, path: str) -> None:
        """Write the samples and the per-thread CPU as JSON."""
        threads = {key: self.threads_end[key] - self.threads_start.get(key, 0.0)
                   for key in self.threads_end}
        with open(path, 'w', encoding='utf-8') as stream:
            json.dump({'wall_s': self.stopped_wall - self.started_wall,
                       'samples': self.samples,
                       'executor_thread_cpu_s': self.target_cpu_end - self.target_cpu_start,
                       'callbacks': self.callbacks.as_rows(),
                       # batches run and flushes deferred per shared model (call_common.batching)
                       'batchers': batcher_stats(),
                       'threads_cpu_s': threads,
                       'sampler_thread': self._thread.native_id,
                       'target_native_id': threading.main_thread().native_id
                       if self.target == threading.main_thread().ident else None,
                       'stacks': [[list(map(list, stack)), cpu]
                                  for stack, cpu in self.stacks.most_common()]}, stream)


def from_environment(nodes: list) -> Optional[StackSampler]:
    """
    Start sampling the calling thread when CALL_CPU_PROFILE names a directory (else None).

    Call before the subscriptions are merged: each node's callback gets its own account.
    """
    if not os.environ.get(ENV):
        return None
    sampler = StackSampler()
    sampler.callbacks.instrument(nodes)
    sampler.start()
    return sampler


def finish(sampler: Optional[StackSampler], label: str) -> None:
    """Stop `sampler` (if any) and write DIR/<label>-<pid>.json."""
    if sampler is None:
        return
    sampler.stop()
    directory = os.environ[ENV]
    os.makedirs(directory, exist_ok=True)
    sampler.dump(os.path.join(directory, f'{label}-{os.getpid()}.json'))

"""
Vehicles' nodes in one process (`call_run --compose [--vehicles-per-process N]`), one executor.

Saves a Python interpreter, a torch import and a DDS participant per node on small machines.
The nodes share one single-threaded executor: callbacks run one at a time, as in their own
processes (no node relies on concurrent callbacks). Where rclpy has the events executor
(Kilted and later) it is used: it dispatches ready entities from C++ instead of rebuilding a
Python wait set per callback, and takes ~1/3 less CPU per tick (bench/bench_bringup.py).
Usage (built by the runner): `python -m call_bringup.compose NODES.json`, where the JSON lists
{module, name, ros_args} per node; `ros_args` are the node's own `--ros-args` (namespace,
name, parameters, remappings), the same it gets as a process of its own.
"""
import gc
import importlib
import inspect
import json
import os
import sys
from typing import Callable, NoReturn, Optional

from call_bringup import cpu_profile
from call_common.draining import drain, draining_of, takes_info
from call_common.node_main import spin_nodes_until_signal
from rclpy.context import Context
from rclpy.executors import Executor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.subscription import Subscription

try:  # rclpy >= 9 (Kilted); Humble and Jazzy fall back to the single-threaded executor
    from rclpy.experimental import EventsExecutor
except ImportError:  # pragma: no cover - depends on the installed ROS distribution
    EventsExecutor = None


def node_class(module_name: str) -> type:
    """Find the single rclpy Node subclass a node module defines (fail with a clear reason)."""
    module = importlib.import_module(module_name)
    classes = [cls for _, cls in inspect.getmembers(module, inspect.isclass)
               if issubclass(cls, Node) and cls is not Node and cls.__module__ == module_name]
    if len(classes) != 1:
        raise RuntimeError(f'{module_name}: expected exactly one rclpy Node subclass to '
                           f'compose, found {[c.__name__ for c in classes]}')
    return classes[0]


def make_executor(context: Optional[Context] = None) -> Executor:
    """
    One thread either way: the nodes' callbacks hold the GIL anyway.

    A multi-threaded executor costs ~3x the CPU per tick in wait-set rebuilding, hand-offs and
    GIL contention (bench/bench_bringup.py, composed mode). The events executor, where rclpy
    has it, also lets a container's world-model steps run as one batch (DEVELOPERS.md);
    ``without_message_info`` adapts the callbacks it cannot serve.
    """
    executor_type = SingleThreadedExecutor if EventsExecutor is None else EventsExecutor
    return executor_type(context=context)


def _qos_key(qos: QoSProfile) -> tuple:
    return (qos.history, qos.depth, qos.reliability, qos.durability,
            qos.deadline.nanoseconds, qos.lifespan.nanoseconds, qos.liveliness,
            qos.liveliness_lease_duration.nanoseconds)


def _fan_out(callbacks: tuple) -> Callable:
    """One callback (message and info) calling each of `callbacks` with what it takes."""
    calls = tuple((callback, takes_info(callback)) for callback in callbacks)
    # Humble hands callbacks the message only; the events executor fails on callbacks that
    # take the info, so the info form is used only where a callback asks for it
    if not hasattr(Subscription, 'CallbackType') or not any(info for _, info in calls):
        def fan_out_message(msg) -> None:
            for callback in callbacks:
                callback(msg)
        return fan_out_message

    def fan_out(msg, info) -> None:
        for callback, with_info in calls:
            if with_info:
                callback(msg, info)
            else:
                callback(msg)
    return fan_out


def share_subscriptions(nodes: list[Node]) -> int:
    """
    Take each topic once per container: merge subscriptions of equal topic, type and QoS.

    A vehicle's four nodes all read its odometry, several read its latent state and shared
    information, every comm node reads every V2V message and every sim-time node /clock. Each
    subscription is one message taken, deserialised and dispatched per step; merged, the
    first one's message goes to each callback in node order. So callbacks must not modify
    the message they get (no CALL node does). Content-filtered subscriptions stay apart.
    Draining subscriptions (`call_common.draining`: the V2V topics) merge into one that
    drains for all of them. Call before the nodes join an executor. Returns how many
    subscriptions were removed.
    """
    groups: dict[tuple, list] = {}
    for node in nodes:
        for sub in list(node.subscriptions):
            if getattr(sub, 'is_cft_enabled', False):  # no content filters in Humble
                continue
            key = (sub.topic_name, sub.msg_type, sub.raw, _qos_key(sub.qos_profile))
            groups.setdefault(key, []).append((node, sub))
    removed = 0
    for members in groups.values():
        if len(members) < 2:
            continue
        drainings = [draining_of(sub.callback) for _, sub in members]
        merged = _fan_out(tuple(sub.callback if d is None else d.deliver
                                for (_, sub), d in zip(members, drainings)))
        limits = [d.limit for d in drainings if d is not None]
        if limits:
            drain(members[0][1], max(limits), merged)
        else:
            members[0][1].callback = merged
        for node, sub in members[1:]:
            node.destroy_subscription(sub)
            removed += 1
    return removed


def without_message_info(nodes: list[Node]) -> int:
    """
    Hand MessageInfo-taking callbacks None instead, for the events executor.

    rclpy's events executor (Jazzy/Kilted) fails with ``SystemError: null argument to internal
    routine`` on a subscription whose callback takes (msg, MessageInfo). The comm node reads
    the publisher GID from it only to keep a flood budget per writer, and keeps it per claimed
    sender when the info is None; a draining subscription's drained samples (most of a
    flood) still come with it. Returns how many callbacks were wrapped.
    """
    wrapped = 0
    for node in nodes:
        for sub in node.subscriptions:
            draining = draining_of(sub.callback)
            if draining is not None:    # its drained samples keep their info
                sub.callback = draining.message_only
                wrapped += 1
            elif takes_info(sub.callback):
                sub.callback = lambda msg, callback=sub.callback: callback(msg, None)
                wrapped += 1
    return wrapped


def main(argv: Optional[list[str]] = None) -> NoReturn:
    """Create every listed node in this process, spin them until a signal, exit the process."""
    argv = list(sys.argv if argv is None else argv)
    with open(argv[1], encoding='utf-8') as stream:
        entries = json.load(stream)

    sampler = []

    def make_nodes(nodes: list[Node]) -> None:
        for entry in entries:
            node = node_class(entry['module'])(cli_args=list(entry.get('ros_args', [])))
            nodes.append(node)
            if node.get_name() != entry['name']:
                raise RuntimeError(f'{entry["module"]} names its node {node.get_name()!r}; '
                                   f'the graph expects {entry["name"]!r}')
        sampler.append(cpu_profile.from_environment(nodes))  # CALL_CPU_PROFILE=DIR, or None
        share_subscriptions(nodes)
        if EventsExecutor is not None:
            without_message_info(nodes)
        # what start-up made (models, checkpoints, node state: some 300 000 objects) lives as
        # long as the process; frozen, the collector's full collections no longer walk it
        # (each took ~170 ms of one tick at 16 vehicles, two containers), only what came since
        gc.freeze()

    # signals only set a flag checked between callbacks (call_common.node_main), so no
    # callback is cut off; spin_once in a loop, not spin(): EventsExecutor.spin() of rclpy 9.1
    # busy-waits in C++ at 100 % CPU and does not return on SIGINT/SIGTERM
    code = spin_nodes_until_signal(make_nodes, argv, 'container', make_executor=make_executor)
    cpu_profile.finish(sampler[0] if sampler else None, 'container')
    # The nodes are destroyed and rclpy is shut down. What is left is the interpreter's final
    # garbage collection of the vehicles' models, which took over 5 s on a loaded 2-core
    # machine and made launch escalate Ctrl-C to SIGTERM: skip it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == '__main__':
    sys.exit(main())

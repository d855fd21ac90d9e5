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
import importlib
import inspect
import json
import sys
from typing import Optional

import rclpy
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

try:  # rclpy >= 9 (Kilted); Humble and Jazzy fall back to the single-threaded executor
    from rclpy.experimental import EventsExecutor
except ImportError:  # pragma: no cover - depends on the installed ROS distribution
    EventsExecutor = None

SPIN_PERIOD = 0.5  # [s] longest wait before the loop looks at rclpy.ok() again


def node_class(module_name: str) -> type:
    """Find the single rclpy Node subclass a node module defines (fail with a clear reason)."""
    module = importlib.import_module(module_name)
    classes = [cls for _, cls in inspect.getmembers(module, inspect.isclass)
               if issubclass(cls, Node) and cls is not Node and cls.__module__ == module_name]
    if len(classes) != 1:
        raise RuntimeError(f'{module_name}: expected exactly one rclpy Node subclass to '
                           f'compose, found {[c.__name__ for c in classes]}')
    return classes[0]


def make_executor() -> Executor:
    """
    One thread either way: the nodes' callbacks hold the GIL anyway.

    A multi-threaded executor costs ~3x the CPU per tick in wait-set rebuilding, hand-offs and
    GIL contention (bench/bench_bringup.py, composed mode).
    """
    return SingleThreadedExecutor() if EventsExecutor is None else EventsExecutor()


def share_sim_clock(nodes: list[Node]) -> int:
    """
    Drive every sim-time node's clock from the first such node's /clock subscription.

    Each node's TimeSource subscribes to /clock on its own, so a container of N nodes would
    take and deserialise every tick N times. The nodes' clocks (and their timers) see the same
    time either way. Returns how many subscriptions were removed.
    """
    sim_time = [node for node in nodes if node.get_parameter('use_sim_time').value
                and getattr(node, '_time_source', None) is not None]  # rclpy-private: guarded
    for node in sim_time[1:]:
        node._time_source.detach_node()
        sim_time[0]._time_source.attach_clock(node.get_clock())
    return max(0, len(sim_time) - 1)


def main(argv: Optional[list[str]] = None) -> int:
    """Create every listed node in this process and spin them together."""
    argv = list(sys.argv if argv is None else argv)
    with open(argv[1], encoding='utf-8') as stream:
        entries = json.load(stream)
    rclpy.init(args=argv)
    nodes: list[Node] = []
    executor = make_executor()
    try:
        for entry in entries:
            node = node_class(entry['module'])(cli_args=list(entry.get('ros_args', [])))
            if node.get_name() != entry['name']:
                raise RuntimeError(f'{entry["module"]} names its node {node.get_name()!r}; '
                                   f'the graph expects {entry["name"]!r}')
            nodes.append(node)
        share_sim_clock(nodes)
        for node in nodes:
            executor.add_node(node)
        # spin_once in a loop, not spin(): EventsExecutor.spin() of rclpy 9.1 busy-waits in
        # C++ at 100 % CPU and does not return on SIGINT/SIGTERM
        while rclpy.ok():
            executor.spin_once(timeout_sec=SPIN_PERIOD)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        if rclpy.ok():
            raise
        # Ctrl-C shut the context down while the executor was taking a message
    finally:
        executor.shutdown()
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())

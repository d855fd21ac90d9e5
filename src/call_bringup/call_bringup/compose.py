"""
One vehicle's nodes in one process (`call_run --compose`), sharing one executor.

Saves a Python interpreter, a torch import and a DDS participant per node on small machines.
The nodes share one single-threaded executor: callbacks run one at a time, as in their own
processes (no node relies on concurrent callbacks).
Usage (built by the runner): `python -m call_bringup.compose NODES.json --ros-args ...` where
the JSON lists {module, name} per node and the ROS arguments carry namespace, per-node
params file and node-targeted remappings.
"""
import importlib
import inspect
import json
import sys
from typing import Optional

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node


def node_class(module_name: str) -> type:
    """Find the single rclpy Node subclass a node module defines (fail with a clear reason)."""
    module = importlib.import_module(module_name)
    classes = [cls for _, cls in inspect.getmembers(module, inspect.isclass)
               if issubclass(cls, Node) and cls is not Node and cls.__module__ == module_name]
    if len(classes) != 1:
        raise RuntimeError(f'{module_name}: expected exactly one rclpy Node subclass to '
                           f'compose, found {[c.__name__ for c in classes]}')
    return classes[0]


def main(argv: Optional[list[str]] = None) -> int:
    """Create every listed node in this process and spin them together."""
    argv = list(sys.argv if argv is None else argv)
    with open(argv[1], encoding='utf-8') as stream:
        entries = json.load(stream)
    rclpy.init(args=argv)
    nodes: list[Node] = []
    # one thread: the nodes' callbacks hold the GIL anyway, and a multi-threaded executor
    # costs ~3x the CPU per tick in wait-set rebuilding, hand-offs and GIL contention
    # (bench/bench_bringup.py, composed mode)
    executor = SingleThreadedExecutor()
    try:
        for entry in entries:
            node = node_class(entry['module'])()
            if node.get_name() != entry['name']:
                raise RuntimeError(f'{entry["module"]} names its node {node.get_name()!r}; '
                                   f'the graph expects {entry["name"]!r}')
            nodes.append(node)
            executor.add_node(node)
        executor.spin()
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

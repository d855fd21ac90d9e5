"""
A node process's (or a container's) main loop: spin until SIGINT/SIGTERM, then shut down cleanly.

rclpy's own signal handlers raise KeyboardInterrupt wherever the node happens to be (after a
publish but before its bookkeeping, inside take_message, ...), which made shutdowns flaky:
miscounted messages, exit code 1, a hang. Here the signals only set a flag that the loop
checks between callbacks, so every callback runs to its end.

A stop is bounded: if the process is still shutting down STOP_LIMIT seconds after the signal
(a teardown stuck inside the middleware was seen under heavy load), it prints the stacks of
its threads and exits with code 1, so a supervisor gets a diagnosis instead of a process that
only SIGKILL ends. The bound is faulthandler's watchdog, a C thread, because a teardown stuck
in a middleware call can keep the GIL: in one stop seen, neither a Python timer thread nor the
SIGTERM that followed ever ran. SIGUSR1 prints the stacks at any time (a supervisor's last
look before SIGKILL). While the node runs, that dump is taken by a Python handler, between
two bytecodes: faulthandler's own signal handler reads the frames wherever the interpreter
is, and on a running node it now and then printed corrupt frames and crashed the process
(SIGSEGV). Once a stop has begun, SIGUSR1 is faulthandler's again: a stop stuck in C with
the GIL never reaches a bytecode, and SIGKILL follows anyway.
"""
import faulthandler
import signal
import threading
from typing import Callable, List, Optional, Tuple, Type

from call_common.param_files import ParameterError
import rclpy
from rclpy.executors import Executor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

SPIN_PERIOD = 0.1  # [s] longest wait before the loop looks at the stop flag again
STOP_LIMIT = 10.0  # [s] longest shutdown after SIGINT/SIGTERM before the process gives up


def spin_until_signal(make_node: Callable[[], Node], args: Optional[list] = None,
                      name: str = 'node',
                      start_errors: Tuple[Type[BaseException], ...] = (),
                      on_stop: Optional[Callable[[Node], None]] = None,
                      finished: Optional[Callable[[Node], bool]] = None,
                      make_executor: Callable[[], Executor] = SingleThreadedExecutor) -> int:
    """
    Create the node with `make_node` and spin it until SIGINT or SIGTERM; return an exit code.

    An exception of `start_errors` (or a `ParameterError`) raised while creating the node (a
    bad checkpoint or parameter) is printed with `name` and gives 2; a clean stop gives 0.
    `finished(node)`, checked between callbacks, ends the run like a signal (a simulator
    that reached its last tick). `on_stop` sees the node once spinning ended, before it is
    destroyed.
    """
    def make_nodes(nodes: List[Node]) -> None:
        nodes.append(make_node())

    def stopped(nodes: List[Node]) -> None:
        if on_stop is not None:
            for node in nodes:
                on_stop(node)

    def done(nodes: List[Node]) -> bool:
        return finished is not None and any(finished(node) for node in nodes)

    return spin_nodes_until_signal(make_nodes, args, name, start_errors, stopped,
                                   make_executor, done)


def spin_nodes_until_signal(make_nodes: Callable[[List[Node]], None],
                            args: Optional[list] = None, name: str = 'node',
                            start_errors: Tuple[Type[BaseException], ...] = (),
                            on_stop: Optional[Callable[[List[Node]], None]] = None,
                            make_executor: Callable[[], Executor] = SingleThreadedExecutor,
                            finished: Optional[Callable[[List[Node]], bool]] = None
                            ) -> int:
    """
    Spin several nodes on one executor (a container) until SIGINT or SIGTERM.

    `make_nodes` appends each node it creates to the list it gets, so the nodes made before a
    failure are destroyed too. Exit codes, `start_errors` and `finished` as in
    `spin_until_signal`.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()

    def on_signal(*_) -> None:
        if not stop.is_set():
            stop.set()
            faulthandler.dump_traceback_later(STOP_LIMIT, exit=True)
            faulthandler.register(signal.SIGUSR1, all_threads=True)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    signal.signal(signal.SIGUSR1, lambda *_: faulthandler.dump_traceback(all_threads=True))
    nodes: List[Node] = []
    executor = make_executor()
    try:
        try:
            make_nodes(nodes)
        except (ParameterError, *start_errors) as exc:
            print(f'{name}: cannot start: {exc}', flush=True)
            return 2
        for node in nodes:
            executor.add_node(node)
        while not stop.is_set() and not (finished is not None and finished(nodes)):
            executor.spin_once(timeout_sec=SPIN_PERIOD)
    finally:
        executor.shutdown()
        if on_stop is not None and nodes:
            on_stop(nodes)
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
        # the bound is for the stop; the interpreter's own exit is the caller's
        faulthandler.cancel_dump_traceback_later()
    return 0

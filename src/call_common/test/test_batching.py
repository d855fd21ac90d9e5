"""Batcher / BatchTimer: the nodes sharing a batcher run their items of one tick together."""
from call_common.batch_timer import BatchTimer
from call_common.batching import Batcher
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node


class Doubling(Batcher):
    """Outcome = 2 x request; remembers each batch it ran."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def run(self, requests):
        self.batches.append(list(requests))
        return [2 * r for r in requests]


def test_items_of_several_nodes_run_as_one_batch_once_the_timer_fires():
    rclpy.init()
    try:
        batcher = Doubling()
        nodes = [Node(f'batching_{i}') for i in range(3)]
        timers = [BatchTimer(node, batcher) for node in nodes]
        executor = SingleThreadedExecutor()
        for node in nodes:
            executor.add_node(node)
        got = {}
        for i, timer in enumerate(timers):
            timer.submit(10 + i, lambda outcome, i=i: got.__setitem__(i, outcome))
        assert got == {} and all(t.waiting for t in timers)   # queued, not run
        for _ in range(20):
            if got:
                break
            executor.spin_once(timeout_sec=0.5)
        assert got == {0: 20, 1: 22, 2: 24}
        assert batcher.batches == [[10, 11, 12]]
        assert not any(t.waiting for t in timers)
        assert batcher.mean() == '3.00'
        for timer in timers:
            timer.close()
        assert batcher.members == 0
        executor.shutdown()
        for node in nodes:
            node.destroy_node()
    finally:
        rclpy.shutdown()


def test_a_lone_node_runs_its_item_at_once_and_close_flushes_a_waiting_one():
    rclpy.init()
    try:
        alone = Doubling()
        node = Node('batching_alone')
        got = []
        timer = BatchTimer(node, alone)
        timer.submit(4, got.append)
        assert got == [8] and not timer.waiting
        shared = Doubling()
        first, second = BatchTimer(node, shared), BatchTimer(node, shared)
        first.submit(1, got.append)
        assert got == [8] and first.waiting
        first.close()                               # a node going away runs what it queued
        assert got == [8, 2] and shared.members == 1
        second.close()
        node.destroy_node()
    finally:
        rclpy.shutdown()


class NextStep(Doubling):
    """A deferrable batcher: its outcomes are first read at the next step."""

    deferrable = True


def test_a_deferrable_batch_due_while_a_command_batch_waits_runs_right_after_it():
    rclpy.init()
    try:
        views, commands = NextStep(), Doubling()
        nodes = [Node(f'batching_order_{i}') for i in range(4)]
        view_timers = [BatchTimer(node, views) for node in nodes[:2]]
        command_timers = [BatchTimer(node, commands) for node in nodes[2:]]
        executor = SingleThreadedExecutor()
        for node in nodes:
            executor.add_node(node)
        order = []
        view_timers[0].submit(1, lambda outcome: order.append(('view', outcome)))
        command_timers[0].submit(5, lambda outcome: order.append(('command', outcome)))
        view_timers[0].flush_due()          # its timer's event came first: it waits
        assert order == [] and views.deferrals == 1 and view_timers[0].waiting
        command_timers[0].flush_due()       # the commands go out, then the views are resumed
        assert order == [('command', 10)]
        for _ in range(20):
            if len(order) == 2:
                break
            executor.spin_once(timeout_sec=0.5)
        assert order == [('command', 10), ('view', 2)]
        assert views.batches == [[1]] and not view_timers[0].waiting
        # no command batch waiting: the views run when due; a node's own flush runs at once
        view_timers[1].submit(3, lambda outcome: order.append(('view', outcome)))
        view_timers[1].flush_due()
        command_timers[1].submit(6, lambda outcome: order.append(('command', outcome)))
        view_timers[0].submit(4, lambda outcome: order.append(('view', outcome)))
        view_timers[0].flush()
        assert order[2:] == [('view', 6), ('view', 8)] and views.deferrals == 1
        command_timers[1].flush()
        assert order[4:] == [('command', 12)]
        for timer in view_timers + command_timers:
            timer.close()
        executor.shutdown()
        for node in nodes:
            node.destroy_node()
    finally:
        rclpy.shutdown()

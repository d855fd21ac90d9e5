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

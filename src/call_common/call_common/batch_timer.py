"""
A node's hand-off to a shared ``call_common.batching.Batcher``: its flush timer.

Why a zero-period timer: armed by the item that opens a batch, its event lands behind the
messages already waiting in the executor (the events executor queues them in order), so the
items those messages bring are queued before the batch runs. A steady clock, so it fires
under sim time too. A lone node runs its item at once. The timer's flush of a deferrable
batcher waits for the batches on the way to the step's commands
(``Batcher.flush_when_due``); a node's own ``flush`` runs at once.
"""
from typing import Any

from call_common.batching import Batcher, Done
from rclpy.clock import Clock, ClockType
from rclpy.node import Node


class BatchTimer:
    """One node's hand-off to a :class:`Batcher`: its flush timer and its waiting item."""

    def __init__(self, node: Node, batcher: Batcher) -> None:
        """Join ``batcher`` and create the node's disarmed flush timer."""
        self.batcher = batcher
        batcher.join()
        self.timer = node.create_timer(0.0, self.flush_due,
                                       clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.timer.cancel()
        self.waiting = False        # an item of this node is in the batch

    def submit(self, request: Any, done: Done) -> None:
        """Queue the node's item: at once when alone, else once the waiting events are in."""
        self.waiting = True

        def finish(*outcome: Any) -> None:
            self.waiting = False
            done(*outcome)
        opened = self.batcher.submit(request, finish)
        if self.batcher.members <= 1:
            self.flush()
        elif opened:
            self.timer.reset()

    def flush_due(self) -> None:
        """Run the batch when the timer fires, or leave it to the command path (deferrable)."""
        self.timer.cancel()
        self.batcher.flush_when_due(self.timer.reset)

    def flush(self) -> None:
        """Run the batch of queued items (of every node sharing the batcher) now."""
        self.timer.cancel()
        self.batcher.flush()

    def close(self) -> None:
        """Run what is queued (this node's timer may be the armed one), leave the batcher."""
        if self.waiting:
            self.flush()
        self.batcher.leave()

"""
The ego pose of a step, matched by stamp, for the comm node's range gate and own message.

A LatentState is stamped with the odometry its BEV was rendered from, but the comm node
receives that odometry on its own subscription, which may arrive after the state (even after
the next state). Using any other step's pose mixes steps: after a respawn teleport (kilometres
in one tick) the gate accepted a sender as "in range" from where the ego used to be. So a
state runs only with the pose of its own stamp; `StampedPoses` holds states back until that
pose arrives, and a state whose pose can no longer arrive is skipped and counted, never paired
with another step's pose.
"""
from collections import OrderedDict
from typing import Generic, List, Tuple, TypeVar

Pose = Tuple[float, float, float, float]     # x, y, yaw, speed
Item = TypeVar('Item')


class StampedPoses(Generic[Item]):
    """Poses by integer-nanosecond stamp, plus the items still waiting for theirs."""

    def __init__(self, capacity: int = 64, max_waiting: int = 8) -> None:
        """Keep the newest `capacity` poses and at most `max_waiting` waiting items."""
        if capacity < 1 or max_waiting < 1:
            raise ValueError(f'capacity and max_waiting must be >= 1, got {capacity}, '
                             f'{max_waiting}')
        self.capacity = capacity
        self.max_waiting = max_waiting
        self.skipped = 0                # items dropped because their own pose never came
        self._poses: 'OrderedDict[int, Pose]' = OrderedDict()
        self._waiting: 'OrderedDict[int, Item]' = OrderedDict()

    def _newest_stamp(self) -> int:
        return next(reversed(self._poses))

    def add(self, stamp_ns: int, pose: Pose) -> List[Tuple[Item, Pose]]:
        """
        Record a pose; return the waiting (item, pose) pairs it completes (at most one).

        Odometry arrives in stamp order, so items waiting for an older stamp will never get
        their pose: they are skipped. A stamp older than the newest one means simulation time
        went back (a reset): every pose and waiting item of the old timeline is dropped.
        """
        if self._poses and stamp_ns < self._newest_stamp() and stamp_ns not in self._poses:
            self._poses.clear()
            self.skipped += len(self._waiting)
            self._waiting.clear()
        self._poses[stamp_ns] = pose
        self._poses.move_to_end(stamp_ns)
        while len(self._poses) > self.capacity:
            self._poses.popitem(last=False)
        ready = []
        for stamp in [s for s in self._waiting if s <= stamp_ns]:
            item = self._waiting.pop(stamp)
            if stamp == stamp_ns:
                ready.append((item, pose))
            else:
                self.skipped += 1
        return ready

    def match(self, stamp_ns: int, item: Item) -> List[Tuple[Item, Pose]]:
        """
        Pair `item` (stamped `stamp_ns`) with its own pose: the (item, pose) pairs ready now.

        An item whose pose has not arrived waits for a later `add`; one whose pose is older
        than the poses kept (or was never received) is skipped.
        """
        pose = self._poses.get(stamp_ns)
        if pose is not None:
            return [(item, pose)]
        if self._poses and self._newest_stamp() > stamp_ns:
            self.skipped += 1
            return []
        if stamp_ns in self._waiting:
            self.skipped += 1           # a second item of the same stamp replaces the first
        self._waiting[stamp_ns] = item
        while len(self._waiting) > self.max_waiting:
            self._waiting.popitem(last=False)
            self.skipped += 1
        return []

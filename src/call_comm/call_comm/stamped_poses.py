"""
The ego pose of a step, matched by stamp, for the comm node's range gate and own message.

A LatentState is stamped with the odometry its BEV was rendered from, but the comm node
receives that odometry on its own subscription, which may arrive after the state. Using the
newest pose instead mixes steps; after a respawn teleport (kilometres in one tick) the gate
then accepted a sender as "in range" from where the ego used to be. `StampedPoses` keeps the
last poses by stamp and holds a state back until its own pose has arrived.
"""
from collections import OrderedDict
from typing import Generic, List, Optional, Tuple, TypeVar

Pose = Tuple[float, float, float, float]     # x, y, yaw, speed
Item = TypeVar('Item')


class StampedPoses(Generic[Item]):
    """Poses by integer-nanosecond stamp, plus at most one item waiting for its pose."""

    def __init__(self, capacity: int = 64) -> None:
        """Keep the newest `capacity` poses (a few seconds of steps)."""
        if capacity < 1:
            raise ValueError(f'capacity must be >= 1, got {capacity}')
        self.capacity = capacity
        self._poses: 'OrderedDict[int, Pose]' = OrderedDict()
        self._waiting: Optional[Tuple[int, Item]] = None

    @property
    def latest(self) -> Optional[Pose]:
        """Return the pose with the newest stamp seen (None before any)."""
        if not self._poses:
            return None
        return self._poses[next(reversed(self._poses))]

    def add(self, stamp_ns: int, pose: Pose) -> Optional[Tuple[Item, Pose]]:
        """Record a pose; returns (item, pose) if the waiting item's pose is now known."""
        if self._poses and stamp_ns < next(reversed(self._poses)) \
                and stamp_ns not in self._poses:
            self._poses.clear()      # simulation time went back (a reset): start over
        self._poses[stamp_ns] = pose
        self._poses.move_to_end(stamp_ns)
        while len(self._poses) > self.capacity:
            self._poses.popitem(last=False)
        if self._waiting is not None and stamp_ns >= self._waiting[0]:
            item = self._waiting[1]     # its own pose, or the first one after it
            self._waiting = None
            return item, pose
        return None

    def match(self, stamp_ns: int, item: Item) -> List[Tuple[Item, Optional[Pose]]]:
        """
        Pair `item` (stamped `stamp_ns`) with its pose: a list of (item, pose) ready now.

        An item whose pose has not arrived waits (it is returned by a later `add`). A new item
        releases a still-waiting one with the newest pose, so nothing waits more than a step
        (its pose is None only if no pose ever arrived).
        """
        ready = []
        if self._waiting is not None:
            ready.append((self._waiting[1], self.latest))
            self._waiting = None
        pose = self._poses.get(stamp_ns)
        if pose is not None:
            ready.append((item, pose))
        elif self._poses and next(reversed(self._poses)) > stamp_ns:
            ready.append((item, self.latest))       # too old to be kept: best known pose
        else:
            self._waiting = (stamp_ns, item)
        return ready

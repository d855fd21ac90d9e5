"""A node's per-step inputs kept by stamp, the newest few only (ROS-free)."""
from typing import Generic, Hashable, TypeVar

Key = TypeVar('Key', bound=Hashable)
Value = TypeVar('Value')


class RecentSteps(dict, Generic[Key, Value]):
    """
    Mapping of step stamp -> input that forgets its oldest entries beyond ``capacity``.

    Why: the nodes match inputs of one simulation step that arrive on different topics and
    in any order (pose, action, plan, shared information); an input of a step that never
    completes must not be kept forever. Insertion order is the dict's; setting a key that is
    already present updates it in place, as a dict does.
    """

    def __init__(self, capacity: int) -> None:
        """Keep at most ``capacity`` (>= 1) entries."""
        if int(capacity) < 1:
            raise ValueError(f'capacity must be at least 1, got {capacity}')
        super().__init__()
        self.capacity = int(capacity)

    def __setitem__(self, key: Key, value: Value) -> None:
        """Store ``value`` under ``key``; drop the oldest entries beyond the capacity."""
        super().__setitem__(key, value)
        while len(self) > self.capacity:
            del self[next(iter(self))]

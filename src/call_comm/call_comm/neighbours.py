"""Which senders lie inside the ego's communication range (positions from their messages)."""
import math
from typing import Iterable, List, Tuple


def distance(ego_xy: Tuple[float, float], other_xy: Tuple[float, float]) -> float:
    """Planar distance in the map frame [m]."""
    return math.hypot(other_xy[0] - ego_xy[0], other_xy[1] - ego_xy[1])


def within(dist: float, comm_range: float) -> bool:
    """Range test shared by every caller: range 0 reaches nobody, inf reaches everybody."""
    if comm_range <= 0.0:
        return False
    return math.isinf(comm_range) or dist <= comm_range


def in_range(ego_xy: Tuple[float, float], senders: Iterable[Tuple[str, float, float]],
             comm_range: float) -> List[Tuple[str, float]]:
    """Return (sender_id, distance) of senders within `comm_range`, nearest first."""
    selected = []
    for sender_id, x, y in senders:
        dist = distance(ego_xy, (x, y))
        if within(dist, comm_range):
            selected.append((sender_id, dist))
    selected.sort(key=lambda item: item[1])
    return selected

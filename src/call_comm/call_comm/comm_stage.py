"""
The communication stage of one vehicle step (ROS-free): gate by E, send, accept neighbours.

One rule for the comm node and the fleet pipeline that trains and evaluates (paper section
3.3, Algorithm 1): the range gate takes the step's prediction error E while the model state is
valid and NaN otherwise (a state that is warming up or faulted never widens the range); only
a valid state is sent; the accepted neighbours are the senders of the step inside the range,
nearest first (``neighbours.in_range``, the inbox's very test).
"""
import math
from typing import Iterable, List, Tuple

from call_comm.neighbours import in_range
from call_comm.range_gate import RangeGate


class CommStage:
    """One ego's range gate and its acceptance of neighbours."""

    def __init__(self, gate: RangeGate) -> None:
        """Gate with ``gate`` (its initial range, step, maximum and threshold c)."""
        self.gate = gate

    def step(self, valid: bool, error: float) -> float:
        """Feed this step's E (NaN unless ``valid``); return the range to gate with [m]."""
        return self.gate.update(float(error) if valid else math.nan)

    @staticmethod
    def sends(valid: bool) -> bool:
        """Tell whether the step's state goes on the air (only a valid one is shared)."""
        return bool(valid)

    def accept(self, ego_xy: Tuple[float, float],
               senders: Iterable[Tuple[str, float, float]]) -> List[Tuple[str, float]]:
        """(sender, distance) of the senders inside the current range, nearest first."""
        return in_range(ego_xy, senders, self.gate.comm_range)

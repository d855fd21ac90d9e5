"""
The communication stage of one vehicle step (ROS-free): gate by E, send, accept neighbours.

One rule for the comm node and the fleet pipeline that trains and evaluates (paper section
3.3, Algorithm 1): the range gate takes the step's prediction error E while the model state is
valid and NaN otherwise (a state that is warming up or faulted never widens the range); only
a valid state is sent; the accepted neighbours are the senders of the step inside the range,
nearest first (``neighbours.in_range``, the inbox's very test).
"""
from dataclasses import dataclass
import math
from typing import Iterable, List, Tuple

from call_comm import wire_codec
from call_comm.neighbours import in_range
from call_comm.range_gate import RangeGate
import numpy as np


@dataclass(frozen=True)
class Received:
    """A neighbour's step as a receiver's consumers get it (SharedInformation's numbers)."""

    x: float
    y: float
    yaw: float
    z_indices: np.ndarray      # (stoch,) uint8
    h: np.ndarray              # float32 (deter,) dequantised; empty without h on the wire
    intention_xy: np.ndarray   # (M, 2) map frame, float32 values
    speed: float = 0.0         # [m/s] float32 as on the wire


def received(x: float, y: float, yaw: float, z_indices: np.ndarray, h: np.ndarray,
             plan_xy: np.ndarray, h_encoding: int, max_waypoints: int,
             speed: float = 0.0,
             layout: wire_codec.ZLayout = wire_codec.DEFAULT_LAYOUT) -> Received:
    """
    Return what a receiver holds of a message built from these fields (one rule for both).

    The comm node encodes with ``wire_codec.encode`` and its receivers decode with the
    inbox, then SharedInformation carries the intention and h as float32; the fleet pipeline
    passes its messages through this function, so it shares exactly those numbers. `layout`
    is the fleet model's z layout (`wire_codec.ZLayout.of(cfg)`); CodecError for a z that
    does not fit it, as the comm node's encoder refuses it.
    """
    wire = wire_codec.encode(0, 0, 0, 0, (x, y, yaw, speed),
                             np.asarray(z_indices, dtype=np.int64), h, 0, plan_xy,
                             h_encoding, max_waypoints, layout)
    z = wire_codec.unpack_z(wire.z_packed, layout)
    intention = wire_codec.unpack_intention(wire.intention_packed, wire.x, wire.y, wire.yaw)
    return Received(wire.x, wire.y, wire.yaw, z,
                    wire_codec.dequantise_h(h_encoding, wire.h_data),
                    intention.astype(np.float32).astype(np.float64), float(wire.speed))


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

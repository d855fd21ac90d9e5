"""Simulator observation types, shared by its env, its ROS node and training."""  # noqa: A005
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class VehicleState:
    """One vehicle in the map frame; (x, y) is the bounding-box centre, yaw CCW from +x."""

    actor_id: int
    role_name: str
    x: float
    y: float
    yaw: float
    speed: float
    length: float
    width: float
    accel: float


@dataclass(frozen=True)
class AgentObservation:
    """What one CALL vehicle observes per step (privileged, as in the paper)."""

    time: float
    ego: VehicleState
    others: list[VehicleState]
    route: np.ndarray = field(repr=False)  # (M, 2) map-frame waypoints ahead of the ego


@dataclass(frozen=True)
class Lane:
    """A lane centreline polyline (map frame, metres) with its width."""

    lane_id: str
    centerline: np.ndarray = field(repr=False)  # (N, 2) float64
    width: float

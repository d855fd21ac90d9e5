"""
The intention w: the planned K actions integrated into map-frame waypoints.

This is what call_comm shares with neighbours and call_perception draws as the ego's blue
line (paper section 4 and Fig. 8): where the ego will be if it executes its plan, integrated
with the same kinematic bicycle model the embedded simulator uses.
"""
from typing import Sequence

from call_vehicle.vehicle_model import BicycleModel, BicycleState
import numpy as np


def intention_waypoints(model: BicycleModel, pose: tuple[float, float, float], speed: float,
                        actions: Sequence[tuple[float, float]]) -> np.ndarray:
    """(K, 2) map-frame positions after each of the K (accel, steer) actions from `pose`."""
    x, y, yaw = pose
    start = BicycleState(float(x), float(y), float(yaw), max(float(speed), 0.0))
    return model.rollout(start, actions)[:, :2]

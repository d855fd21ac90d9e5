"""
From a decided action to what the vehicle does and declares: control, action, intention.

One rule for every driver of a CALL vehicle (the planner node, the fleet pipeline that trains
and evaluates): the command realises the action's (accel, steer) through the control model,
and the intention w (paper section 4) is the bicycle rollout of the planned actions from the
current pose, renewed only when the plan is. A vehicle that must not trust its model state
(warming up, faulted) stops in a controlled way and declares braking straight ahead.
"""
from dataclasses import dataclass
from typing import Optional, Sequence

from call_vehicle.actions import ActionSet
from call_vehicle.intention import intention_waypoints
from call_vehicle.vehicle_control import ControlModel, VehicleControl
from call_vehicle.vehicle_model import BicycleModel
import numpy as np

Pose = tuple[float, float, float]


@dataclass(frozen=True)
class Command:
    """
    One step's output of a vehicle.

    action: the discrete action the world model conditions its next step on (a stop is the
    nearest one to braking straight); waypoints: the renewed intention (K, 2) map frame, or
    None to keep the one declared before.
    """

    action: int
    control: VehicleControl
    waypoints: Optional[np.ndarray]


@dataclass(frozen=True)
class Driver:
    """Actions, vehicle and actuator models of a CALL vehicle and its stop deceleration."""

    actions: ActionSet = ActionSet()
    bicycle: BicycleModel = BicycleModel()
    control_model: ControlModel = ControlModel()
    comfortable_decel: float = 3.0
    horizon: int = 5

    def __post_init__(self) -> None:
        """Fail fast on a stop that does not decelerate or an empty horizon."""
        if self.comfortable_decel <= 0.0:
            raise ValueError(f'comfortable_decel must be positive, got {self.comfortable_decel}')
        if self.horizon < 1:
            raise ValueError(f'horizon must be >= 1, got {self.horizon}')

    def drive(self, action: int, planned: Optional[Sequence[int]], pose: Pose,
              speed: float) -> Command:
        """Execute ``action``; ``planned`` (the K actions of a renewed plan) renews w."""
        accel, steer = self.actions.action(int(action))
        control = self.control_model.to_control(accel, steer, max(float(speed), 0.0))
        waypoints = None
        if planned is not None:
            waypoints = intention_waypoints(self.bicycle, pose, speed,
                                            [self.actions.action(int(a)) for a in planned])
        return Command(int(action), control, waypoints)

    def stop(self, pose: Optional[Pose], speed: float) -> Command:
        """
        Brake at ``comfortable_decel`` with the wheels straight; declare braking straight.

        At standstill the same brake holds the vehicle. Without a pose there is no intention.
        """
        control = self.control_model.to_control(-self.comfortable_decel, 0.0,
                                                max(float(speed), 0.0))
        waypoints = None
        if pose is not None:
            braking = [(-self.comfortable_decel, 0.0)] * self.horizon
            waypoints = intention_waypoints(self.bicycle, pose, speed, braking)
        return Command(self.actions.index(-self.comfortable_decel, 0.0), control, waypoints)

"""
Planner action -> CarlaEgoVehicleControl values, through call_vehicle.vehicle_control.

The embedded simulator and CARLA share one mapping (``call_vehicle.vehicle_control.ControlModel``),
so the planner's (accel, steer) means the same command on both backends; this module only adds
the bridge message's remaining fields and the checks the bridge relies on.
"""
import math
from typing import Dict, Optional

from call_vehicle.actions import ActionSet
from call_vehicle.vehicle_control import ControlModel, VehicleControl

LIMITS = {'throttle': (0.0, 1.0), 'steer': (-1.0, 1.0), 'brake': (0.0, 1.0)}


def command_for_action(index: int, speed: float, actions: Optional[ActionSet] = None,
                       model: Optional[ControlModel] = None) -> VehicleControl:
    """Return the control for a discrete action index at the current speed [m/s]."""
    accel, steer = (actions or ActionSet()).action(index)
    return (model or ControlModel()).to_control(accel, steer, speed)


def is_valid(control: VehicleControl) -> bool:
    """Check every field is finite and in CarlaEgoVehicleControl's documented range."""
    for name, (low, high) in LIMITS.items():
        value = getattr(control, name)
        if not (math.isfinite(value) and low <= value <= high):
            return False
    return not (control.throttle > 0.0 and control.brake > 0.0)


def message_fields(control: VehicleControl) -> Dict[str, object]:
    """Return the carla_msgs/CarlaEgoVehicleControl fields (automatic gearbox, forward)."""
    if not is_valid(control):
        raise ValueError(f'invalid control {control}')
    return {'throttle': float(control.throttle), 'steer': float(control.steer),
            'brake': float(control.brake), 'hand_brake': bool(control.hand_brake),
            'reverse': bool(control.reverse), 'gear': 1, 'manual_gear_shift': False}

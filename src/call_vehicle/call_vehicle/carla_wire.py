"""
What the CARLA-bridge messages do to the numbers they carry (ROS-free).

A vehicle's nodes read the simulator through the bridge's messages and command it through
``CarlaEgoVehicleControl``: the controls and the status speed travel as float32, a heading as
a quaternion (``yaw -> (z, w) -> atan2``). The fleet pipeline that trains and evaluates
without ROS passes the same values through these functions, so a model is trained on, and
the simulator driven by, exactly the numbers the nodes see and send (the parity test between
the ROS graph and the pipeline checks it bit for bit).
"""
import math

from call_common.msg_conversions import yaw_from_quaternion
from call_vehicle.vehicle_control import VehicleControl
import numpy as np


class _Quaternion:
    """A rotation about +z as geometry_msgs/Quaternion holds it (x = y = 0)."""

    __slots__ = ('x', 'y', 'z', 'w')

    def __init__(self, yaw: float) -> None:
        self.x = self.y = 0.0
        self.z, self.w = math.sin(0.5 * yaw), math.cos(0.5 * yaw)


def yaw_quaternion_zw(yaw: float) -> tuple[float, float]:
    """(z, w) of the quaternion the bridge sends for heading ``yaw`` (x = y = 0)."""
    q = _Quaternion(float(yaw))
    return q.z, q.w


def received_yaw(yaw: float) -> float:
    """Return the heading a node reads back from the quaternion of ``yaw`` (bridge round trip)."""
    return yaw_from_quaternion(_Quaternion(float(yaw)))


def float32(value: float) -> float:
    """``value`` rounded to float32, as a float32 message field carries it."""
    return float(np.float32(value))


def sent_control(control: VehicleControl) -> VehicleControl:
    """Return the control the simulator gets from a ``CarlaEgoVehicleControl`` (float32)."""
    return VehicleControl(throttle=float32(control.throttle), steer=float32(control.steer),
                          brake=float32(control.brake), hand_brake=bool(control.hand_brake),
                          reverse=bool(control.reverse))

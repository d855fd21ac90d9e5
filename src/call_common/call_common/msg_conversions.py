"""Conversions of standard message fields the CALL nodes all read (no message imports)."""
import math


def yaw_from_quaternion(q) -> float:
    """Heading [rad, counter-clockwise from +x] of a geometry_msgs/Quaternion-like `q`."""
    return math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))


def stamp_seconds(stamp) -> float:
    """Seconds of a builtin_interfaces/Time-like `stamp` (sim time in CALL)."""
    return stamp.sec + stamp.nanosec * 1e-9

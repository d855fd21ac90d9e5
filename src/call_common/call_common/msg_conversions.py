"""Conversions of standard message fields the CALL nodes all read (no message imports)."""
import math

import numpy as np


def yaw_from_quaternion(q) -> float:
    """Heading [rad, counter-clockwise from +x] of a geometry_msgs/Quaternion-like `q`."""
    return yaw_from_xyzw(q.x, q.y, q.z, q.w)


def yaw_from_xyzw(x: float, y: float, z: float, w: float) -> float:
    """Heading [rad, counter-clockwise from +x] of the quaternion (x, y, z, w)."""
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def stamp_seconds(stamp) -> float:
    """Seconds of a builtin_interfaces/Time-like `stamp` (sim time in CALL)."""
    return stamp.sec + stamp.nanosec * 1e-9


def stamp_nanoseconds(stamp) -> int:
    """Integer nanoseconds of a builtin_interfaces/Time-like `stamp`: an exact key per step."""
    return stamp.sec * 10**9 + stamp.nanosec


def pack_mask(mask: np.ndarray) -> bytes:
    """(S, S) mask (non-zero = on) -> S*S bits, row-major, most significant bit first."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        raise ValueError(f'expected a square mask, got shape {mask.shape}')
    return np.packbits(mask.ravel() != 0).tobytes()


def unpack_mask(data: bytes, size: int) -> np.ndarray:
    """Inverse of `pack_mask` -> (size, size) uint8 0/255; ValueError on a wrong length."""
    size = int(size)
    expected = (size * size + 7) // 8
    if size <= 0 or len(data) != expected:
        raise ValueError(f'a {size} x {size} mask takes {expected} bytes, got {len(data)}')
    bits = np.unpackbits(np.frombuffer(bytes(data), np.uint8), count=size * size)
    return (bits.reshape(size, size) * np.uint8(255)).astype(np.uint8)

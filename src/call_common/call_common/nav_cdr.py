"""
The few fields CALL's nodes use of a serialized `nav_msgs/Odometry` or `nav_msgs/Path`, read raw.

Every vehicle's perception, world model, comm and planner take the bridge's odometry each
step, and three of them the planner's plan. rclpy builds the whole message as Python objects
on each take: an Odometry is a dozen nested messages and two 36-double covariance arrays, a
Path one PoseStamped (header, stamp, pose, point, quaternion) per waypoint, where the nodes
read a stamp, a pose and a velocity, or the waypoints' x and y. These readers walk the CDR
bytes (XCDR1, the encapsulation rclpy and every ROS 2 RMW use for these types) with `struct`
and return those numbers as the same Python floats, so what a node computes from them is bit
for bit what the deserialised message gives. The layout is the message definition's field
order, each primitive aligned to its size counted from after the 4-byte encapsulation header
(OMG DDS-XTypes 1.3, 7.4.1 "Extended CDR (XCDR) version 1"):

    Odometry:  Header header, string child_frame_id,
               PoseWithCovariance pose (Pose: Point 3 float64, Quaternion 4 float64;
               float64[36] covariance), TwistWithCovariance twist (Twist: linear 3 float64,
               angular 3 float64; float64[36] covariance)
    Path:      Header header, PoseStamped[] poses
    PoseStamped: Header header, Pose pose
    Header:    int32 sec, uint32 nanosec, string frame_id

The subscriptions stay typed on the graph (`ros2 topic echo` and every other subscriber see
the same message); only the taking node skips building it (`raw=True`).
"""
import struct
from typing import NamedTuple, Tuple

from call_common.xcdr1 import byte_order, ENCAPSULATION
import numpy as np


class NavCdrError(ValueError):
    """The bytes are not a well-formed serialized Odometry or Path."""


class RawOdometry(NamedTuple):
    """What the nodes read of one nav_msgs/Odometry (header stamp, pose, twist)."""

    sec: int                    # header.stamp
    nanosec: int
    x: float                    # pose.pose.position
    y: float
    z: float
    qx: float                   # pose.pose.orientation
    qy: float
    qz: float
    qw: float
    vx: float                   # twist.twist.linear
    vy: float
    vz: float
    wx: float                   # twist.twist.angular
    wy: float
    wz: float

    @property
    def stamp_ns(self) -> int:
        """Integer nanoseconds of the stamp (as `msg_conversions.stamp_nanoseconds`)."""
        return self.sec * 10**9 + self.nanosec

    @property
    def stamp_seconds(self) -> float:
        """Seconds of the stamp (as `msg_conversions.stamp_seconds`)."""
        return self.sec + self.nanosec * 1e-9


_HEAD = {order: struct.Struct(order + 'iII') for order in '<>'}
_UINT = {order: struct.Struct(order + 'I') for order in '<>'}
_POSE = {order: struct.Struct(order + '7d') for order in '<>'}
_TWIST = {order: struct.Struct(order + '6d') for order in '<>'}
_XY = {order: struct.Struct(order + '2d') for order in '<>'}
COVARIANCE_BYTES = 36 * 8


def _skip_string(body: memoryview, offset: int, uint: struct.Struct, end: int) -> int:
    """Offset after the CDR string at ``offset`` (4-aligned length, NUL included)."""
    offset += (-offset) % 4
    size, = uint.unpack_from(body, offset)
    offset += 4 + size
    if offset > end:
        raise NavCdrError(f'a string of {size} bytes overruns the message')
    return offset


def odometry_fields(msg) -> RawOdometry:
    """Return what the nodes read of a deserialised nav_msgs/Odometry (as `read_odometry`)."""
    stamp, pose, twist = msg.header.stamp, msg.pose.pose, msg.twist.twist
    p, q, v, w = pose.position, pose.orientation, twist.linear, twist.angular
    return RawOdometry(stamp.sec, stamp.nanosec, p.x, p.y, p.z, q.x, q.y, q.z, q.w,
                       v.x, v.y, v.z, w.x, w.y, w.z)


def read_odometry(raw: bytes) -> RawOdometry:
    """
    Read stamp, pose and twist of a serialized Odometry.

    NavCdrError if the bytes are malformed (a string that claims more bytes than are left, or
    fewer bytes than the fixed-size fields need). Non-finite values are the caller's check, as
    with a deserialised message. Bytes after the last field are ignored (DDS pads samples).
    """
    order = byte_order(raw, NavCdrError)
    uint = _UINT[order]
    body = memoryview(raw)[4:]
    end = len(body)
    try:
        sec, nanosec, _ = _HEAD[order].unpack_from(body, 0)
        offset = _skip_string(body, 8, uint, end)              # header.frame_id
        offset = _skip_string(body, offset, uint, end)         # child_frame_id
        offset += (-offset) % 8
        x, y, z, qx, qy, qz, qw = _POSE[order].unpack_from(body, offset)
        offset += 7 * 8 + COVARIANCE_BYTES
        vx, vy, vz, wx, wy, wz = _TWIST[order].unpack_from(body, offset)
        offset += 6 * 8 + COVARIANCE_BYTES
    except struct.error as error:
        raise NavCdrError(f'truncated Odometry: {error}') from None
    if offset > end:
        raise NavCdrError(f'an Odometry of {end} bytes after its header needs {offset}')
    return RawOdometry(sec, nanosec, x, y, z, qx, qy, qz, qw, vx, vy, vz, wx, wy, wz)


def path_xy(msg) -> np.ndarray:
    """Deserialised nav_msgs/Path -> (M, 2) float64 waypoints x, y (as `read_path_xy`)."""
    return np.array([(p.pose.position.x, p.pose.position.y) for p in msg.poses],
                    dtype=np.float64).reshape(-1, 2)


def read_path_xy(raw: bytes) -> Tuple[int, int, np.ndarray]:
    """
    Read (stamp sec, stamp nanosec, (M, 2) float64 x, y of each pose) of a serialized Path.

    The same array as `path_xy` of the deserialised message (non-finite values included: the
    caller checks them). NavCdrError if the bytes are malformed: a sequence or string that
    claims more bytes than are left. Bytes after the last pose are ignored.
    """
    order = byte_order(raw, NavCdrError)
    uint, xy = _UINT[order], _XY[order]
    body = memoryview(raw)[4:]
    end = len(body)
    try:
        sec, nanosec, _ = _HEAD[order].unpack_from(body, 0)
        offset = _skip_string(body, 8, uint, end)              # header.frame_id
        offset += (-offset) % 4
        count, = uint.unpack_from(body, offset)
        offset += 4
        if count * 64 > end - offset:                          # a pose is >= 64 bytes
            raise NavCdrError(f'{count} poses in {end - offset} bytes')
        points = []
        for _ in range(count):
            offset = _skip_string(body, offset + ((-offset) % 4) + 8, uint, end)
            offset += (-offset) % 8
            points.append(xy.unpack_from(body, offset))        # pose.position x, y
            offset += 7 * 8
    except struct.error as error:
        raise NavCdrError(f'truncated Path: {error}') from None
    if offset > end:
        raise NavCdrError(f'a Path of {end} bytes after its header needs {offset}')
    return sec, nanosec, np.array(points, dtype=np.float64).reshape(-1, 2)


def _string(text: bytes, order: str) -> bytes:
    return _UINT[order].pack(len(text) + 1) + text + b'\x00'


def serialize_path_xy(sec: int, nanosec: int, frame_id: str, points: np.ndarray,
                      order: str = '<') -> bytes:
    """
    Serialize a nav_msgs/Path of (M, 2) map-frame points, as rclpy's `serialize_message` does.

    Each pose is stamped like the path, at z 0 with the identity orientation: the Path the
    planner declares its plan with, which rclpy would build as M PoseStamped objects (each a
    header, stamp, pose, point and quaternion) to serialize them again. Publishing these bytes
    puts the same message on the topic (`Publisher.publish` takes serialized bytes).
    """
    head = _HEAD[order]
    frame = frame_id.encode()
    stamp = head.pack(sec, nanosec, len(frame) + 1)[:8]
    header = stamp + _string(frame, order)
    out = bytearray(ENCAPSULATION[order])
    out += header
    out += bytes((-len(out) + 4) % 4)
    out += _UINT[order].pack(len(points))
    pose = struct.Struct(order + '7d')
    for x, y in np.asarray(points, dtype=np.float64).reshape(-1, 2).tolist():
        out += bytes((-len(out) + 4) % 4)            # offsets count from after the 4-byte
        out += header                                # encapsulation header: alignment
        out += bytes((-len(out) + 4) % 8)            # relative to it
        out += pose.pack(x, y, 0.0, 0.0, 0.0, 0.0, 1.0)
    return bytes(out)


_ODOMETRY_TAIL = struct.Struct('<7d288x6d288x')   # pose, covariance, twist, covariance


def serialize_odometry(sec: int, nanosec: int, frame_id: str, child_frame_id: str,
                       pose: Tuple[float, ...], twist: Tuple[float, ...]) -> bytes:
    """
    Serialize a nav_msgs/Odometry with zero covariances, as rclpy's `serialize_message` does.

    ``pose`` is position x, y, z and orientation x, y, z, w; ``twist`` linear x, y, z and
    angular x, y, z. The simulator publishes one per vehicle and step; rclpy would build it
    as a dozen nested Python messages to serialize them again. Little-endian (CDR_LE), which
    every reader takes whatever its host's order.
    """
    frame, child = frame_id.encode(), child_frame_id.encode()
    out = bytearray(ENCAPSULATION['<'])
    out += _HEAD['<'].pack(sec, nanosec, len(frame) + 1)
    out += frame + b'\x00'
    out += bytes((-len(out)) % 4)                # alignment counts from after the 4-byte
    out += _string(child, '<')                   # encapsulation header
    out += bytes((-len(out) + 4) % 8)
    out += _ODOMETRY_TAIL.pack(*pose, *twist)
    return bytes(out)

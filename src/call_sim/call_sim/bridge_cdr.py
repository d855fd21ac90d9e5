"""
The per-vehicle CARLA bridge messages the simulator publishes, serialized directly to CDR.

Each step the simulator sends every CALL vehicle a `carla_msgs/CarlaEgoVehicleStatus` and a
`derived_object_msgs/ObjectArray` of the actors around it. rclpy would build each as nested
Python messages (an Object alone is over a dozen: header, stamp, pose, point, quaternion,
twist, accel, polygon, shape, ...) and then serialize them again; the same Object, in several
vehicles' arrays, would be built and serialized once per array. These writers pack the
fields with `struct` into the bytes rclpy's `serialize_message` produces for that message
(XCDR1, little-endian: each primitive aligned to its size counted from after the 4-byte
encapsulation header, OMG DDS-XTypes 1.3, 7.4.1 "Extended CDR (XCDR) version 1"), which
`Publisher.publish` takes as they are: the topics keep their types, and every subscriber
(`ros2 topic echo` included) gets the same message. Padding bytes are zero.

    CarlaEgoVehicleStatus: Header header, float32 velocity, Accel acceleration (6 float64),
                           Quaternion orientation (4 float64), CarlaEgoVehicleControl control
    CarlaEgoVehicleControl: Header header, float32 throttle, steer, brake, bool hand_brake,
                            reverse, int32 gear, bool manual_gear_shift
    ObjectArray: Header header, Object[] objects
    Object:      Header header, uint32 id, uint8 detection_level, bool object_classified,
                 Pose pose (7 float64), Twist twist (6 float64), Accel accel (6 float64),
                 Polygon polygon (Point32[], empty here), SolidPrimitive shape (uint8 type,
                 float64[<=3] dimensions, Polygon polygon, empty here), uint8 classification,
                 uint8 classification_certainty, uint32 classification_age
    Header:      int32 sec, uint32 nanosec, string frame_id
"""
from functools import lru_cache
import struct
from typing import Dict, NamedTuple, Sequence, Tuple

from call_common import xcdr1

ENCAPSULATION = xcdr1.ENCAPSULATION['<']        # CDR_LE, no options


class WireObject(NamedTuple):
    """The fields of one derived_object_msgs/Object the simulator sets (polygons empty)."""

    object_id: int
    detection_level: int
    object_classified: bool
    pose: Tuple[float, ...]          # position x, y, z, orientation x, y, z, w
    twist: Tuple[float, ...]         # linear x, y, z, angular x, y, z
    accel: Tuple[float, ...]         # linear x, y, z, angular x, y, z
    shape_type: int
    dimensions: Tuple[float, ...]    # at most 3 (SolidPrimitive's bound)
    classification: int
    classification_certainty: int
    classification_age: int = 0


class _Layout:
    """A struct format built field by field, with CDR alignment from a given body offset."""

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.format = '<'

    def add(self, code: str, size: int, count: int = 1) -> None:
        pad = (-self.offset) % min(size, 8)
        self.format += 'x' * pad + (f'{count}{code}' if count != 1 else code)
        self.offset += pad + size * count

    def add_string(self, length: int) -> None:
        """Add a CDR string of ``length`` bytes (uint32 size with the NUL, bytes, NUL)."""
        self.add('I', 4)
        self.format += f'{length + 1}s'
        self.offset += length + 1


def _header(layout: _Layout, frame_length: int) -> None:
    layout.add('i', 4)
    layout.add('I', 4)
    layout.add_string(frame_length)


@lru_cache(maxsize=None)
def _object_struct(phase: int, frame_length: int, dimensions: int) -> struct.Struct:
    """Object format when it starts at a body offset of ``phase`` modulo 8."""
    layout = _Layout(phase)
    _header(layout, frame_length)
    layout.add('I', 4)                       # id
    layout.add('B', 1)                       # detection_level
    layout.add('?', 1)                       # object_classified
    layout.add('d', 8, 19)                   # pose, twist, accel
    layout.add('I', 4)                       # polygon.points: empty
    layout.add('B', 1)                       # shape.type
    layout.add('I', 4)                       # shape.dimensions
    if dimensions:
        layout.add('d', 8, dimensions)
    layout.add('I', 4)                       # shape.polygon.points: empty
    layout.add('B', 1)                       # classification
    layout.add('B', 1)                       # classification_certainty
    layout.add('I', 4)                       # classification_age
    return struct.Struct(layout.format)


@lru_cache(maxsize=None)
def _array_head_struct(frame_length: int) -> struct.Struct:
    layout = _Layout(0)
    _header(layout, frame_length)
    layout.add('I', 4)                       # objects: count
    return struct.Struct(layout.format)


@lru_cache(maxsize=None)
def _status_struct(frame_length: int, control_frame_length: int) -> struct.Struct:
    layout = _Layout(0)
    _header(layout, frame_length)
    layout.add('f', 4)                       # velocity
    layout.add('d', 8, 10)                   # acceleration (6), orientation (4)
    _header(layout, control_frame_length)
    layout.add('f', 4, 3)                    # throttle, steer, brake
    layout.add('?', 1)                       # hand_brake
    layout.add('?', 1)                       # reverse
    layout.add('i', 4)                       # gear
    layout.add('?', 1)                       # manual_gear_shift
    return struct.Struct(layout.format)


class EncodedObject:
    """
    One Object (header included) serialized for the arrays it goes into.

    An Object's bytes depend on where it starts modulo 8 (its doubles are 8-aligned), so they
    are made once per start alignment met, and reused by every array that holds the object.
    """

    __slots__ = ('_values', '_frame_length', '_dimensions', '_bytes')

    def __init__(self, sec: int, nanosec: int, frame_id: str, obj: WireObject) -> None:
        """Keep the values in format order; nothing is packed until an array asks."""
        if len(obj.dimensions) > 3:
            raise ValueError(f'{len(obj.dimensions)} shape dimensions (at most 3)')
        frame = frame_id.encode()
        self._frame_length = len(frame)
        self._dimensions = len(obj.dimensions)
        self._values = (sec, nanosec, len(frame) + 1, frame, obj.object_id,
                        obj.detection_level, obj.object_classified, *obj.pose, *obj.twist,
                        *obj.accel, 0, obj.shape_type, len(obj.dimensions), *obj.dimensions,
                        0, obj.classification, obj.classification_certainty,
                        obj.classification_age)
        self._bytes: Dict[int, bytes] = {}

    def at(self, offset: int) -> bytes:
        """Return the bytes of the object written at body offset ``offset`` (4-aligned)."""
        phase = offset % 8
        data = self._bytes.get(phase)
        if data is None:
            data = _object_struct(phase, self._frame_length, self._dimensions).pack(
                *self._values)
            self._bytes[phase] = data
        return data


def serialize_object_array(sec: int, nanosec: int, frame_id: str,
                           objects: Sequence[EncodedObject]) -> bytes:
    """Serialize a derived_object_msgs/ObjectArray, as rclpy's `serialize_message` does."""
    frame = frame_id.encode()
    out = bytearray(ENCAPSULATION)
    head = _array_head_struct(len(frame))
    out += head.pack(sec, nanosec, len(frame) + 1, frame, len(objects))
    for obj in objects:
        out += bytes((-len(out)) % 4)            # an Object starts 4-aligned (its header)
        out += obj.at(len(out) - 4)
    return bytes(out)


def serialize_vehicle_status(sec: int, nanosec: int, frame_id: str, velocity: float,
                             acceleration: Tuple[float, ...], orientation: Tuple[float, ...],
                             control: Tuple[float, float, float, bool, bool, int, bool],
                             control_stamp: Tuple[int, int] = (0, 0),
                             control_frame_id: str = '') -> bytes:
    """
    Serialize a carla_msgs/CarlaEgoVehicleStatus, as rclpy's `serialize_message` does.

    ``acceleration`` is linear x, y, z and angular x, y, z; ``orientation`` x, y, z, w;
    ``control`` throttle, steer, brake, hand_brake, reverse, gear, manual_gear_shift. The
    float32 fields are rounded to nearest as rclpy's C conversion does (a double outside
    float32's range raises OverflowError here; rclpy refuses it as well).
    """
    frame, control_frame = frame_id.encode(), control_frame_id.encode()
    return ENCAPSULATION + _status_struct(len(frame), len(control_frame)).pack(
        sec, nanosec, len(frame) + 1, frame, velocity, *acceleration, *orientation,
        control_stamp[0], control_stamp[1], len(control_frame) + 1, control_frame, *control)

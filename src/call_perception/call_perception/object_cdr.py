"""
The few fields perception uses of a serialized `derived_object_msgs/ObjectArray`, read raw.

rclpy builds a Python message per object (header, pose, twist, accel, polygon, shape: over a
dozen nested objects each), and perception reads five numbers of it. This reader walks the
CDR bytes (XCDR1, the encapsulation rclpy and every ROS 2 RMW use for these types) with
`struct` and returns those numbers as the same Python floats, so what is rendered from them
is bit for bit what the deserialised message gives. The layout is the message definition's
field order, each primitive aligned to its size counted from after the 4-byte encapsulation
header (OMG DDS-XTypes 1.3, 7.4.1 "Extended CDR (XCDR) version 1").

    ObjectArray: Header header, Object[] objects
    Object:      Header header, uint32 id, uint8 detection_level, bool object_classified,
                 Pose pose (7 float64), Twist twist (6 float64), Accel accel (6 float64),
                 Polygon polygon (Point32[]), SolidPrimitive shape (uint8 type,
                 float64[<=3] dimensions, Polygon polygon), uint8 classification,
                 uint8 classification_certainty, uint32 classification_age
    Header:      int32 sec, uint32 nanosec, string frame_id
"""
import struct
from typing import List, NamedTuple, Tuple

from call_common.xcdr1 import byte_order


class ObjectCdrError(ValueError):
    """The bytes are not a well-formed serialized ObjectArray."""


class RawObject(NamedTuple):
    """What perception reads of one derived_object_msgs/Object."""

    object_id: int
    x: float                    # pose.position
    y: float
    qx: float                   # pose.orientation
    qy: float
    qz: float
    qw: float
    dimensions: Tuple[float, ...]   # shape.dimensions (BOX: length, width, height)


_FORMATS = {order: tuple(struct.Struct(order + f) for f in ('iII', 'I', '7d')) for order in '<>'}
_DIMENSIONS = {(order, n): struct.Struct(order + f'{n}d') for order in '<>' for n in range(4)}


def read_object_array(raw: bytes) -> Tuple[int, int, List[RawObject]]:
    """
    Read (stamp sec, stamp nanosec, objects) of a serialized ObjectArray.

    ObjectCdrError if the bytes are malformed: a sequence or string that claims more bytes
    than are left, or a dimensions sequence of more than 3. Nothing is checked that the
    message definition does not bound (non-finite poses are the caller's check, as with a
    deserialised message). Bytes after the
    last field are ignored: DDS pads samples, and Fast DDS's `rmw_serialize` returns its size
    estimate, which can exceed the message.
    """
    order = byte_order(raw, ObjectCdrError)
    head, uint, pose7 = _FORMATS[order]
    body = memoryview(raw)[4:]
    end = len(body)
    try:
        sec, nanosec, size = head.unpack_from(body, 0)
        offset = 12 + size                              # frame_id, NUL included
        offset += (-offset) % 4
        count, = uint.unpack_from(body, offset)
        offset += 4
        objects = []
        for _ in range(count):
            offset += (-offset) % 4
            size, = uint.unpack_from(body, offset + 8)  # header: sec, nanosec, frame_id
            offset += 12 + size
            offset += (-offset) % 4
            object_id, = uint.unpack_from(body, offset)
            offset += 6                                 # id, detection_level, classified
            offset += (-offset) % 8
            x, y, _, qx, qy, qz, qw = pose7.unpack_from(body, offset)
            offset += 8 * 19                            # pose 7, twist 6, accel 6
            points, = uint.unpack_from(body, offset)    # polygon (aligned: offset % 8 == 0)
            offset += 4 + 12 * points
            offset += 1                                 # shape.type
            offset += (-offset) % 4
            n, = uint.unpack_from(body, offset)
            offset += 4
            if n > 3:
                raise ObjectCdrError(f'object {object_id}: {n} shape dimensions (at most 3)')
            if n:
                offset += (-offset) % 8
                dimensions = _DIMENSIONS[order, n].unpack_from(body, offset)
                offset += 8 * n
            else:
                dimensions = ()
            offset += (-offset) % 4
            points, = uint.unpack_from(body, offset)    # shape.polygon
            offset += 4 + 12 * points
            offset += 2                                 # classification, certainty
            offset += (-offset) % 4
            offset += 4                                 # classification_age
            if offset > end:
                raise ObjectCdrError(f'object {object_id} overruns the message')
            objects.append(RawObject(object_id, x, y, qx, qy, qz, qw, dimensions))
    except struct.error as error:
        raise ObjectCdrError(f'truncated ObjectArray: {error}') from None
    return sec, nanosec, objects

"""The simulator's CDR writers against rclpy's `serialize_message` of the typed message."""
import math
import random

from call_sim.bridge_cdr import (EncodedObject, serialize_object_array,
                                 serialize_vehicle_status, WireObject)
from carla_msgs.msg import CarlaEgoVehicleControl, CarlaEgoVehicleStatus
from derived_object_msgs.msg import Object, ObjectArray
import pytest
from wire_compare import assert_serializes_as

SPECIAL = (math.nan, -math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, 1e-40)


def _value(rng: random.Random) -> float:
    """Return a double in float32's range, now and then a non-finite, signed zero or tiny one."""
    return rng.choice(SPECIAL) if rng.random() < 0.1 else rng.uniform(-1e4, 1e4)


def _stamp(rng: random.Random):
    return rng.randrange(-2**31, 2**31), rng.randrange(10**9)


def _frame(rng: random.Random) -> str:
    return 'map/odom_x'[:rng.randrange(11)]


def _typed_status(sec, nanosec, frame_id, velocity, acceleration, orientation, control,
                  control_stamp, control_frame_id) -> CarlaEgoVehicleStatus:
    msg = CarlaEgoVehicleStatus(velocity=velocity)
    msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id = sec, nanosec, \
        frame_id
    a = msg.acceleration
    a.linear.x, a.linear.y, a.linear.z, a.angular.x, a.angular.y, a.angular.z = acceleration
    q = msg.orientation
    q.x, q.y, q.z, q.w = orientation
    throttle, steer, brake, hand_brake, reverse, gear, manual = control
    msg.control = CarlaEgoVehicleControl(throttle=throttle, steer=steer, brake=brake,
                                         hand_brake=hand_brake, reverse=reverse, gear=gear,
                                         manual_gear_shift=manual)
    msg.control.header.stamp.sec, msg.control.header.stamp.nanosec = control_stamp
    msg.control.header.frame_id = control_frame_id
    return msg


def _random_object(rng: random.Random) -> WireObject:
    return WireObject(
        object_id=rng.randrange(2**32), detection_level=rng.randrange(256),
        object_classified=rng.random() < 0.5, pose=tuple(_value(rng) for _ in range(7)),
        twist=tuple(_value(rng) for _ in range(6)), accel=tuple(_value(rng) for _ in range(6)),
        shape_type=rng.randrange(256),
        dimensions=tuple(_value(rng) for _ in range(rng.randrange(4))),
        classification=rng.randrange(256), classification_certainty=rng.randrange(256),
        classification_age=rng.randrange(2**32))


def _typed_object(sec, nanosec, frame_id, fields: WireObject) -> Object:
    obj = Object(id=fields.object_id, detection_level=fields.detection_level,
                 object_classified=fields.object_classified,
                 classification=fields.classification,
                 classification_certainty=fields.classification_certainty,
                 classification_age=fields.classification_age)
    obj.header.stamp.sec, obj.header.stamp.nanosec, obj.header.frame_id = sec, nanosec, \
        frame_id
    p, q = obj.pose.position, obj.pose.orientation
    p.x, p.y, p.z, q.x, q.y, q.z, q.w = fields.pose
    for twist, values in ((obj.twist, fields.twist), (obj.accel, fields.accel)):
        twist.linear.x, twist.linear.y, twist.linear.z = values[:3]
        twist.angular.x, twist.angular.y, twist.angular.z = values[3:]
    obj.shape.type = fields.shape_type
    obj.shape.dimensions = list(fields.dimensions)
    return obj


def test_vehicle_status_is_the_message_rclpy_serializes():
    """Statuses of every string length and value (NaN, inf, -0.0, float32 denormals)."""
    rng = random.Random(5)
    for _ in range(500):
        sec, nanosec = _stamp(rng)
        frame_id, control_frame_id = _frame(rng), _frame(rng)
        velocity = _value(rng)
        acceleration = tuple(_value(rng) for _ in range(6))
        orientation = tuple(_value(rng) for _ in range(4))
        control = (_value(rng), _value(rng), _value(rng), rng.random() < 0.5,
                   rng.random() < 0.5, rng.randrange(-2**31, 2**31), rng.random() < 0.5)
        control_stamp = _stamp(rng)
        ours = serialize_vehicle_status(sec, nanosec, frame_id, velocity, acceleration,
                                        orientation, control, control_stamp, control_frame_id)
        assert_serializes_as(ours, _typed_status(sec, nanosec, frame_id, velocity,
                                                 acceleration, orientation, control,
                                                 control_stamp, control_frame_id))


def test_object_arrays_are_the_messages_rclpy_serializes():
    """Arrays of 0-12 objects drawn from one pool: each encoding reused at any alignment."""
    rng = random.Random(9)
    for _ in range(40):
        sec, nanosec = _stamp(rng)
        pool = []
        for _ in range(rng.randrange(1, 8)):
            frame_id, fields = _frame(rng), _random_object(rng)
            pool.append((EncodedObject(sec, nanosec, frame_id, fields),
                         _typed_object(sec, nanosec, frame_id, fields)))
        for _ in range(10):
            frame_id = _frame(rng)
            chosen = [rng.choice(pool) for _ in range(rng.randrange(13))]
            ours = serialize_object_array(sec, nanosec, frame_id, [e for e, _ in chosen])
            typed = ObjectArray(objects=[o for _, o in chosen])
            typed.header.stamp.sec, typed.header.stamp.nanosec = sec, nanosec
            typed.header.frame_id = frame_id
            # an object without dimensions: rclpy's length is an over-estimate (wire_compare)
            exact = all(len(o.shape.dimensions) for _, o in chosen)
            assert_serializes_as(ours, typed, exact_length=exact)


def test_more_than_three_dimensions_are_refused():
    """A fourth shape dimension (SolidPrimitive bounds them to 3) is refused, not written."""
    fields = _random_object(random.Random(1))._replace(dimensions=(1.0, 2.0, 3.0, 4.0))
    with pytest.raises(ValueError):
        EncodedObject(0, 0, 'map', fields)

"""The raw ObjectArray reader against rclpy's own (de)serialisation, over real DDS too."""
import random
import struct
import time

from call_perception.object_cdr import ObjectCdrError, read_object_array
from call_perception.perception_node import box_from_fields, fields_of, PerceptionNode
from derived_object_msgs.msg import Object, ObjectArray
from geometry_msgs.msg import Point32
import pytest
import rclpy
from rclpy.parameter import Parameter
from rclpy.serialization import deserialize_message, serialize_message


def random_array(rng: random.Random) -> ObjectArray:
    """Build an ObjectArray whose variable-size parts vary: strings, polygons, dimensions."""
    msg = ObjectArray()
    msg.header.stamp.sec = rng.randrange(-2**31, 2**31)
    msg.header.stamp.nanosec = rng.randrange(10**9)
    msg.header.frame_id = 'map'[:rng.randrange(4)]
    for _ in range(rng.randrange(12)):
        obj = Object()
        obj.header.frame_id = 'map/x'[:rng.randrange(6)]
        obj.header.stamp.sec = rng.randrange(2**31)
        obj.id = rng.randrange(2**32)
        obj.detection_level = rng.randrange(2)
        obj.object_classified = rng.random() < 0.5
        p, q = obj.pose.position, obj.pose.orientation
        p.x, p.y, p.z = (rng.uniform(-1e4, 1e4) for _ in range(3))
        q.x, q.y, q.z, q.w = (rng.uniform(-1.0, 1.0) for _ in range(4))
        obj.twist.linear.x, obj.accel.angular.z = rng.random(), rng.random()
        obj.polygon.points = [Point32(x=rng.random()) for _ in range(rng.randrange(4))]
        obj.shape.type = rng.randrange(1, 6)
        obj.shape.dimensions = [rng.uniform(-1.0, 20.0) for _ in range(rng.randrange(4))]
        obj.shape.polygon.points = [Point32(y=rng.random()) for _ in range(rng.randrange(3))]
        obj.classification = rng.randrange(256)
        obj.classification_certainty = rng.randrange(256)
        obj.classification_age = rng.randrange(2**32)
        msg.objects.append(obj)
    return msg


def assert_read_equals(raw: bytes, msg: ObjectArray) -> None:
    """Check that the raw read gives the stamp and, per object, the fields perception uses."""
    sec, nanosec, objects = read_object_array(raw)
    assert (sec, nanosec) == (msg.header.stamp.sec, msg.header.stamp.nanosec)
    assert len(objects) == len(msg.objects)
    for read, obj in zip(objects, msg.objects):
        expected = fields_of(obj)
        assert read == expected
        for a, b in zip(read[1:7], expected[1:7]):      # the same doubles, bit for bit
            assert struct.pack('<d', a) == struct.pack('<d', b)
        try:
            box = box_from_fields(expected)
        except ValueError as error:
            with pytest.raises(ValueError, match=str(error)):
                box_from_fields(read)
        else:
            assert box_from_fields(read) == box


def test_raw_read_equals_the_deserialised_message():
    """Messages of every layout: the raw read equals rclpy's deserialised fields."""
    rng = random.Random(7)
    for _ in range(400):
        raw = serialize_message(random_array(rng))
        assert_read_equals(raw, deserialize_message(raw, ObjectArray))


def test_raw_read_of_samples_taken_over_dds():
    """Samples as a raw subscription gets them (padded by the DDS layer) read as published."""
    rng = random.Random(3)
    sent = [random_array(rng) for _ in range(30)]
    received = []
    rclpy.init()
    try:
        node = rclpy.create_node('object_cdr_test')
        sub = node.create_subscription(ObjectArray, 'objects', received.append, 50, raw=True)
        pub = node.create_publisher(ObjectArray, 'objects', 50)
        deadline = time.monotonic() + 10.0
        while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
        for msg in sent:
            pub.publish(msg)
        while len(received) < len(sent) and time.monotonic() < deadline + 10.0:
            rclpy.spin_once(node, timeout_sec=0.05)
        node.destroy_subscription(sub)
        node.destroy_node()
    finally:
        rclpy.shutdown()
    assert len(received) == len(sent)
    for raw, msg in zip(received, sent):
        assert isinstance(raw, bytes)
        assert_read_equals(raw, msg)
        assert_read_equals(raw, deserialize_message(raw, ObjectArray))


def test_malformed_bytes_raise_the_reader_error_only():
    """Bad bytes raise ObjectCdrError, which the node counts as a dropped message."""
    rng = random.Random(11)
    msg = random_array(rng)
    while len(msg.objects) < 3:
        msg = random_array(rng)
    raw = serialize_message(msg)
    with pytest.raises(ObjectCdrError):
        read_object_array(b'\x07\x01\x00\x00' + raw[4:])         # no encapsulation header
    with pytest.raises(ObjectCdrError):
        read_object_array(raw[:len(raw) // 2])                    # cut in an object
    count_at = 4 + 12 + ((len(msg.header.frame_id) + 1 + 3) // 4) * 4
    assert struct.unpack_from('<I', raw, count_at)[0] == len(msg.objects)
    with pytest.raises(ObjectCdrError):
        read_object_array(raw[:count_at] + struct.pack('<I', 2**31) + raw[count_at + 4:])
    for _ in range(3000):                                         # flipped bytes: no crash
        mutated = bytearray(raw)
        for _ in range(rng.randrange(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        try:
            read_object_array(bytes(mutated))
        except ObjectCdrError:
            pass


def test_node_takes_raw_bytes_as_the_typed_message_and_counts_bad_ones():
    """The raw callback keeps the typed callback's boxes and stamp; bad bytes are counted."""
    rng = random.Random(5)
    rclpy.init()
    try:
        node = PerceptionNode(parameter_overrides=[Parameter('role_name', value='hero7')])
        for _ in range(50):
            msg = random_array(rng)
            node.on_objects(msg)
            typed = (node.objects, node.objects_stamp, dict(node.counts))
            node.on_objects_raw(serialize_message(msg))
            assert (node.objects, node.objects_stamp) == typed[:2]
            dropped = node.counts['malformed_objects'] - typed[2]['malformed_objects']
            assert dropped == len(msg.objects) - len(node.objects)
        before = (node.objects, node.objects_stamp, node.counts['malformed_objects'])
        msg.objects.append(Object())
        node.on_objects_raw(serialize_message(msg)[:60])   # cut in its first object
        assert node.counts['malformed_objects'] == before[2] + 1
        assert (node.objects, node.objects_stamp) == before[:2]
        node.destroy_node()
    finally:
        rclpy.shutdown()

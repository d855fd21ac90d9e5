"""The raw Odometry and Path readers against rclpy's own (de)serialisation, over real DDS too."""
import math
import random
import struct
import time

from builtin_interfaces.msg import Time
from call_common.nav_cdr import (NavCdrError, odometry_fields, path_xy, read_odometry,
                                 read_path_xy, serialize_odometry, serialize_path_xy)
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry, Path
import numpy as np
import pytest
import rclpy
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Header

SPECIAL = (math.nan, math.inf, -math.inf, -0.0, 5e-324)


def _value(rng: random.Random) -> float:
    """Return a double of any magnitude, now and then a non-finite, signed zero or tiny one."""
    return rng.choice(SPECIAL) if rng.random() < 0.05 else rng.uniform(-1e4, 1e4)


def random_odometry(rng: random.Random) -> Odometry:
    """Build an Odometry whose strings (and so the alignment of what follows) vary."""
    msg = Odometry()
    msg.header.stamp.sec = rng.randrange(-2**31, 2**31)
    msg.header.stamp.nanosec = rng.randrange(10**9)
    msg.header.frame_id = 'map/odom'[:rng.randrange(9)]
    msg.child_frame_id = 'hero12/base'[:rng.randrange(12)]
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    p.x, p.y, p.z = (_value(rng) for _ in range(3))
    q.x, q.y, q.z, q.w = (_value(rng) for _ in range(4))
    msg.pose.covariance = [rng.random() for _ in range(36)]
    v, w = msg.twist.twist.linear, msg.twist.twist.angular
    v.x, v.y, v.z, w.x, w.y, w.z = (_value(rng) for _ in range(6))
    msg.twist.covariance = [rng.random() for _ in range(36)]
    return msg


def random_path(rng: random.Random) -> Path:
    """Build a Path of 0-30 poses whose frame ids (and so their alignment) vary."""
    msg = Path()
    msg.header.stamp.sec = rng.randrange(-2**31, 2**31)
    msg.header.stamp.nanosec = rng.randrange(10**9)
    msg.header.frame_id = 'map'[:rng.randrange(4)]
    for _ in range(rng.randrange(31)):
        pose = PoseStamped()
        pose.header.frame_id = 'map/x'[:rng.randrange(6)]
        pose.header.stamp.sec = rng.randrange(2**31)
        p, q = pose.pose.position, pose.pose.orientation
        p.x, p.y, p.z = (_value(rng) for _ in range(3))
        q.x, q.y, q.z, q.w = (rng.random() for _ in range(4))
        msg.poses.append(pose)
    return msg


def _bits(values) -> list:
    return [struct.pack('<d', v) for v in values]


def assert_odometry_equals(raw: bytes, msg: Odometry) -> None:
    """Check that the raw read gives the stamp and doubles, bit for bit (NaN too)."""
    read, expected = read_odometry(raw), odometry_fields(msg)
    assert read[:2] == expected[:2] == (msg.header.stamp.sec, msg.header.stamp.nanosec)
    assert _bits(read[2:]) == _bits(expected[2:])
    assert read.stamp_ns == read.sec * 10**9 + read.nanosec
    assert read.stamp_seconds == msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def assert_path_equals(raw: bytes, msg: Path) -> None:
    """Check that the raw read gives the stamp and (M, 2) x, y array, bit for bit."""
    sec, nanosec, points = read_path_xy(raw)
    expected = path_xy(msg)
    assert (sec, nanosec) == (msg.header.stamp.sec, msg.header.stamp.nanosec)
    assert points.dtype == expected.dtype == np.float64
    assert points.shape == expected.shape == (len(msg.poses), 2)
    assert points.tobytes() == expected.tobytes()


def test_raw_reads_equal_the_deserialised_messages():
    """Messages of every layout: the raw reads equal rclpy's deserialised fields."""
    rng = random.Random(7)
    for _ in range(400):
        raw = serialize_message(random_odometry(rng))
        assert_odometry_equals(raw, deserialize_message(raw, Odometry))
        raw = serialize_message(random_path(rng))
        assert_path_equals(raw, deserialize_message(raw, Path))


def test_raw_reads_of_samples_taken_over_dds():
    """Samples as a raw subscription gets them (padded by the DDS layer) read as published."""
    rng = random.Random(3)
    odometries = [random_odometry(rng) for _ in range(30)]
    paths = [random_path(rng) for _ in range(30)]
    got_odometry, got_paths = [], []
    rclpy.init()
    try:
        node = rclpy.create_node('nav_cdr_test')
        subs = [node.create_subscription(Odometry, 'odometry', got_odometry.append, 50,
                                         raw=True),
                node.create_subscription(Path, 'plan', got_paths.append, 50, raw=True)]
        odometry_pub = node.create_publisher(Odometry, 'odometry', 50)
        path_pub = node.create_publisher(Path, 'plan', 50)
        deadline = time.monotonic() + 10.0
        while (odometry_pub.get_subscription_count() < 1
               or path_pub.get_subscription_count() < 1) and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
        for odometry, path in zip(odometries, paths):
            odometry_pub.publish(odometry)
            path_pub.publish(path)
        while (len(got_odometry) < len(odometries) or len(got_paths) < len(paths)) \
                and time.monotonic() < deadline + 10.0:
            rclpy.spin_once(node, timeout_sec=0.05)
        for sub in subs:
            node.destroy_subscription(sub)
        node.destroy_node()
    finally:
        rclpy.shutdown()
    assert (len(got_odometry), len(got_paths)) == (len(odometries), len(paths))
    for raw, msg in zip(got_odometry, odometries):
        assert isinstance(raw, bytes)
        assert_odometry_equals(raw, msg)
        assert_odometry_equals(raw, deserialize_message(raw, Odometry))
    for raw, msg in zip(got_paths, paths):
        assert isinstance(raw, bytes)
        assert_path_equals(raw, msg)
        assert_path_equals(raw, deserialize_message(raw, Path))


def test_malformed_bytes_raise_the_reader_error_only():
    """Bad bytes raise NavCdrError, which the nodes count as a dropped message."""
    rng = random.Random(11)
    odometry = serialize_message(random_odometry(rng))
    path = random_path(rng)
    while len(path.poses) < 3:
        path = random_path(rng)
    raw_path = serialize_message(path)
    for raw, read in ((odometry, read_odometry), (raw_path, read_path_xy)):
        with pytest.raises(NavCdrError):
            read(b'\x07\x01\x00\x00' + raw[4:])                  # no encapsulation header
        with pytest.raises(NavCdrError):
            read(raw[:len(raw) - 70])                             # cut in the last pose
        with pytest.raises(NavCdrError):
            read(raw[:3])
    count_at = 4 + 12 + ((len(path.header.frame_id) + 1 + 3) // 4) * 4
    assert struct.unpack_from('<I', raw_path, count_at)[0] == len(path.poses)
    with pytest.raises(NavCdrError):
        read_path_xy(raw_path[:count_at] + struct.pack('<I', 2**31) + raw_path[count_at + 4:])
    for raw, read in ((odometry, read_odometry), (raw_path, read_path_xy)):
        for _ in range(3000):                                     # flipped bytes: no crash
            mutated = bytearray(raw)
            for _ in range(rng.randrange(1, 4)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            try:
                read(bytes(mutated))
            except NavCdrError:
                pass


def test_serialized_path_is_the_message_rclpy_serializes():
    """The planner's Path bytes: rclpy's length, message and doubles (padding bytes aside)."""
    rng = random.Random(13)
    for _ in range(300):
        stamp = Time(sec=rng.randrange(-2**31, 2**31), nanosec=rng.randrange(10**9))
        frame_id = 'map/odom'[:rng.randrange(9)]
        points = np.array([[_value(rng), _value(rng)] for _ in range(rng.randrange(25))],
                          dtype=np.float64).reshape(-1, 2)
        header = Header(stamp=stamp, frame_id=frame_id)
        msg = Path(header=header)
        for x, y in points:
            pose = PoseStamped(header=header)
            pose.pose.position.x, pose.pose.position.y = float(x), float(y)
            pose.pose.orientation.w = 1.0
            msg.poses.append(pose)
        ours = serialize_path_xy(stamp.sec, stamp.nanosec, frame_id, points)
        theirs = serialize_message(msg)
        # Fast CDR leaves its alignment padding uninitialised: compare all but those bytes
        assert len(ours) == len(theirs)
        back = deserialize_message(ours, Path)
        assert back.header == msg.header
        assert len(back.poses) == len(msg.poses)
        for got, sent in zip(back.poses, msg.poses):
            assert got.header == sent.header
            assert _bits([got.pose.position.x, got.pose.position.y, got.pose.position.z]) == \
                _bits([sent.pose.position.x, sent.pose.position.y, sent.pose.position.z])
            q, r = got.pose.orientation, sent.pose.orientation
            assert _bits([q.x, q.y, q.z, q.w]) == _bits([r.x, r.y, r.z, r.w])
        assert read_path_xy(ours)[2].tobytes() == read_path_xy(theirs)[2].tobytes()


def test_serialized_odometry_is_the_message_rclpy_serializes():
    """The simulator's Odometry bytes: rclpy's bytes (padding aside) and fields, bit for bit."""
    rng = random.Random(17)
    for _ in range(500):
        msg = random_odometry(rng)
        msg.pose.covariance = [0.0] * 36
        msg.twist.covariance = [0.0] * 36
        read = odometry_fields(msg)
        ours = serialize_odometry(read.sec, read.nanosec, msg.header.frame_id,
                                  msg.child_frame_id, pose=read[2:9], twist=read[9:])
        theirs = serialize_message(msg)
        assert len(ours) == len(theirs)
        # Fast CDR leaves its alignment padding uninitialised: there, and only there, ours
        # (zero) may differ; a value written wrong or misplaced shows in the fields below
        assert all(a == b or a == 0 for a, b in zip(ours, theirs))
        back = deserialize_message(ours, Odometry)
        assert back.header == msg.header and back.child_frame_id == msg.child_frame_id
        assert_odometry_equals(ours, back)
        assert _bits(odometry_fields(back)[2:]) == _bits(read[2:])
        assert _bits(back.pose.covariance) == _bits(back.twist.covariance) == _bits([0.0] * 36)

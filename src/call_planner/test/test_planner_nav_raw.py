"""The planner's raw odometry and route callbacks keep what the typed callbacks keep."""
import math
import random

from call_common.msg_conversions import yaw_from_quaternion
from call_vehicle.carla_wire import float32
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry, Path
import rclpy
from rclpy.parameter import Parameter
from rclpy.serialization import serialize_message
from test_planner_node import _save_tiny_checkpoint


def _odometry(rng: random.Random, sec: int, bad: bool) -> Odometry:
    msg = Odometry()
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, rng.randrange(10**9)
    msg.header.frame_id, msg.child_frame_id = 'map', 'hero3'[:rng.randrange(6)]
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    p.x, p.y = rng.uniform(-500.0, 500.0), rng.uniform(-500.0, 500.0)
    q.z, q.w = rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0)
    v = msg.twist.twist.linear
    v.x, v.y = rng.uniform(-3.0, 20.0), rng.uniform(-3.0, 3.0)
    msg.twist.twist.angular.z = float('nan') if bad else rng.uniform(-1.0, 1.0)
    if bad and rng.random() < 0.5:
        v.y = float('inf')                      # dropped, not kept
    return msg


def _route(rng: random.Random) -> Path:
    msg = Path()
    msg.header.frame_id = 'map'
    for _ in range(rng.randrange(40)):
        pose = PoseStamped()
        pose.header.frame_id = 'map'[:rng.randrange(4)]
        pose.pose.position.x = rng.uniform(-500.0, 500.0)
        pose.pose.position.y = float('nan') if rng.random() < 0.1 else rng.uniform(-50.0, 50.0)
        msg.poses.append(pose)
    return msg


def _state(node) -> tuple:
    return (node.pose, node.speed, node.yaw_rate, dict(node.poses),
            dict(node.odometry_speeds), node.route.tobytes(), node.route.shape,
            dict(node.counts))


def test_raw_callbacks_keep_the_typed_callbacks_state_and_count_bad_bytes(tmp_path):
    """Two planners, one fed typed messages and one their bytes: the same state every step."""
    from call_planner.planner_node import PlannerNode
    path = str(tmp_path / 'tiny.pt')
    _save_tiny_checkpoint(path)
    rng = random.Random(9)
    rclpy.init()
    try:
        typed, raw = (PlannerNode(namespace=f'/{role}', parameter_overrides=[
            Parameter('checkpoint', value=path), Parameter('monitor_enabled', value=False),
            Parameter('role_name', value=role)]) for role in ('hero_typed', 'hero_raw'))
        for step in range(60):
            odometry = _odometry(rng, 100 + step, step % 8 == 5)
            typed.on_odometry(odometry)
            raw.on_odometry_raw(serialize_message(odometry))
            if step % 5 == 0:
                route = _route(rng)
                typed.on_route(route)
                raw.on_route_raw(serialize_message(route))
            assert _state(raw) == _state(typed)
            p, v = odometry.pose.pose.position, odometry.twist.twist.linear
            if math.isfinite(v.y):                      # kept: the message's own numbers
                q = odometry.pose.pose.orientation
                assert raw.pose == (p.x, p.y, yaw_from_quaternion(q))
                assert raw.speed == float32(math.hypot(v.x, v.y))
                wz = odometry.twist.twist.angular.z
                assert raw.yaw_rate == (wz if math.isfinite(wz) else 0.0)
        assert typed.counts['dropped'] > 0 and len(typed.poses) > 0
        before = _state(raw)
        raw.on_odometry_raw(serialize_message(odometry)[:-1])
        raw.on_route_raw(serialize_message(route)[:-1])
        after = _state(raw)
        assert after[-1]['dropped'] == before[-1]['dropped'] + 2
        assert after[:-1] == before[:-1]
        for node in (typed, raw):
            node.destroy_node()
    finally:
        rclpy.shutdown()

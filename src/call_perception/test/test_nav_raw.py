"""Perception's raw odometry, plan and route callbacks keep what the typed callbacks keep."""
import random

from call_perception.perception_node import PerceptionNode
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry, Path
import numpy as np
import rclpy
from rclpy.parameter import Parameter
from rclpy.serialization import serialize_message


def _path(rng: random.Random, sec: int, bad: bool) -> Path:
    msg = Path()
    msg.header.stamp.sec, msg.header.frame_id = sec, 'map'
    msg.header.stamp.nanosec = rng.randrange(10**9)
    for _ in range(rng.randrange(15)):
        pose = PoseStamped()
        pose.header.frame_id = 'map'[:rng.randrange(4)]
        pose.pose.position.x = rng.uniform(-500.0, 500.0)
        pose.pose.position.y = rng.uniform(-500.0, 500.0)
        msg.poses.append(pose)
    if bad and msg.poses:
        msg.poses[-1].pose.position.y = float('nan')
    return msg


def _odometry(rng: random.Random, sec: int) -> Odometry:
    msg = Odometry()
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, rng.randrange(10**9)
    msg.header.frame_id, msg.child_frame_id = 'map', 'hero3'[:rng.randrange(6)]
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    p.x, p.y = rng.uniform(-500.0, 500.0), rng.uniform(-500.0, 500.0)
    q.z, q.w = rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0)
    msg.twist.twist.linear.x = rng.uniform(0.0, 20.0)
    return msg


def _state(node: PerceptionNode) -> tuple:
    """Return what the callbacks leave behind (arrays by their bytes)."""
    return (node.plan.tobytes(), node.plan.shape, node.route.tobytes(), node.route.shape,
            node.route_received, {k: v.tobytes() for k, v in node.plans.items()},
            node.pending_odometry, node.last_odometry_stamp, dict(node.step_before.items()),
            dict(node.counts))


def test_raw_callbacks_keep_the_typed_callbacks_state_and_count_bad_bytes():
    """Two nodes, one fed typed messages and one their bytes: the same state every step."""
    rng = random.Random(5)
    rclpy.init()
    try:
        typed, raw = (PerceptionNode(parameter_overrides=[Parameter('role_name', value=role)])
                      for role in ('hero3', 'hero4'))
        for step in range(60):
            sec = 100 + step
            route, plan = _path(rng, sec, step % 9 == 4), _path(rng, sec, step % 7 == 3)
            odometry = _odometry(rng, sec)
            typed.on_route(route)
            raw.on_route_raw(serialize_message(route))
            typed.on_plan(plan)
            raw.on_plan_raw(serialize_message(plan))
            typed.on_odometry(odometry)
            raw.on_odometry_raw(serialize_message(odometry))
            assert _state(raw) == _state(typed)
            if not step % 7 == 3:                       # the message's own stamp and points
                stamp = plan.header.stamp.sec * 10**9 + plan.header.stamp.nanosec
                assert np.array_equal(raw.plans[stamp], [(p.pose.position.x, p.pose.position.y)
                                                         for p in plan.poses] or
                                      np.zeros((0, 2)))
        assert typed.counts['malformed_paths'] > 0          # the NaN paths were dropped
        before = _state(raw)
        raw.on_odometry_raw(serialize_message(odometry)[:100])
        raw.on_plan_raw(serialize_message(plan)[:-1])
        raw.on_route_raw(b'\x07\x00\x00\x00')
        after = _state(raw)
        assert after[-1]['malformed_odometry'] == before[-1]['malformed_odometry'] + 1
        assert after[-1]['malformed_paths'] == before[-1]['malformed_paths'] + 2
        assert after[:-1] == before[:-1]
        assert np.array_equal(raw.plan, typed.plan)
        for node in (typed, raw):
            node.destroy_node()
    finally:
        rclpy.shutdown()

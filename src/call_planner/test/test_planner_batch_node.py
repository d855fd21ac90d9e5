"""Planner nodes composed in one process plan the look-aheads of one tick as one batch."""
import time

from builtin_interfaces.msg import Time
from call_msgs.msg import LatentState
from carla_msgs.msg import CarlaEgoVehicleControl
from nav_msgs.msg import Odometry
import numpy as np
import rclpy
from rclpy.parameter import Parameter
from test_planner_node import _save_tiny_checkpoint

WAIT_S = 60.0


def _odometry(stamp: Time, x: float) -> Odometry:
    odom = Odometry()
    odom.header.stamp = stamp
    odom.header.frame_id = 'map'
    odom.pose.pose.position.x = x
    odom.pose.pose.orientation.w = 1.0
    odom.twist.twist.linear.x = 8.0
    return odom


def _latent(stamp: Time, deter: int, seed: int) -> LatentState:
    rng = np.random.default_rng(seed)
    msg = LatentState()
    msg.header.stamp = stamp
    msg.z_indices = rng.integers(0, 32, 32).astype(np.uint8).tobytes()
    msg.h = rng.standard_normal(deter).astype(np.float32).tolist()
    msg.valid = True
    return msg


def test_composed_planners_share_one_look_ahead_batch(tmp_path):
    """
    Two planner nodes on one model: states handed in before the flush timer, one batch.

    The two latent-state callbacks run back to back, as the events executor runs the states
    a container's world-model batch publishes; the timer then plans both and each node
    commands its own vehicle with its state's stamp.
    """
    from call_planner.planner_node import PlannerNode
    path = str(tmp_path / 'tiny.pt')
    deter = _save_tiny_checkpoint(path)
    roles = ['hero_plan_a', 'hero_plan_b']
    # without the TTC monitor: no BEV needed to plan
    shared = {'checkpoint': path, 'monitor_enabled': False}
    context = rclpy.Context()
    rclpy.init(context=context)
    nodes = []
    for role in roles:
        values = {**shared, 'role_name': role}
        nodes.append(PlannerNode(context=context, namespace=f'/{role}', parameter_overrides=[
            Parameter(name, value=value) for name, value in values.items()]))
    probe = rclpy.create_node('planner_batch_probe', context=context)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    try:
        batcher = nodes[0].batch.batcher
        assert nodes[1].batch.batcher is batcher and batcher.members == 2
        controls = {role: [] for role in roles}
        for role in roles:
            probe.create_subscription(CarlaEgoVehicleControl,
                                      f'/carla/{role}/vehicle_control_cmd',
                                      controls[role].append, 10)
        for node in nodes + [probe]:
            executor.add_node(node)
        stamp = Time(sec=100, nanosec=0)
        for i, node in enumerate(nodes):
            node.on_odometry(_odometry(stamp, 10.0 * i))
        for i, node in enumerate(nodes):
            node.on_latent(_latent(stamp, deter, i))
        assert len(batcher.pending) == 2 and batcher.stats['batches'] == 0  # queued
        assert all(node.batch.waiting for node in nodes)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and not all(controls.values()):
            executor.spin_once(timeout_sec=0.05)
        assert batcher.stats == {'batches': 1, 'items': 2, 'largest': 2}
        for role, node in zip(roles, nodes):
            assert [c.header.stamp.sec for c in controls[role]] == [100]
            assert node.counts['planned'] == 1 and node.counts['stops'] == 0
        # the kept plan runs K steps without a look-ahead: the next state is answered at once
        stamp = Time(sec=100, nanosec=100_000_000)
        for i, node in enumerate(nodes):
            node.on_odometry(_odometry(stamp, 10.0 * i + 0.8))
            node.on_latent(_latent(stamp, deter, 10 + i))
        assert not batcher.pending and all(node.counts['planned'] == 2 for node in nodes)
    finally:
        executor.shutdown()
        probe.destroy_node()
        for node in nodes:          # each leaves the batcher
            node.destroy_node()
        rclpy.shutdown(context=context)
    assert batcher.members == 0

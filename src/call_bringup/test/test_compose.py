"""A container's sim-time nodes share one /clock subscription and still all follow /clock."""
import time

from builtin_interfaces.msg import Time
from call_bringup.compose import share_sim_clock
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock


def _clock_subscribers(node: Node, names: set) -> list:
    return [info.node_name for info in node.get_subscriptions_info_by_topic('/clock')
            if info.node_name in names]


def test_one_clock_subscription_drives_every_sim_time_node():
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    try:
        sim_time = [Node(f'compose_sim_time_{i}', context=context, parameter_overrides=[
            Parameter('use_sim_time', value=True)]) for i in range(3)]
        wall_time = Node('compose_wall_time', context=context)
        source = Node('compose_clock_source', context=context)
        names = {node.get_name() for node in sim_time + [wall_time]}
        assert sorted(_clock_subscribers(source, names)) == sorted(n.get_name() for n in sim_time)

        assert share_sim_clock(sim_time + [wall_time]) == 2
        assert _clock_subscribers(source, names) == ['compose_sim_time_0']

        for node in sim_time + [wall_time, source]:
            executor.add_node(node)
        publisher = source.create_publisher(Clock, '/clock', 10)
        stamp = Time(sec=42, nanosec=5)
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline and any(
                node.get_clock().now().nanoseconds != 42_000_000_005 for node in sim_time):
            publisher.publish(Clock(clock=stamp))
            executor.spin_once(timeout_sec=0.05)
        assert [node.get_clock().now().nanoseconds for node in sim_time] == [42_000_000_005] * 3
        assert wall_time.get_clock().now().nanoseconds > 1_000_000_000_000_000_000  # wall time
    finally:
        executor.shutdown()
        rclpy.try_shutdown(context=context)

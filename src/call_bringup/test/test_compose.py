"""A container takes each topic once: merged subscriptions still reach every callback."""
import os
import time

from builtin_interfaces.msg import Time
from call_bringup.compose import make_executor, share_subscriptions, without_message_info
from call_common.draining import drain, draining_of
import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from std_msgs.msg import String


def _subscribers(node: Node, topic: str, names: set) -> list:
    return sorted(info.node_name for info in node.get_subscriptions_info_by_topic(topic)
                  if info.node_name in names)


def test_equal_subscriptions_are_merged_and_every_callback_still_gets_each_message():
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = make_executor(context)   # the container's: events executor where rclpy has it
    try:
        sim_time = [Node(f'compose_test_{i}', context=context, parameter_overrides=[
            Parameter('use_sim_time', value=True)]) for i in range(3)]
        wall_time = Node('compose_test_wall', context=context)
        nodes = sim_time + [wall_time]
        names = {node.get_name() for node in nodes}
        received: dict = {name: [] for name in names}
        for node in nodes:
            node.create_subscription(String, '/compose_test/topic',
                                     received[node.get_name()].append, 10)
        odd = []         # same topic, other QoS (depth): a subscription of its own
        wall_time.create_subscription(String, '/compose_test/topic', odd.append, 3)
        source = Node('compose_test_source', context=context)
        assert _subscribers(source, '/clock', names) == sorted(n.get_name() for n in sim_time)
        assert len(_subscribers(source, '/compose_test/topic', names)) == 5

        assert share_subscriptions(nodes) == 2 + 3       # /clock: 3 -> 1, topic: 4 -> 1
        assert _subscribers(source, '/clock', names) == ['compose_test_0']
        assert _subscribers(source, '/compose_test/topic', names) == [
            'compose_test_0', 'compose_test_wall']

        for node in nodes + [source]:
            executor.add_node(node)
        clock_pub = source.create_publisher(Clock, '/clock', 10)
        topic_pub = source.create_publisher(String, '/compose_test/topic', 10)
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline and not (
                all(received.values()) and odd and all(
                    node.get_clock().now().nanoseconds == 42_000_000_005 for node in sim_time)):
            clock_pub.publish(Clock(clock=Time(sec=42, nanosec=5)))
            topic_pub.publish(String(data='step'))
            executor.spin_once(timeout_sec=0.05)
        assert [node.get_clock().now().nanoseconds for node in sim_time] == [42_000_000_005] * 3
        assert wall_time.get_clock().now().nanoseconds > 1_000_000_000_000_000_000  # wall time
        assert all(messages and messages[0].data == 'step' for messages in received.values())
        assert odd and odd[0].data == 'step'
    finally:
        executor.shutdown()
        rclpy.try_shutdown(context=context)


def test_raw_subscriptions_that_take_message_info_are_merged_and_served():
    """The comm node's V2V callbacks take (raw bytes, info): merged, each still gets each."""
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = make_executor(context)
    try:
        nodes = [Node(f'compose_info_{i}', context=context) for i in range(2)]
        received: dict = {node.get_name(): [] for node in nodes}
        plain = []
        for node in nodes:
            node.create_subscription(
                String, '/compose_test/raw',
                lambda msg, info, got=received[node.get_name()]: got.append((msg, info)),
                10, raw=True)
        nodes[1].create_subscription(String, '/compose_test/raw', plain.append, 10, raw=True)
        assert share_subscriptions(nodes) == 2
        without_message_info(nodes)
        source = Node('compose_info_source', context=context)
        for node in nodes + [source]:
            executor.add_node(node)
        pub = source.create_publisher(String, '/compose_test/raw', 10)
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline and not (all(received.values()) and plain):
            pub.publish(String(data='v2v'))
            executor.spin_once(timeout_sec=0.05)
        for got in received.values():
            assert got and isinstance(got[0][0], bytes) and b'v2v' in got[0][0]
        assert plain and b'v2v' in plain[0]
    finally:
        executor.shutdown()
        rclpy.try_shutdown(context=context)


def test_draining_subscriptions_merge_into_one_that_drains_for_every_callback():
    """The comm nodes' V2V readers drain: merged, one dispatch serves a burst to each node."""
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = make_executor(context)
    try:
        nodes = [Node(f'compose_drain_{i}', context=context) for i in range(2)]
        received: dict = {node.get_name(): [] for node in nodes}
        for node in nodes:
            drain(node.create_subscription(
                String, '/compose_test/drain',
                lambda msg, info, got=received[node.get_name()]: got.append((msg, info)),
                QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE), raw=True), 100)
        assert share_subscriptions(nodes) == 1
        merged, = [sub for sub in nodes[0].subscriptions
                   if sub.topic_name == '/compose_test/drain']
        assert draining_of(merged.callback) is not None
        without_message_info(nodes)
        source = Node('compose_drain_source', context=context)
        for node in nodes + [source]:
            executor.add_node(node)
        pub = source.create_publisher(String, '/compose_test/drain',
                                      QoSProfile(depth=50,
                                                 reliability=ReliabilityPolicy.RELIABLE))
        deadline = time.monotonic() + 20.0
        while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.01)
        for i in range(20):         # in-process: in the reader's history on return
            pub.publish(String(data=f'v2v {i}'))
        while time.monotonic() < deadline and not all(
                len(got) == 20 for got in received.values()):
            executor.spin_once(timeout_sec=0.05)
        for got in received.values():
            assert [raw.endswith(b'v2v %d\x00' % i) for i, (raw, _) in enumerate(got)] == \
                [True] * 20
            # the executor's own sample comes without info; the drained ones with their writer
            assert [info is None for _, info in got] == [True] + [False] * 19
            if os.environ.get('ROS_DISTRO') not in ('humble', 'jazzy'):   # no GID in theirs
                assert all(info['publisher_gid']['data'] for _, info in got[1:])
    finally:
        executor.shutdown()
        rclpy.try_shutdown(context=context)

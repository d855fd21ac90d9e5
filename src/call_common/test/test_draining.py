"""A draining subscription takes the samples waiting behind the executor's one, with their info."""
import os
import time

from call_common.draining import drain, draining_of
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

# reliable and deep enough for every sample: none is lost, whatever the executor does
QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                 reliability=ReliabilityPolicy.RELIABLE)
WAIT = 10.0  # [s] upper bound of every wait; never hit when things work


@pytest.fixture
def pair():
    """Yield a publisher node and a subscriber node (spun) in one context."""
    context = rclpy.Context()
    rclpy.init(context=context)
    source = rclpy.create_node('draining_source', context=context)
    sink = rclpy.create_node('draining_sink', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(sink)
    try:
        yield context, source, sink, executor
    finally:
        executor.shutdown()
        rclpy.try_shutdown(context=context)


def _deliver_all(executor, got, count) -> int:
    """Dispatch until `count` samples arrived; return the executor's dispatches."""
    dispatches = 0
    deadline = time.monotonic() + WAIT
    while len(got) < count and time.monotonic() < deadline:
        before = len(got)
        executor.spin_once(timeout_sec=0.05)
        dispatches += len(got) > before
    return dispatches


def test_one_dispatch_takes_every_waiting_sample_each_with_its_writer(pair):
    _, source, sink, executor = pair
    got = []
    sub = sink.create_subscription(String, '/draining_test', lambda msg, info: got.append(
        (msg, info)), QOS, raw=True)
    draining = drain(sub, limit=100)
    pub = source.create_publisher(String, '/draining_test', QOS)
    deadline = time.monotonic() + WAIT
    while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pub.get_subscription_count() == 1
    pub.publish(String(data='first'))
    assert _deliver_all(executor, got, 1) == 1      # nothing waits behind it: nothing drained
    assert draining.drained == 0
    for i in range(50):         # in-process delivery: in the reader's history on return
        pub.publish(String(data=f'burst {i}'))
    assert _deliver_all(executor, got, 51) == 1     # one dispatch, 49 drained
    assert draining.drained == 49
    assert [raw.endswith(b'burst %d\x00' % i) for i, (raw, _) in enumerate(got[1:])] == \
        [True] * 50
    if os.environ.get('ROS_DISTRO') in ('humble', 'jazzy'):
        # their rclpy's message info has no writer GID: budgets fall back to the claimed sender
        assert all(isinstance(info, dict) and 'publisher_gid' not in info for _, info in got)
    else:
        gids = {bytes(info['publisher_gid']['data']) for _, info in got}
        assert len(gids) == 1 and len(next(iter(gids))) >= 16
    assert draining_of(sub.callback) is draining


def test_the_drain_is_bounded_so_other_callbacks_get_their_turn(pair):
    _, source, sink, executor = pair
    got = []
    drain(sink.create_subscription(String, '/draining_bounded', got.append, QOS), limit=9)
    pub = source.create_publisher(String, '/draining_bounded', QOS)
    deadline = time.monotonic() + WAIT
    while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    for i in range(30):
        pub.publish(String(data=str(i)))
    assert _deliver_all(executor, got, 30) == 3     # 1 + 9 per dispatch
    assert [msg.data for msg in got] == [str(i) for i in range(30)]


def test_a_negative_limit_fails_fast(pair):
    _, _, sink, _ = pair
    sub = sink.create_subscription(String, '/draining_bad', lambda msg: None, QOS)
    with pytest.raises(ValueError, match='drain limit'):
        drain(sub, limit=-1)

"""The container profile (CALL_CPU_PROFILE) counts every callback and publish, keeps signatures."""
import json
import time

from call_bringup import cpu_profile
from call_bringup.compose import make_executor, share_subscriptions, without_message_info
from call_common.draining import drain, draining_of, takes_info
import rclpy
from rclpy.node import Node
from std_msgs.msg import String


def test_callbacks_and_publishes_are_counted_per_node_and_topic():
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = make_executor(context)
    try:
        nodes = [Node(f'cpu_profile_test_{i}', context=context) for i in range(2)]
        got = {0: [], 1: []}
        nodes[0].create_subscription(String, '/cpu_profile_test/topic', got[0].append, 10)
        nodes[1].create_subscription(String, '/cpu_profile_test/topic',
                                     lambda msg, info=None: got[1].append(msg), 10)
        drained = []
        drain(nodes[1].create_subscription(String, '/cpu_profile_test/drained',
                                           drained.append, 10), 4)
        publisher = nodes[0].create_publisher(String, '/cpu_profile_test/topic', 10)
        drained_pub = nodes[0].create_publisher(String, '/cpu_profile_test/drained', 10)
        infos = [takes_info(sub.callback) for n in nodes for sub in n.subscriptions]
        clock = cpu_profile.CallbackClock()
        clock.instrument(nodes)
        # rclpy decides by the signature whether to hand MessageInfo: the wrapper keeps it
        assert [takes_info(sub.callback)
                for n in nodes for sub in n.subscriptions] == infos
        # a draining subscription stays one (the container merges by it): its deliveries count
        assert sum(draining_of(sub.callback) is not None for sub in nodes[1].subscriptions) == 1
        share_subscriptions(nodes)            # as the container does, after instrumenting
        without_message_info(nodes)
        for node in nodes:
            executor.add_node(node)
        sent = 0
        for _ in range(400):                 # bounded: DDS discovery takes a few rounds
            if got[0] and got[1] and drained:
                break
            publisher.publish(String(data='x'))
            drained_pub.publish(String(data='y'))
            sent += 1
            executor.spin_once(timeout_sec=0.05)
        assert got[0] and got[1] and drained
        assert rows_calls(clock, 'cpu_profile_test_1', '/cpu_profile_test/drained') == \
            len(drained)
        rows = {(node, kind, topic): (cpu, calls) for node, kind, topic, cpu, calls
                in clock.as_rows()}
        assert rows[('cpu_profile_test_0', 'publish', '/cpu_profile_test/topic')][1] == sent
        for index in (0, 1):
            cpu, calls = rows[(f'cpu_profile_test_{index}', 'callback',
                               '/cpu_profile_test/topic')]
            assert calls == len(got[index]) and cpu >= 0.0
    finally:
        executor.shutdown()
        rclpy.try_shutdown(context=context)


def rows_calls(clock: cpu_profile.CallbackClock, node: str, topic: str) -> int:
    """Count the calls of one node's callback on `topic`."""
    return sum(calls for name, kind, name_topic, _, calls in clock.as_rows()
               if (name, kind, name_topic) == (node, 'callback', topic))


def _busy(rounds: int) -> int:
    total = 0
    for value in range(rounds):
        total += value * value
    return total


def test_sampler_charges_cpu_to_the_running_function(tmp_path, monkeypatch):
    monkeypatch.setenv(cpu_profile.ENV, str(tmp_path))
    sampler = cpu_profile.from_environment([])
    try:
        for _ in range(500):                # bounded: until a sample caught _busy running
            _busy(200000)                   # longer than the GIL's 5 ms switch interval
            stacks = dict(sampler.stacks)   # one C-level copy: the sampler thread adds to it
            if any(name == '_busy' for stack in stacks for _, name in stack):
                break
            time.sleep(0)                   # let the sampling thread take the GIL
    finally:
        cpu_profile.finish(sampler, 'test')
    [dump] = list(tmp_path.glob('test-*.json'))
    data = json.loads(dump.read_text())
    busy = sum(cpu for stack, cpu in data['stacks'] if any(n == '_busy' for _, n in stack))
    assert busy > 0.0
    assert data['executor_thread_cpu_s'] >= busy
    # no callback ran: only the garbage collector's own account may appear
    assert [c for c in data['callbacks'] if c[:2] != ['python', 'gc']] == []

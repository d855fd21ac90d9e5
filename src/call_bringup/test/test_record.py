"""call_record writes real DDS traffic to an MCAP file that mcap-ros2-support decodes."""
import os
import signal
import subprocess
import sys
import time

from call_bringup.record import message_definition
from call_msgs.msg import CommStats
from mcap_ros2.reader import read_ros2_messages
import rclpy
from rclpy.duration import Duration

MESSAGES = 20
WAIT_S = 60.0      # bound of every wait (the recorder process imports rclpy and mcap)


def test_message_definition_lists_dependencies_once():
    text = message_definition('call_msgs/msg/SharedInformation')
    assert text.startswith('# The shared information')
    assert text.count('MSG: std_msgs/Header') == 1
    assert 'MSG: call_msgs/NeighbourLatent' in text
    assert 'MSG: builtin_interfaces/Time' in text


def test_recorded_run_decodes_with_mcap_ros2(tmp_path):
    """Record 20 messages (the recorder stops on its own after them) and decode the file."""
    output = tmp_path / 'run.mcap'
    recorder = subprocess.Popen(
        [sys.executable, '-m', 'call_bringup.record', '-o', str(output), '--topics',
         '/hero7/.*', '--max-messages', str(MESSAGES)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('record_test_publisher', context=context)
    sent = []
    try:
        publisher = node.create_publisher(CommStats, '/hero7/comm_stats', 10)
        other = node.create_publisher(CommStats, '/hero8/comm_stats', 10)
        deadline = time.monotonic() + WAIT_S
        while publisher.get_subscription_count() == 0 and time.monotonic() < deadline \
                and recorder.poll() is None:
            time.sleep(0.1)         # polling discovery, bounded by the deadline
        assert publisher.get_subscription_count() == 1, 'recorder never subscribed'
        assert other.get_subscription_count() == 0           # filtered out by --topics
        other.publish(CommStats(vehicle_id='hero8'))
        for i in range(MESSAGES):
            msg = CommStats(vehicle_id='hero7', bytes_sent=100 + i,
                            neighbours=['hero1', 'hero2'], comm_range=20.0 + i)
            publisher.publish(msg)
            sent.append(msg)
            # reliable: the recorder's reader holds it before the next one goes out
            assert publisher.wait_for_all_acked(Duration(seconds=WAIT_S))
        out, _ = recorder.communicate(timeout=WAIT_S)        # it stops after MESSAGES
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
        if recorder.poll() is None:
            recorder.send_signal(signal.SIGINT)
            recorder.communicate(timeout=15)
        recorder.kill()
    assert recorder.returncode == 0, out
    assert os.path.getsize(output) > 0
    decoded = list(read_ros2_messages(str(output)))
    assert {m.channel.topic for m in decoded} == {'/hero7/comm_stats'}
    assert [m.ros_msg.bytes_sent for m in decoded] == [m.bytes_sent for m in sent]
    assert list(decoded[-1].ros_msg.neighbours) == ['hero1', 'hero2']
    assert decoded[0].schema.name == 'call_msgs/msg/CommStats'

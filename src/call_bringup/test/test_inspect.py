"""call_inspect decodes real V2V traffic (signed with call_comm's codec) over DDS."""
import subprocess
import sys
import time

from call_comm import wire_codec
from call_comm.auth import Fleet
from call_comm.comm_node import to_msg
from call_comm.keygen import write_fleet
from call_msgs.msg import CommStats, LatentMessage
import numpy as np
import rclpy
from rclpy.duration import Duration
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message

WAIT_S = 60.0      # bound of every wait (the inspector process imports rclpy first)


def _latent(sender_key_id: int, sequence: int, z_first: int) -> LatentMessage:
    z = np.full(32, 3, dtype=np.uint8)
    z[0] = z_first
    wire = wire_codec.encode(sender_key_id, sequence, 1, 0, (10.0 * sequence, 5.0, 0.0, 8.0),
                             z, np.zeros(16, dtype=np.float32), 2, np.zeros((3, 2)),
                             wire_codec.H_ENCODINGS['fp16'], 10)
    wire.signature = bytes([1] * 64)
    return to_msg(wire)


def test_latents_report_decodes_senders_bytes_and_who_hears_whom(tmp_path):
    fleet_file = write_fleet(['hero0', 'hero1'], tmp_path)
    hero0 = Fleet.load(fleet_file).key_id('hero0')
    # it reports once the 12 messages below have arrived; the window only bounds the wait
    inspector = subprocess.Popen([sys.executable, '-m', 'call_bringup.inspect_cli', 'latents',
                                  '-d', str(WAIT_S), '--messages', '12',
                                  '--fleet', str(fleet_file)],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('inspect_test_publisher', context=context)
    try:
        qos = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.BEST_EFFORT)
        v2v = node.create_publisher(LatentMessage, '/v2v/latents', qos)
        stats = node.create_publisher(CommStats, '/hero1/comm_stats', 10)
        own_stats = node.create_publisher(CommStats, '/hero0/comm_stats', 10)
        publishers = (v2v, stats, own_stats)
        deadline = time.monotonic() + WAIT_S
        while any(p.get_subscription_count() == 0 for p in publishers) \
                and time.monotonic() < deadline and inspector.poll() is None:
            time.sleep(0.1)         # polling discovery, bounded by the deadline
        assert all(p.get_subscription_count() == 1 for p in publishers)
        size = len(serialize_message(_latent(hero0, 0, 17)))
        for sequence in (0, 1, 3):                  # sequence 2 never sent: one gap
            v2v.publish(_latent(hero0, sequence, 17))
            v2v.publish(_latent(0xDEADBEEF, sequence, 5))    # a key outside the fleet
            stats.publish(CommStats(vehicle_id='hero1', neighbours=['hero0'], comm_range=25.0,
                                    bytes_received=size, dropped_replay=4, threshold=50.0))
            own_stats.publish(CommStats(vehicle_id='hero0', comm_range=35.0,
                                        prediction_error=12.5, threshold=50.0))
            for publisher in (stats, own_stats):      # reliable: wait until it is there
                assert publisher.wait_for_all_acked(Duration(seconds=WAIT_S))
        out, _ = inspector.communicate(timeout=2 * WAIT_S)
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
        inspector.kill()
    assert inspector.returncode == 0, out
    row = next(line for line in out.splitlines() if line.startswith('hero0 '))
    fields = row.split()
    assert fields[1] == '3' and fields[3] == str(size) and fields[5] == '1'   # msgs, B/msg, gaps
    assert fields[9:11] == ['35.0', '12.50']     # range and E from hero0's own CommStats
    assert '[17, 3, 3, 3, 3, 3, 3, 3]' in row
    stranger = next(line for line in out.splitlines() if line.startswith('#deadbeef '))
    assert stranger.split()[9:11] == ['-', '-'] and '[5, 3, 3' in stranger
    hears = next(line for line in out.splitlines() if line.startswith('hero1 '))
    assert 'hero0' in hears and 'replay=4' in hears

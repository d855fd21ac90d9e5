"""Two processes exchange call_msgs/LatentMessage over Fast DDS on an isolated domain."""
import os
import subprocess
import sys
import time

from call_msgs.msg import LatentMessage
import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.serialization import serialize_message

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from latent_message_peer import make_message  # noqa: E402


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):   # fixed-size uint8[N]
        return np.array_equal(a, b)
    return a == b


def test_fixed_part_is_116_bytes_and_fixed_arrays_carry_no_length():
    """
    Check the CDR byte accounting of the v2 layout.

    4 encapsulation + 8 stamp + 4 key id + 4 sequence + 16 pose + 4 z length + 2 + 2 padding
    + 4 + 4 sequence lengths + 64 signature = 116, then the bytes of z, h and intention
    (z of 20 bytes, a multiple of 4, keeps the padding at 2).
    """
    assert len(serialize_message(LatentMessage())) == 116
    msg = make_message(1)
    assert len(msg.z_packed) == 20
    assert len(serialize_message(msg)) == 116 + len(msg.z_packed) + len(msg.h_data) + len(
        msg.intention_packed)


def test_latent_message_crosses_processes():
    env = dict(os.environ)
    env['ROS_DOMAIN_ID'] = str(1 + os.getpid() % 9)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    os.environ.update({k: env[k] for k in ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE')})
    peer = subprocess.Popen([sys.executable, os.path.join(HERE, 'latent_message_peer.py')],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    rclpy.init()
    node = Node('latent_message_listener')
    received = []
    node.create_subscription(LatentMessage, '/v2v/latents', received.append, 10)
    try:
        deadline = time.monotonic() + 20.0
        while len(received) < 3 and time.monotonic() < deadline and peer.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.1)
    finally:
        node.destroy_node()
        rclpy.shutdown()
        peer.terminate()
        out = peer.communicate(timeout=10)[0].decode(errors='replace')
    assert len(received) >= 3, 'no LatentMessage arrived from the peer process:\n' + out
    msg = received[-1]
    expected = make_message(msg.sequence)
    assert msg.sequence > received[0].sequence
    for field in LatentMessage.get_fields_and_field_types():
        assert _same(getattr(msg, field), getattr(expected, field)), field

"""
The comm node decodes accepted neighbours into vehicle masks for perception (paper Fig. 4c).

One comm node over real DDS with a real (tiny, random) world model: a good neighbour arrives
with its decoded view, bit for bit what the world-model package's decoder makes of the (z, h)
the ego holds; a neighbour whose h carries a NaN is dropped by the inbox and counted, and its
latent never reaches the decoder.
"""
import os
from pathlib import Path
import subprocess
import sys
import time

from call_comm import wire_codec as wc
from call_comm.auth import Fleet, Signer
from call_comm.comm_node import to_msg
from call_comm.keygen import write_fleet
from call_common.msg_conversions import pack_mask, unpack_mask
from call_common.param_files import read_node_defaults
from call_msgs.msg import CommStats, LatentMessage, LatentState, SharedInformation
from call_world_model import checkpoint
from call_world_model.neighbour_decoding import decode_neighbour_vehicles
from helpers_replica import tiny_model
from nav_msgs.msg import Odometry
import numpy as np
import pytest
import rclpy
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

CONFIG = Path(__file__).resolve().parents[1] / 'config' / 'comm.yaml'
V2V_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=64,
                     reliability=ReliabilityPolicy.BEST_EFFORT)
WAIT = 120.0  # [s] upper bound of every wait (start-up under load); never hit when things work
Z = np.arange(32)[::-1].astype(np.uint8)
CHANNELS = read_node_defaults(str(CONFIG))['neighbour_view_channels']  # what the node decodes


def _spin_until(node, condition, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.02)
        if condition():
            return True
    return False


def _key(stamp):
    return stamp.sec, stamp.nanosec


@pytest.fixture(scope='module')
def graph(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('views')
    fleet = Fleet.load(write_fleet(['hero0', 'hero1', 'hero2'], tmp))
    model = tiny_model(3)
    ckpt = str(tmp / 'tiny.pt')
    checkpoint.save(ckpt, model, None, model.cfg, step=0, optimizers=False)
    cmd = [sys.executable, '-m', 'call_comm.comm_node', '--ros-args', '-r', '__ns:=/hero0',
           '--params-file', str(CONFIG), '-p', 'role_name:=hero0',
           '-p', f'fleet_key_file:={tmp}/fleet.yaml',
           '-p', f'private_key_file:={tmp}/hero0.key.yaml', '-p', 'h_transport:=full',
           '-p', f'checkpoint:={ckpt}', '-p', 'use_sim_time:=false']
    proc = subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    rclpy.init()
    node = rclpy.create_node('view_test_harness')
    node.set_parameters([Parameter('use_sim_time', value=False)])
    signers = {r: Signer.load(r, tmp / f'{r}.key.yaml', fleet) for r in ('hero1', 'hero2')}
    try:
        yield node, model, fleet, signers, proc
    finally:
        node.destroy_node()
        rclpy.shutdown()
        proc.kill()
        print(proc.communicate(timeout=10)[0].decode(errors='replace')[-3000:])


def _message(fleet, signer, sender, seq, stamp, x, h, nan=False):
    """Signed fp16 message of `sender`; nan: its h_data carries a NaN (signed all the same)."""
    wire = wc.encode(fleet.key_id(sender), seq, stamp[0], stamp[1], (x, 0.0, 0.0, 5.0), Z,
                     h, 4, np.zeros((0, 2)), wc.H_FP16, 5)
    if nan:
        values = np.asarray(h, np.float16).copy()
        values[3] = np.nan
        wire.h_data = values.astype('<f2').tobytes()
    wire.signature = signer.sign(wc.signed_payload(wire))
    return wire


def test_accepted_neighbour_carries_its_decoded_view_and_nan_h_never_reaches_it(graph):
    node, model, fleet, signers, proc = graph
    cfg = model.cfg
    state_pub = node.create_publisher(LatentState, '/hero0/latent_state', 10)
    odom_pub = node.create_publisher(Odometry, '/carla/hero0/odometry', 10)
    v2v_pub = node.create_publisher(LatentMessage, '/v2v/latents', V2V_QOS)
    shared, stats = {}, {}
    node.create_subscription(SharedInformation, '/hero0/shared_info',
                             lambda m: shared.__setitem__(_key(m.header.stamp), m), 10)
    node.create_subscription(CommStats, '/hero0/comm_stats',
                             lambda m: stats.__setitem__(_key(m.header.stamp), m), 10)
    assert _spin_until(node, lambda: all(p.get_subscription_count() >= 1
                                         for p in (state_pub, odom_pub, v2v_pub))), \
        'comm node did not come up'
    h = np.linspace(-1.0, 1.0, cfg.deter).astype(np.float32)
    held = h.astype(np.float16).astype(np.float32)   # what the ego holds after fp16
    expected = decode_neighbour_vehicles(model, [(Z, held)], CHANNELS).masks[0]
    assert 0 < np.count_nonzero(expected) < expected.size   # a mask worth comparing
    found = None
    for t in range(1, 40):
        stamp = (200 + t // 10, t % 10 * 10 ** 8)
        for sender, x, nan in (('hero1', 5.0, False), ('hero2', 8.0, True)):
            v2v_pub.publish(to_msg(_message(fleet, signers[sender], sender, t, stamp, x, h,
                                            nan)))
        _spin_until(node, lambda: False, 0.15)
        odom = Odometry()
        odom.header.stamp.sec, odom.header.stamp.nanosec = stamp
        odom.pose.pose.orientation.w = 1.0
        odom_pub.publish(odom)
        state = LatentState()
        state.header.stamp.sec, state.header.stamp.nanosec = stamp
        state.z_indices = bytes(Z)
        state.h = [0.5] * cfg.deter
        state.prediction_error = 1.0
        state.valid = True
        state_pub.publish(state)
        _spin_until(node, lambda: stamp in shared and stamp in stats, 3.0)
        if stamp in shared and any(n.sender_id == 'hero1' for n in shared[stamp].neighbours):
            found = stamp
            break
    assert found is not None, 'no message of hero1 accepted'
    info, counts = shared[found], stats[found]
    assert [n.sender_id for n in info.neighbours] == ['hero1']
    view = info.neighbours[0]
    assert view.view_size == cfg.bev_size
    assert bytes(view.view_mask) == pack_mask(expected)
    assert np.array_equal(unpack_mask(bytes(view.view_mask), view.view_size), expected)
    # hero2's NaN h: dropped and counted by the inbox, before any decoder
    assert counts.dropped_malformed >= 1
    assert counts.neighbour_views == 1 and counts.neighbour_views_dropped == 0
    assert proc.poll() is None

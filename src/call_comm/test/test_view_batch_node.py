"""
Two comm nodes in one process (a container) decode their steps' views through one batcher.

Real DDS, a real (tiny, random) world model, the nodes built in this process as a container
builds them: they share the model, so their view requests go through the process's
``ViewBatcher`` and each step's SharedInformation and CommStats are published after the
batch ran. Each node's view of the accepted neighbour must be, bit for bit, what the
world-model package's decoder makes of the (z, h) it holds, and each step is published once
with its own stamp.
"""
from pathlib import Path
import time

from call_comm import wire_codec as wc
from call_comm.auth import Fleet, Signer
from call_comm.comm_node import CommNode, to_msg
from call_comm.keygen import write_fleet
from call_comm.view_decoding import ViewBatcher
from call_common.msg_conversions import pack_mask
from call_common.param_files import read_node_defaults
from call_msgs.msg import CommStats, LatentMessage, LatentState, SharedInformation
from call_world_model import checkpoint
from call_world_model.neighbour_decoding import decode_neighbour_vehicles
from helpers_replica import tiny_model
from nav_msgs.msg import Odometry
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

CONFIG = Path(__file__).resolve().parents[1] / 'config' / 'comm.yaml'
V2V_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=64,
                     reliability=ReliabilityPolicy.BEST_EFFORT)
WAIT = 120.0  # [s] upper bound of every wait (start-up under load); never hit when things work
Z = np.arange(32)[::-1].astype(np.uint8)
CHANNELS = read_node_defaults(str(CONFIG))['neighbour_view_channels']
EGOS = ('hero0', 'hero3')


def _spin_until(executor, condition, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.02)
        if condition():
            return True
    return False


def _key(stamp):
    return stamp.sec, stamp.nanosec


def test_a_containers_comm_nodes_publish_each_step_with_the_decoders_views(tmp_path):
    fleet = Fleet.load(write_fleet(['hero0', 'hero1', 'hero3'], tmp_path))
    model = tiny_model(3)
    ckpt = str(tmp_path / 'tiny.pt')
    checkpoint.save(ckpt, model, None, model.cfg, step=0, optimizers=False)
    cfg = model.cfg
    rclpy.init()
    executor = SingleThreadedExecutor()
    nodes = []
    try:
        for role in EGOS:
            nodes.append(CommNode(namespace=f'/{role}', parameter_overrides=[
                Parameter('role_name', value=role),
                Parameter('fleet_key_file', value=f'{tmp_path}/fleet.yaml'),
                Parameter('private_key_file', value=f'{tmp_path}/{role}.key.yaml'),
                Parameter('h_transport', value='full'), Parameter('checkpoint', value=ckpt)]))
        harness = rclpy.create_node('view_batch_harness')
        for node in nodes + [harness]:
            executor.add_node(node)
        batcher = ViewBatcher.for_model(nodes[0].views.model)
        assert batcher is ViewBatcher.for_model(nodes[1].views.model)
        assert batcher.members == 2, 'the nodes share the model, as in a container'
        v2v_pub = harness.create_publisher(LatentMessage, '/v2v/latents', V2V_QOS)
        pubs = {r: (harness.create_publisher(LatentState, f'/{r}/latent_state', 10),
                    harness.create_publisher(Odometry, f'/carla/{r}/odometry', 10))
                for r in EGOS}
        shared = {r: {} for r in EGOS}
        stats = {r: {} for r in EGOS}
        for r in EGOS:
            harness.create_subscription(
                SharedInformation, f'/{r}/shared_info',
                lambda m, r=r: shared[r].setdefault(_key(m.header.stamp), []).append(m), 10)
            harness.create_subscription(
                CommStats, f'/{r}/comm_stats',
                lambda m, r=r: stats[r].setdefault(_key(m.header.stamp), []).append(m), 10)
        assert _spin_until(executor, lambda: all(
            p.get_subscription_count() >= 1 for pair in pubs.values() for p in pair)), \
            'comm nodes did not come up'
        signer = Signer.load('hero1', tmp_path / 'hero1.key.yaml', fleet)
        h = np.linspace(-1.0, 1.0, cfg.deter).astype(np.float32)
        held = h.astype(np.float16).astype(np.float32)   # what the egos hold after fp16
        ego_h = np.full(cfg.deter, 0.5, np.float32)      # each ego's state h (exact in fp16)
        masks = decode_neighbour_vehicles(model, [(Z, held), (Z, ego_h)], CHANNELS).masks
        expected = {'hero1': pack_mask(masks[0]), 'hero0': pack_mask(masks[1]),
                    'hero3': pack_mask(masks[1])}
        assert expected['hero1'] != expected['hero0'], 'two views worth telling apart'
        found = None
        for t in range(1, 40):
            stamp = (300 + t // 10, t % 10 * 10 ** 8)
            wire = wc.encode(fleet.key_id('hero1'), t, stamp[0], stamp[1], (5.0, 0.0, 0.0, 5.0),
                             Z, h, 4, np.zeros((0, 2)), wc.H_FP16, 5)
            wire.signature = signer.sign(wc.signed_payload(wire))
            v2v_pub.publish(to_msg(wire))
            _spin_until(executor, lambda: False, 0.15)
            for state_pub, odom_pub in pubs.values():
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
            _spin_until(executor, lambda: all(stamp in shared[r] and stamp in stats[r]
                                              for r in EGOS), 3.0)
            if found is not None:
                break   # one step after: what the found step published came in before it
            if all(stamp in shared[r] and 'hero1' in {n.sender_id for n in
                                                      shared[r][stamp][0].neighbours}
                   for r in EGOS):
                found = stamp
        assert found is not None, 'no message of hero1 accepted by both nodes'
        assert all(stamp in shared[r] and stamp in stats[r] for r in EGOS), 'the next step'
        for r in EGOS:
            [info], [counts] = shared[r][found], stats[r][found]
            other = 'hero3' if r == 'hero0' else 'hero0'   # the egos hear each other
            assert sorted(n.sender_id for n in info.neighbours) == sorted(['hero1', other])
            for n in info.neighbours:
                assert bytes(n.view_mask) == expected[n.sender_id], (r, n.sender_id)
                assert n.view_size == cfg.bev_size
            assert counts.neighbour_views == 2
            assert list(counts.neighbours) == [n.sender_id for n in info.neighbours]
        assert batcher.stats['items'] >= 2, 'the steps went through the shared batcher'
    finally:
        for node in nodes:
            node.destroy_node()
        rclpy.shutdown()


def test_a_comm_node_that_fails_to_start_is_destroyed_without_a_second_error():
    # a container's bad config: the error's traceback keeps the half-built node alive, and
    # the context destroys it at shutdown
    rclpy.init()
    with pytest.raises(ValueError, match='role_name') as failed:
        CommNode(parameter_overrides=[Parameter('role_name', value='')])
    rclpy.shutdown()
    assert failed.value is not None

"""world_model_node over real DDS: BEV + Action in, LatentState out; malformed input dropped."""
import os
import subprocess
import sys
import time

from call_msgs.msg import Action, LatentState, NeighbourLatent, SharedInformation
from call_world_model import checkpoint
from call_world_model.actor_critic import ActorCritic
from call_world_model.world_model import WorldModel
from diagnostic_msgs.msg import DiagnosticArray
from helpers_wm import tiny_config
from nav_msgs.msg import Odometry
import numpy as np
import pytest
import rclpy
from sensor_msgs.msg import Image
import torch

ROLE = 'hero_wm_test'
WAIT_S = 120.0


def _decisive_model(cfg) -> WorldModel:
    """
    Build a random model whose posterior is all but deterministic.

    Without unimix and with a large output layer every categorical puts ~all its mass on one
    class, so the node's sampled z equals the posterior mode an in-process model computes
    for the same BEV: the test can compare values, not only shapes.
    """
    model = WorldModel(cfg)
    with torch.no_grad():
        model.rssm.obs_out[-1].weight.mul_(1e5)
    return model


def _start(tmp_path, *extra_args, namespace=f'/{ROLE}'):
    """Save a tiny decisive checkpoint, start the node (role ROLE) in `namespace`."""
    torch.manual_seed(0)
    cfg = tiny_config(unimix=0.0)
    path = str(tmp_path / 'tiny.pt')
    checkpoint.save(path, _decisive_model(cfg),
                    ActorCritic(cfg, cfg.feat_dim, cfg.num_actions), cfg, step=0)
    log = open(tmp_path / 'node.log', 'w')
    proc = subprocess.Popen(
        [sys.executable, '-m', 'call_world_model.world_model_node', '--ros-args',
         '-r', f'__ns:={namespace}', '-p', f'checkpoint:={path}', '-p', f'role_name:={ROLE}',
         '-p', 'diagnostics_period:=0.2', '-p', 'K:=2', *extra_args],
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    return proc, cfg, log, path


def _stop(proc, log):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    log.close()


@pytest.fixture
def node_process(tmp_path):
    proc, cfg, log, path = _start(tmp_path)
    try:
        yield proc, cfg, path
    finally:
        _stop(proc, log)


def _bev(cfg, stamp_sec, encoding=None, size=None):
    size = size or cfg.bev_size
    msg = Image()
    msg.header.stamp.sec = stamp_sec
    msg.header.frame_id = ROLE
    msg.height = msg.width = size
    msg.encoding = encoding or f'8UC{cfg.bev_channels}'
    msg.step = size * cfg.bev_channels
    data = np.zeros((size, size, cfg.bev_channels), dtype=np.uint8)
    data[size // 3: size // 2, :, 0] = 255
    data[5:9, 5:9, 1] = 255
    msg.data = data.tobytes()
    return msg


def _in_process_first_state(path, bev_msg):
    """Return the posterior mode and h of the checkpoint's model for a first frame."""
    model = checkpoint.load(path, load_optimizers=False).world_model.eval()
    cfg = model.cfg
    bev = torch.from_numpy(np.frombuffer(bytes(bev_msg.data), dtype=np.uint8).reshape(
        cfg.bev_size, cfg.bev_size, cfg.bev_channels).copy()).permute(2, 0, 1)[None]
    with torch.no_grad():
        post, _ = model.observe_step(None, torch.tensor([0]), bev, torch.tensor([True]),
                                     sample=False, with_prior=False)
    return post['stoch'][0].argmax(-1).tolist(), post['deter'][0].numpy()


def test_node_publishes_latent_state_and_drops_malformed(node_process):
    proc, cfg, path = node_process
    rclpy.init()
    node = rclpy.create_node('wm_node_test')
    received, diagnostics = [], []
    node.create_subscription(LatentState, f'/{ROLE}/latent_state', received.append, 10)
    node.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append, 10)
    bev_pub = node.create_publisher(Image, f'/{ROLE}/bev', 10)
    action_pub = node.create_publisher(Action, f'/{ROLE}/action', 10)
    shared_pub = node.create_publisher(SharedInformation, f'/{ROLE}/shared_info', 10)
    odom_pub = node.create_publisher(Odometry, f'/carla/{ROLE}/odometry', 10)
    try:
        deadline = time.monotonic() + WAIT_S
        while not received and time.monotonic() < deadline and proc.poll() is None:
            action_pub.publish(Action(index=4))
            bev_pub.publish(_bev(cfg, 11))
            rclpy.spin_once(node, timeout_sec=0.3)
        assert proc.poll() is None, 'node exited'
        assert received, 'no LatentState within the wait'
        first = received[0]
        z = list(first.z_indices)
        assert len(z) == 32 and all(0 <= v < 32 for v in z)
        assert len(first.h) == cfg.deter and np.isfinite(np.asarray(first.h)).all()
        # warming up: E over the last K steps does not exist yet (LatentState.msg)
        assert not first.valid and first.header.stamp.sec == 11
        # the same values the model computes in-process for this BEV as a first frame
        z_expected, h_expected = _in_process_first_state(path, _bev(cfg, 11))
        assert z == z_expected
        np.testing.assert_allclose(np.asarray(first.h), h_expected, rtol=1e-5, atol=1e-6)
        # and the BEV matters: another frame gives other latents
        other = _bev(cfg, 11)
        other.data = bytes(255 - np.frombuffer(bytes(other.data), dtype=np.uint8))
        assert _in_process_first_state(path, other)[0] != z_expected

        # malformed: wrong encoding, wrong size, a neighbour with a wrong h length and one
        # with an index >= 32, then a good frame with a good neighbour: node keeps working
        count = len(received)
        odom = Odometry()
        odom.pose.pose.orientation.w = 1.0

        def step_inputs(stamp: int, previous: int) -> None:
            # a step observes with its own pose and the previous step's action and
            # shared information (it waits for them)
            odom.header.stamp.sec = stamp
            odom_pub.publish(odom)
            action = Action(index=4)
            action.header.stamp.sec = previous
            action_pub.publish(action)
        step_inputs(14, 11)
        good = NeighbourLatent(sender_id='hero_x', x=10.0, y=2.0, yaw=0.1,
                               z_indices=[3] * 32, h=[0.1] * cfg.deter,
                               intention_xy=[11.0, 2.0, 12.0, 2.0])
        bad_h = NeighbourLatent(sender_id='hero_y', z_indices=[3] * 32, h=[0.1] * 3)
        bad_z = NeighbourLatent(sender_id='hero_z', z_indices=[40] * 32, h=[0.1] * cfg.deter)
        shared = SharedInformation(neighbours=[good, bad_h, bad_z])
        shared.header.stamp.sec = 11
        shared_pub.publish(shared)
        bev_pub.publish(_bev(cfg, 12, encoding='rgb8'))
        bev_pub.publish(_bev(cfg, 13, size=cfg.bev_size // 2))
        deadline = time.monotonic() + WAIT_S
        dropped = bad_neighbours = 0
        while time.monotonic() < deadline and proc.poll() is None:
            if not any(m.header.stamp.sec == 14 for m in received[count:]):
                bev_pub.publish(_bev(cfg, 14))
            rclpy.spin_once(node, timeout_sec=0.3)
            for array in diagnostics:
                for status in array.status:
                    if status.name == f'world_model: {ROLE}':
                        values = {kv.key: kv.value for kv in status.values}
                        dropped = int(values.get('dropped_bev_encoding', 0)) + int(
                            values.get('dropped_bev_shape', 0))
                        bad_neighbours = int(values.get('dropped_neighbour_h', 0)) + int(
                            values.get('dropped_neighbour_z', 0))
            good_seen = any(m.header.stamp.sec == 14 for m in received[count:])
            if dropped >= 2 and bad_neighbours >= 2 and good_seen:
                break
        assert proc.poll() is None, 'node crashed on malformed input'
        stamps = {m.header.stamp.sec for m in received[count:]}
        assert 12 not in stamps and 13 not in stamps
        assert 14 in stamps
        assert dropped >= 2 and bad_neighbours >= 2

        # once K + 1 steps are observed, E over K steps exists and the state is valid
        horizon = 5                     # the node's error_horizon default
        previous = 14
        for stamp in range(20, 20 + horizon + 1):
            step_inputs(stamp, previous)
            shared = SharedInformation()
            shared.header.stamp.sec = previous
            shared_pub.publish(shared)
            previous = stamp
            # wait for this step's state: a late copy of an earlier one (the node answers each
            # re-sent BEV with its state again) is not this step's
            count = len(received)
            deadline = time.monotonic() + WAIT_S
            while not any(m.header.stamp.sec == stamp for m in received[count:]) and \
                    time.monotonic() < deadline:
                bev_pub.publish(_bev(cfg, stamp))
                rclpy.spin_once(node, timeout_sec=0.3)
        last = [m for m in received if m.header.stamp.sec == previous]
        assert last and last[-1].valid and np.isfinite(last[-1].prediction_error)
    finally:
        node.destroy_node()
        rclpy.shutdown()


def test_a_remapped_input_topic_is_the_one_used(tmp_path):
    """
    Relative topic names: in namespace /NS, `-r bev:=other_bev` makes it read /NS/other_bev.

    The namespace differs from the role name: topics follow the namespace, not role_name.
    """
    namespace = '/wm_remap_ns'
    proc, cfg, log, _ = _start(tmp_path, '-r', 'bev:=other_bev', namespace=namespace)
    rclpy.init()
    node = rclpy.create_node('wm_remap_test')
    received = []
    node.create_subscription(LatentState, f'{namespace}/latent_state', received.append, 10)
    default_pub = node.create_publisher(Image, f'{namespace}/bev', 10)
    remapped_pub = node.create_publisher(Image, f'{namespace}/other_bev', 10)
    try:
        deadline = time.monotonic() + WAIT_S
        while remapped_pub.get_subscription_count() == 0 and time.monotonic() < deadline \
                and proc.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.2)
        assert remapped_pub.get_subscription_count() == 1, 'no subscriber on the remapped topic'
        assert default_pub.get_subscription_count() == 0
        default_pub.publish(_bev(cfg, 21))       # nobody reads it: no state for stamp 21
        while not received and time.monotonic() < deadline and proc.poll() is None:
            remapped_pub.publish(_bev(cfg, 22))
            rclpy.spin_once(node, timeout_sec=0.3)
        assert received, 'no LatentState from a BEV on the remapped topic'
        assert {m.header.stamp.sec for m in received} == {22}
    finally:
        node.destroy_node()
        rclpy.shutdown()
        _stop(proc, log)


def test_composed_nodes_on_one_model_observe_as_one_batch(tmp_path):
    """
    Observe two vehicles' BEVs queued before the flush timer as one batch.

    Two world-model nodes in one process share a batcher; every step goes through it.

    Whether the executor delivers both DDS messages before the timer is an executor property
    (the events executor does, the single-threaded one often does not; bench_world_model
    measures the effect). Here the two BEV callbacks run back to back, as the events executor
    runs them, so the batch of two is checked on every distro.
    """
    try:
        from rclpy.experimental import EventsExecutor as Executor
    except ImportError:      # Humble: steps are still observed, batches may stay at one
        from rclpy.executors import SingleThreadedExecutor as Executor
    from call_world_model.world_model_node import WorldModelNode
    from rclpy.parameter import Parameter

    torch.manual_seed(0)
    cfg = tiny_config()
    path = str(tmp_path / 'tiny.pt')
    checkpoint.save(path, WorldModel(cfg), ActorCritic(cfg, cfg.feat_dim, cfg.num_actions),
                    cfg, step=0)
    roles = ['hero_batch_a', 'hero_batch_b']
    context = rclpy.Context()
    rclpy.init(context=context)
    nodes = [WorldModelNode(context=context, namespace=f'/{role}', parameter_overrides=[
        Parameter('checkpoint', value=path), Parameter('role_name', value=role),
        Parameter('publish_prediction', value=False)]) for role in roles]
    probe = rclpy.create_node('wm_batch_probe', context=context)
    executor = Executor(context=context)
    try:
        batcher = nodes[0].batch.batcher    # the process's batcher of the shared model
        assert nodes[1].model is nodes[0].model and nodes[1].batch.batcher is batcher
        assert batcher.members == 2
        received = {role: [] for role in roles}
        for role in roles:
            probe.create_subscription(LatentState, f'/{role}/latent_state',
                                      received[role].append, 10)
        pubs = [probe.create_publisher(Image, f'/{role}/bev', 10) for role in roles]
        for node in nodes + [probe]:
            executor.add_node(node)
        # over DDS: both nodes observe and publish, every step through the shared batcher
        deadline = time.monotonic() + WAIT_S
        stamp = 0
        while not all(received.values()) and time.monotonic() < deadline:
            stamp += 1
            for pub in pubs:
                pub.publish(_bev(cfg, stamp))
            for _ in range(10):
                executor.spin_once(timeout_sec=0.05)
        for role in roles:
            assert received[role], f'no LatentState from {role}'
            assert all(len(m.h) == cfg.deter for m in received[role])
        # every observed step went through the shared batcher
        assert batcher.stats['items'] == sum(n.counters['observed'] for n in nodes)
        # two BEVs handed in before the flush timer fires: one batch of two
        batches, observed = batcher.stats['batches'], [n.counters['observed'] for n in nodes]
        counts = {role: len(received[role]) for role in roles}
        stamp += 1
        for node in nodes:
            node.on_bev(_bev(cfg, stamp))
        assert batcher.pending and batcher.stats['batches'] == batches   # queued, not run
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and not all(
                any(m.header.stamp.sec == stamp for m in received[r][counts[r]:])
                for r in roles):
            executor.spin_once(timeout_sec=0.05)
        assert batcher.stats['batches'] == batches + 1 and batcher.stats['largest'] == 2
        assert [n.counters['observed'] for n in nodes] == [c + 1 for c in observed]
        for role in roles:
            assert any(m.header.stamp.sec == stamp for m in received[role][counts[role]:])
    finally:
        executor.shutdown()
        for node in nodes + [probe]:
            node.destroy_node()
        rclpy.shutdown(context=context)
    assert batcher.members == 0

"""The comm node over real DDS in its own process, fed crafted (partly hostile) messages."""
import math
import os
from pathlib import Path
import struct
import subprocess
import sys
import time

from call_comm import wire_codec as wc
from call_comm.auth import Fleet, key_id, public_raw, Signer
from call_comm.comm_node import from_msg, to_msg
from call_comm.keygen import write_fleet
from call_msgs.msg import CommStats, LatentMessage, LatentState, SharedInformation
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nav_msgs.msg import Odometry
import numpy as np
import pytest
from rcl_interfaces.srv import SetParameters
import rclpy
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message

CONFIG = Path(__file__).resolve().parents[1] / 'config' / 'comm.yaml'
V2V_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=64,
                     reliability=ReliabilityPolicy.BEST_EFFORT)
H_DIM = 16
WAIT = 10.0  # [s] upper bound of every wait; never hit when things work


class Harness:
    """Test-side ROS node: plays the world model, odometry and the other vehicles."""

    def __init__(self, key_dir: Path) -> None:
        self.node = rclpy.create_node('comm_test_harness')
        self.key_dir = key_dir
        self.fleet = Fleet.load(key_dir / 'fleet.yaml')
        self.signers = {v: Signer.load(v, key_dir / f'{v}.key.yaml', self.fleet)
                        for v in ('hero1', 'hero2', 'hero3')}
        self.state_pub = self.node.create_publisher(LatentState, '/hero0/latent_state', 10)
        self.odom_pub = self.node.create_publisher(Odometry, '/carla/hero0/odometry', 10)
        self.v2v_pub = self.node.create_publisher(LatentMessage, '/v2v/latents', V2V_QOS)
        self.stats, self.shared, self.own = {}, {}, []
        self.node.create_subscription(CommStats, '/hero0/comm_stats', self._on_stats, 10)
        self.node.create_subscription(SharedInformation, '/hero0/shared_info',
                                      self._on_shared, 10)
        self.node.create_subscription(LatentMessage, '/v2v/latents', self._on_v2v, V2V_QOS)
        self.t = 100.0
        self.seq = dict.fromkeys(self.signers, 0)
        # a key outside the fleet: its key id resolves to nobody
        self.stranger_key_id = key_id(public_raw(Ed25519PrivateKey.generate()))

    def key_id(self, sender):
        return self.fleet.key_id(sender) if self.fleet.knows(sender) else self.stranger_key_id

    def _on_stats(self, msg):
        self.stats[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg

    def _on_shared(self, msg):
        self.shared[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg

    def _on_v2v(self, msg):
        if msg.sender_key_id == self.fleet.key_id('hero0'):
            self.own.append(msg)

    def spin_until(self, condition, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rclpy.spin_once(self.node, timeout_sec=0.02)
            if condition():
                return True
        return False

    def stamp(self):
        sec = int(self.t)
        return sec, int(round((self.t - sec) * 1e9))

    def next_state(self, error=1.0):
        """Advance the clock one step; return (stamp key, own LatentState of that step)."""
        self.t = round(self.t + 0.1, 3)
        key = self.stamp()
        state = LatentState()
        state.header.stamp.sec, state.header.stamp.nanosec = key
        state.z_indices = bytes(range(32))
        state.h = [0.5] * H_DIM
        state.action = 3
        state.prediction_error = error
        state.valid = True
        return key, state

    def step(self, error=1.0):
        """Publish one own LatentState; return (CommStats, SharedInformation) of that step."""
        key, state = self.next_state(error)
        self.odom_pub.publish(self.odometry(key))
        self.state_pub.publish(state)
        ok = self.spin_until(lambda: key in self.stats and key in self.shared, timeout=2.0)
        return (self.stats.get(key), self.shared.get(key)) if ok else (None, None)

    def odometry(self, key, x=0.0):
        odom = Odometry()
        odom.header.frame_id = 'map'
        odom.header.stamp.sec, odom.header.stamp.nanosec = key
        odom.pose.pose.position.x = x
        odom.pose.pose.orientation.w = 1.0
        return odom

    def craft(self, sender='hero1', x=10.0, y=0.0, seq=None, t=None, sign_as=None):
        """
        Return a well-formed message of `sender` stamped one step before the coming step.

        The coming step takes it (messages stamped before the step, the one-step V2V latency).
        """
        if seq is None:
            self.seq[sender] = self.seq.get(sender, 0) + 1
            seq = self.seq[sender]
        stamp_t = round(self.t, 3) if t is None else t
        sec = int(stamp_t)
        wire = wc.encode(self.key_id(sender), seq, sec, int(round((stamp_t - sec) * 1e9)),
                         (x, y, 0.5, 7.0), np.arange(32)[::-1], np.linspace(-1, 1, H_DIM),
                         4, np.array([[x + 2.0, y + 1.0], [x + 4.0, y + 2.0]]), wc.H_FP16, 10)
        signer = self.signers.get(sign_as or sender)
        if signer is not None:
            wire.signature = signer.sign(wc.signed_payload(wire))
        return wire

    def send(self, wire):
        self.v2v_pub.publish(to_msg(wire))
        rclpy.spin_once(self.node, timeout_sec=0.05)


def _sign(harness, wire):
    sender = harness.fleet.vehicle_for_key_id(wire.sender_key_id)
    wire.signature = harness.signers[sender].sign(wc.signed_payload(wire))
    return wire


@pytest.fixture(scope='module')
def harness(tmp_path_factory):
    key_dir = tmp_path_factory.mktemp('fleet')
    write_fleet(['hero0', 'hero1', 'hero2', 'hero3'], key_dir)
    cmd = [sys.executable, '-m', 'call_comm.comm_node', '--ros-args', '-r', '__ns:=/hero0',
           '--params-file',
           str(CONFIG), '-p', 'role_name:=hero0', '-p', f'fleet_key_file:={key_dir}/fleet.yaml',
           '-p', f'private_key_file:={key_dir}/hero0.key.yaml', '-p', 'c:=10.0',
           '-p', 'initial_range:=20.0', '-p', f'expected_h_dim:={H_DIM}']
    proc = subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    rclpy.init()
    h = Harness(key_dir)
    try:
        matched = h.spin_until(lambda: h.v2v_pub.get_subscription_count() >= 1
                               and h.state_pub.get_subscription_count() >= 1
                               and h.odom_pub.get_subscription_count() >= 1, timeout=20.0)
        assert matched, 'comm node did not come up'
        stats = None
        for _ in range(20):  # odometry and state may race on the first steps
            stats, _ = h.step()
            if stats is not None:
                break
        assert stats is not None, 'comm node publishes no CommStats'
        h.proc = proc
        yield h
    finally:
        h.node.destroy_node()
        rclpy.shutdown()
        proc.kill()
        output = proc.communicate(timeout=10)[0].decode(errors='replace')
        print(output[-3000:])


def _accept_good(h, sender='hero1', x=10.0, attempts=10):
    """Send fresh good messages until one is accepted; return its step's (stats, shared)."""
    for _ in range(attempts):
        h.last_good = h.craft(sender, x=x)
        h.send(h.last_good)
        h.spin_until(lambda: False, timeout=0.15)
        stats, shared = h.step()
        if stats is not None and sender in list(stats.neighbours):
            return stats, shared
    raise AssertionError(f'no message of {sender} accepted')


def test_gate_grows_exactly_one_step_when_error_exceeds_c(harness):
    before, _ = harness.step(error=1.0)
    grown, _ = harness.step(error=10.5)
    kept, _ = harness.step(error=10.0)
    assert grown.comm_range == pytest.approx(before.comm_range + 5.0)
    assert grown.error_above_threshold and not kept.error_above_threshold
    assert kept.comm_range == grown.comm_range
    assert kept.threshold == pytest.approx(10.0)


def test_own_message_is_signed_and_bytes_sent_is_its_serialized_size(harness):
    stats, _ = harness.step()
    assert harness.spin_until(lambda: harness.own, timeout=2.0)
    own = harness.own[-1]
    wire = from_msg(own)
    assert harness.fleet.verify('hero0', wc.signed_payload(wire), wire.signature)
    assert stats.bytes_sent == len(serialize_message(own)) == wc.serialized_size(wire)
    assert len(own.z_packed) == 20 and len(own.h_data) == 2 * H_DIM


def test_good_neighbour_is_decoded_and_bytes_received_counted(harness):
    stats, shared = _accept_good(harness, 'hero1', x=10.0)
    neighbour = [n for n in shared.neighbours if n.sender_id == 'hero1'][0]
    np.testing.assert_array_equal(np.frombuffer(bytes(neighbour.z_indices), np.uint8),
                                  np.arange(32)[::-1])
    np.testing.assert_allclose(neighbour.h, np.linspace(-1, 1, H_DIM), atol=1e-3)
    np.testing.assert_allclose(np.reshape(neighbour.intention_xy, (-1, 2)),
                               [[12.0, 1.0], [14.0, 2.0]], atol=wc.WAYPOINT_RESOLUTION)
    assert neighbour.distance == pytest.approx(10.0)
    expected = len(serialize_message(to_msg(harness.craft('hero1', seq=0))))
    assert stats.bytes_received == expected
    assert stats.messages_accepted == 1


def _counter(stats, reason):
    return getattr(stats, f'dropped_{reason}')


def _hostile(h, reason):
    """Build one hostile message for `reason` (hero1 was last accepted at x = 10)."""
    if reason == 'unsigned':
        wire = h.craft('hero1')
        wire.signature = b''
    elif reason == 'bad_signature':
        wire = h.craft('hero1', sign_as='hero2')
    elif reason == 'unknown_sender':
        wire = h.craft('mallory')
        wire.signature = bytes([1] * 64)    # all zeros would count as unsigned
    elif reason == 'replay':
        wire = h.last_good  # a captured, validly signed message sent again
    elif reason == 'implausible':
        wire = h.craft('hero1', x=900.0)
    else:  # malformed variants
        wire = h.craft('hero1')
        kind = reason.split(':')[1]
        if kind == 'nan':
            wire.speed = math.nan
        elif kind == 'int8_scale':
            wire.h_encoding = wc.H_INT8
            wire.h_data = struct.pack('<f', math.inf) + bytes(H_DIM)
        elif kind == 'h_length':
            wire.h_data = wire.h_data[:-2]
        elif kind == 'h_encoding':
            wire.h_encoding = 42
        elif kind == 'action':
            wire.action = 200
        elif kind == 'intention':
            wire.intention_packed = wire.intention_packed[:-1]
        wire = _sign(h, wire)
    return wire


@pytest.mark.parametrize('reason', [
    'unsigned', 'bad_signature', 'unknown_sender', 'replay', 'implausible',
    'malformed:nan', 'malformed:int8_scale', 'malformed:h_length', 'malformed:h_encoding',
    'malformed:action', 'malformed:intention'])
def test_hostile_message_is_dropped_counted_and_good_ones_still_accepted(harness, reason):
    base, _ = _accept_good(harness, 'hero1', x=10.0)
    counter = reason.split(':')[0]
    stats = None
    for _ in range(10):
        harness.send(_hostile(harness, reason))
        harness.spin_until(lambda: False, timeout=0.15)
        stats, shared = harness.step()
        if stats is not None and _counter(stats, counter) > _counter(base, counter):
            break
    assert stats is not None and _counter(stats, counter) > _counter(base, counter)
    assert 'hero1' not in list(stats.neighbours)
    for other in ('unsigned', 'bad_signature', 'unknown_sender', 'replay', 'malformed',
                  'implausible'):
        if other != counter:
            assert _counter(stats, other) == _counter(base, other), other
    assert harness.proc.poll() is None
    _accept_good(harness, 'hero1', x=10.5)


def test_sender_out_of_range_is_counted_not_delivered(harness):
    base, _ = harness.step()
    for _ in range(10):
        harness.send(harness.craft('hero3', x=400.0))
        harness.spin_until(lambda: False, timeout=0.15)
        stats, _ = harness.step()
        if stats.dropped_out_of_range > base.dropped_out_of_range:
            break
    assert stats.dropped_out_of_range > base.dropped_out_of_range
    assert 'hero3' not in list(stats.neighbours)


def test_step_waits_for_the_pose_of_its_own_stamp(harness):
    """A state that overtakes its odometry is gated from that odometry's pose."""
    _accept_good(harness, 'hero1', x=10.0)          # in range of the ego at x = 0
    harness.send(harness.craft('hero1', x=10.0))
    harness.spin_until(lambda: False, timeout=0.15)
    key, state = harness.next_state()
    harness.state_pub.publish(state)        # the ego respawned 1 km away; its odometry lags
    assert not harness.spin_until(lambda: key in harness.stats, timeout=0.5)
    harness.odom_pub.publish(harness.odometry(key, x=1000.0))

    def own():
        return [m for m in harness.own if (m.stamp.sec, m.stamp.nanosec) == key]
    # the own message travels on another topic than the stats: wait for all three
    assert harness.spin_until(lambda: key in harness.stats and key in harness.shared and own())
    assert 'hero1' not in list(harness.stats[key].neighbours)
    assert own() and own()[-1].x == pytest.approx(1000.0)


def _set_threshold(harness, value):
    """Set c on the running node through its parameter service; return the result."""
    client = harness.node.create_client(SetParameters, '/hero0/comm/set_parameters')
    try:
        assert client.wait_for_service(timeout_sec=WAIT)
        request = SetParameters.Request()
        request.parameters = [Parameter('c', value=value).to_parameter_msg()]
        future = client.call_async(request)
        assert harness.spin_until(future.done)
        return future.result().results[0]
    finally:
        harness.node.destroy_client(client)


def test_c_set_on_the_running_node_gates_the_next_step(harness):
    """Users tune c live: after `ros2 param set ... c`, the next step uses it."""
    try:
        assert _set_threshold(harness, 0.0).successful
        stats, _ = harness.step(error=1.0)
        assert stats.threshold == 0.0
        assert stats.comm_range > 1e30               # c = 0: share with everyone
        assert _set_threshold(harness, 0.5).successful
        stats, _ = harness.step(error=1.0)           # E = 1 > c = 0.5: the range grows
        assert stats.threshold == pytest.approx(0.5) and stats.error_above_threshold
        refused = _set_threshold(harness, -1.0)
        assert not refused.successful and 'c must be >= 0' in refused.reason
        stats, _ = harness.step(error=1.0)
        assert stats.threshold == pytest.approx(0.5)
    finally:
        assert _set_threshold(harness, 10.0).successful


def test_odometry_arriving_after_the_next_state_never_gates_with_the_previous_pose(harness):
    """
    The odometry of step t arrives after the state of step t+1: step t runs with its own pose.

    The ego respawned 1 km away at step t; hero1 sits 10 m from where the ego was. Gating
    step t with the previous step's pose would deliver hero1 at 10 m.
    """
    stats, _ = _accept_good(harness, 'hero1', x=10.0)           # ego at x = 0
    epoch_before = harness.own[-1].h_encoding >> wc.EPOCH_SHIFT
    harness.send(harness.craft('hero1', x=10.0))
    harness.spin_until(lambda: False, timeout=0.15)
    key_t, state_t = harness.next_state()
    key_next, state_next = harness.next_state()
    harness.state_pub.publish(state_t)
    harness.spin_until(lambda: False, timeout=0.2)
    harness.state_pub.publish(state_next)
    harness.spin_until(lambda: False, timeout=0.3)
    harness.odom_pub.publish(harness.odometry(key_t, x=1000.0))
    harness.spin_until(lambda: False, timeout=0.2)
    harness.odom_pub.publish(harness.odometry(key_next, x=1000.5))
    assert harness.spin_until(lambda: key_next in harness.stats and key_next in harness.shared)
    for key in (key_t, key_next):
        if key in harness.stats:
            assert 'hero1' not in list(harness.stats[key].neighbours), key
            assert all(n.distance > 900.0 for n in harness.shared[key].neighbours), key
    own = [m for m in harness.own if (m.stamp.sec, m.stamp.nanosec) in (key_t, key_next)]
    assert own and all(m.x > 999.0 for m in own)
    # the teleport is announced: a new episode epoch, so receivers resync instead of
    # rejecting the jump as implausible
    assert all(m.h_encoding >> wc.EPOCH_SHIFT != epoch_before for m in own)
    assert harness.stats[key_next].steps_skipped_no_pose == stats.steps_skipped_no_pose


def _audit_size(raw: bytes) -> int:
    """Size of a sample by rclpy's own (de)serialization, independent of call_comm's codec."""
    try:
        return len(serialize_message(deserialize_message(raw, LatentMessage)))
    except Exception:  # noqa: B902 - undecodable bytes count as they came
        return len(raw)


def test_byte_audit_the_counters_add_up_to_the_messages_on_the_air(harness):
    """An independent subscriber counts /v2v/latents; the node's outcome counters agree."""
    seen = []
    auditor = rclpy.create_node('v2v_auditor')
    auditor.create_subscription(LatentMessage, '/v2v/latents',
                                lambda raw: seen.append((time.monotonic(), raw)),
                                QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=200,
                                           reliability=ReliabilityPolicy.BEST_EFFORT),
                                raw=True)
    own_id = harness.fleet.key_id('hero0')

    def spin(seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            rclpy.spin_once(harness.node, timeout_sec=0.01)
            rclpy.spin_once(auditor, timeout_sec=0.01)

    def traffic():
        """One of each outcome; every hostile kind the test module knows."""
        big = harness.craft('hero1', x=10.0)
        big.h_data = bytes(9000)                        # above max_h_bytes, one DDS fragment
        spoof = harness.craft('hero2', x=5.0)
        spoof.sender_key_id = own_id
        stranger = harness.craft('mallory')
        stranger.signature = bytes([1] * 64)
        return [harness.craft('hero1', x=10.0), harness.craft('hero1', x=10.2),  # superseded
                harness.craft('hero2', x=400.0), harness.craft('hero1', sign_as='hero2'),
                stranger, _hostile(harness, 'malformed:nan'),
                _hostile(harness, 'malformed:h_length'), harness.last_good, _sign(harness, big),
                spoof]
    try:
        assert harness.spin_until(lambda: harness.v2v_pub.get_subscription_count() >= 2)
        base, _ = _accept_good(harness, 'hero1', x=10.0)
        base_key = (base.header.stamp.sec, base.header.stamp.nanosec)
        spin(0.3)
        start = time.monotonic()
        for _ in range(3):
            for wire in traffic():
                harness.send(wire)
            harness.v2v_pub.publish(b'\x00\x01\x00\x00' + bytes(8))  # CDR nobody decodes
            spin(0.3)
            harness.step()
        final, _ = harness.step()
        spin(0.3)
        final_key = (final.header.stamp.sec, final.header.stamp.nanosec)
    finally:
        auditor.destroy_node()

    def counted(arrival, raw):
        """Whether the node counted this sample by the final step's CommStats."""
        try:
            msg = deserialize_message(raw, LatentMessage)
        except Exception:  # noqa: B902 - garbage: the harness sent it after `start`
            return arrival >= start
        if msg.sender_key_id == own_id and msg.x == 0.0:     # the node's own messages
            return base_key <= (msg.stamp.sec, msg.stamp.nanosec) < final_key
        return arrival >= start
    on_air = [raw for arrival, raw in seen if counted(arrival, raw)]
    received = final.received_total - base.received_total
    outcomes = ('accepted_total', 'superseded', 'own_id', *(
        f'dropped_{r}' for r in ('unsigned', 'bad_signature', 'unknown_sender', 'replay',
                                 'malformed', 'implausible', 'out_of_range', 'oversize',
                                 'rate_limited')))
    deltas = {name: getattr(final, name) - getattr(base, name) for name in outcomes}
    assert sum(deltas.values()) == received == len(on_air), deltas
    air_bytes = sum(_audit_size(raw) for raw in on_air)
    node_bytes = final.bytes_received_total - base.bytes_received_total
    assert abs(node_bytes - air_bytes) <= 0.01 * air_bytes, (node_bytes, air_bytes)
    for name in ('superseded', 'dropped_out_of_range', 'dropped_bad_signature',
                 'dropped_unknown_sender', 'dropped_replay', 'dropped_oversize'):
        assert deltas[name] >= 3, (name, deltas)
    assert deltas['dropped_malformed'] >= 9, deltas         # NaN, h length, undecodable
    assert deltas['own_id'] >= 3 + 3, deltas                # the spoofs and the own echoes


def test_keyframe_requests_have_counters_of_their_own_and_a_token_bucket(harness):
    from call_comm.comm_node import request_to_msg
    from call_comm.keyframes import KeyframeRequestWire, request_payload
    from call_msgs.msg import KeyframeRequest
    pub = harness.node.create_publisher(KeyframeRequest, '/v2v/keyframe_requests', V2V_QOS)
    assert harness.spin_until(lambda: pub.get_subscription_count() >= 1)
    base, _ = harness.step()
    sec, nsec = base.header.stamp.sec, base.header.stamp.nanosec

    def request(requester, target, seq, signer=None):
        req = KeyframeRequestWire(requester, target, seq, 0, sec, nsec)
        req.signature = (harness.signers[signer].sign(request_payload(req)) if signer
                         else bytes([7] * 64))
        return request_to_msg(req)
    sent = [request('hero1', 'hero0', seq, 'hero1') for seq in range(1, 6)]   # burst 2
    sent += [request('hero2', 'hero0', 1), request('mallory', 'hero0', 1),
             request('hero3', 'hero2', 1, 'hero3')]
    for msg in sent:
        pub.publish(msg)
    pub.publish(b'\x00\x01\x00\x00' + bytes(9))                 # CDR nobody can decode
    harness.spin_until(lambda: False, timeout=0.3)
    stats, _ = harness.step()

    def delta(name):
        return getattr(stats, name) - getattr(base, name)
    assert delta('keyframe_requests_received') == 2             # the bucket's burst
    assert delta('requests_rate_limited') == 3
    assert delta('requests_bad_signature') == 1                 # not shared with latents
    assert delta('dropped_bad_signature') == 0
    assert delta('requests_unknown_requester') == 1
    assert delta('requests_not_for_us') == 1
    assert delta('requests_malformed') == 1
    harness.node.destroy_publisher(pub)

"""
Keyframes over the signed link: first contact, loss -> request -> recovery, forgeries.

Also the sender policy: periodic, drift and chunked keyframes.
"""
import dataclasses

from call_comm import wire_codec as wc
from call_comm.auth import Fleet, Signer
from call_comm.inbox import DropReason, InboxConfig
from call_comm.keyframes import KeyframeConfig, KeyframeRequester, KeyframeSender
from call_comm.keygen import write_fleet
from call_comm.replica import ReplicaBank, SequenceModel
from call_comm.replica_link import LinkReceiver, LinkSender
from helpers_replica import Sender, tiny_model
import numpy as np
import pytest

TOL = 5e-3   # fp16 keyframe + propagation (test_replica states the same bound)


@pytest.fixture(scope='module')
def fleet_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp('keys')
    write_fleet(['hero0', 'hero1', 'hero2'], out)
    return out


def make_link(fleet_dir, model, period=50, max_bytes=1000):
    fleet = Fleet.load(fleet_dir / 'fleet.yaml')
    signers = {v: Signer.load(v, fleet_dir / f'{v}.key.yaml', fleet)
               for v in ('hero0', 'hero1', 'hero2')}
    seq_model = SequenceModel(model)
    cfg = KeyframeConfig(period=period, max_bytes=max_bytes, min_request_interval=1,
                         request_interval=3)
    sender = LinkSender('hero0', signers['hero0'], wc.H_FP16, 10,
                        KeyframeSender(cfg, seq_model))
    receiver = LinkReceiver(InboxConfig(own_id='hero1', max_age=1e9), fleet, signers['hero1'],
                            ReplicaBank(seq_model), KeyframeRequester(cfg.request_interval))
    return sender, receiver, signers


def send(link_sender, seq, z, a, h, t):
    return link_sender.message(seq, (int(t), 0), (0.0, 0.0, 0.0, 5.0), z, h, a,
                               np.array([[1.0, 0.0], [2.0, 0.0]]))


def deliver(receiver, wire, t):
    reason = receiver.receive(wire, wc.serialized_size(wire), float(t))
    delivery = receiver.collect((0.0, 0.0), 100.0, float(t))
    return reason, (delivery.neighbours[0] if delivery.neighbours else None)


def test_first_contact_gap_request_keyframe_recovery(fleet_dir):
    model = tiny_model(4)
    world = Sender(model, 4)
    link_sender, receiver, _ = make_link(fleet_dir, model)
    sizes, t = [], 10
    # first message: a keyframe (first contact), receiver synchronised at once
    z, a, h = world.step()
    wire = send(link_sender, 0, z, a, h, t)
    assert wire.h_encoding == wc.H_FP16 and link_sender.keyframe_reason == 'resync'
    reason, n = deliver(receiver, wire, t)
    assert reason is None and n.synchronised and np.max(np.abs(n.h - h)) < TOL
    for seq in range(1, 10):
        t += 1
        z, a, h = world.step()
        wire = send(link_sender, seq, z, a, h, t)
        assert wire.h_encoding == wc.H_NONE and not wire.h_data
        sizes.append(wc.serialized_size(wire))
        reason, n = deliver(receiver, wire, t)
        assert reason is None and n.synchronised and np.max(np.abs(n.h - h)) < TOL
    # v2: 136 B fixed with the 32 x 32 z (signature included) + 6 B of intention for these
    # 2 waypoints
    assert sizes == [142] * len(sizes)
    # message 10 is lost on the air
    t += 1
    z, a, h = world.step()
    send(link_sender, 10, z, a, h, t)
    # message 11 arrives: the gap is seen, h is withheld, pose/intention still delivered
    t += 1
    z, a, h = world.step()
    reason, n = deliver(receiver, send(link_sender, 11, z, a, h, t), t)
    assert reason is None and not n.synchronised and n.h.size == 0
    assert n.intention_xy.shape == (2, 2) and n.x == 0.0
    requests = receiver.take_requests((t, 0))
    assert [(r.requester_id, r.target_id, r.last_sequence) for r in requests] == [
        ('hero1', 'hero0', 11)]
    # the sender verifies the request and answers with a keyframe on its next message
    sender_side = LinkReceiver(InboxConfig(own_id='hero0', max_age=1e9), receiver.fleet)
    assert sender_side.accept_request(requests[0], float(t))
    assert not sender_side.accept_request(requests[0], float(t))       # replayed request
    link_sender.keyframes.request()
    t += 1
    z, a, h = world.step()
    wire = send(link_sender, 12, z, a, h, t)
    assert link_sender.keyframe_reason == 'request' and wire.h_encoding == wc.H_FP16
    reason, n = deliver(receiver, wire, t)
    assert reason is None and n.synchronised and np.max(np.abs(n.h - h)) < TOL
    assert receiver.counters.keyframes_received == 2
    for seq in range(13, 20):
        t += 1
        z, a, h = world.step()
        _, n = deliver(receiver, send(link_sender, seq, z, a, h, t), t)
        assert n.synchronised and np.max(np.abs(n.h - h)) < TOL


def test_forged_keyframe_and_forged_request_are_rejected(fleet_dir):
    model = tiny_model(5)
    world = Sender(model, 5)
    link_sender, receiver, signers = make_link(fleet_dir, model)
    z, a, h = world.step()
    deliver(receiver, send(link_sender, 0, z, a, h, 10), 10)
    z, a, h = world.step()
    honest = send(link_sender, 1, z, a, h, 11)
    # tampered keyframe: h replaced after signing
    data = wc.quantise_h(np.full_like(h, 0.9), wc.H_FP16)
    tampered = dataclasses.replace(honest, h_encoding=wc.H_FP16, h_data=data)
    assert deliver(receiver, tampered, 11)[0] == DropReason.BAD_SIGNATURE
    # keyframe signed by another fleet member in hero0's name
    forged = dataclasses.replace(tampered)
    forged.signature = signers['hero2'].sign(wc.signed_payload(forged))
    assert deliver(receiver, forged, 11)[0] == DropReason.BAD_SIGNATURE
    assert receiver.inbox.dropped[DropReason.BAD_SIGNATURE] == 2
    # the replica was not touched: the honest message still rebuilds the true h
    reason, n = deliver(receiver, honest, 11)
    assert reason is None and n.synchronised and np.max(np.abs(n.h - h)) < TOL
    # a forged request is refused
    requests = receiver.take_requests((11, 0))
    receiver._wanted.append(('hero0', 1))
    req = receiver.take_requests((11, 0))[0]
    req.target_id = 'hero2'
    sender_side = LinkReceiver(InboxConfig(own_id='hero2', max_age=1e9), receiver.fleet)
    assert requests == [] and not sender_side.accept_request(req, 11.0)


def test_periodic_and_chunked_keyframes(fleet_dir):
    model = tiny_model(6)
    world = Sender(model, 6)
    # deter 32 fp16 = 64 B: 30-byte frames split it into 3 chunks of 11 values (+2 header)
    link_sender, receiver, _ = make_link(fleet_dir, model, period=8, max_bytes=24)
    reasons, synced = [], []
    for seq in range(30):
        z, a, h = world.step()
        wire = send(link_sender, seq, z, a, h, 10 + seq)
        assert len(wire.h_data) <= 24
        reasons.append(link_sender.keyframe_reason)
        _, n = deliver(receiver, wire, 10 + seq)
        synced.append(n.synchronised)
        if n.synchronised:
            assert np.max(np.abs(n.h - h)) < TOL
    assert reasons[0] == 'resync'
    assert [i for i, r in enumerate(reasons) if r == 'periodic'] == [8, 16, 24]
    assert synced[:3] == [False, False, True] and all(synced[2:])
    assert receiver.counters.keyframes_received == 4


def test_drift_beyond_tolerance_triggers_keyframe():
    model = tiny_model(7)
    world = Sender(model, 7)
    sender = KeyframeSender(KeyframeConfig(period=1000, drift_tolerance=0.05),
                            SequenceModel(model))
    z, a, h = world.step()
    assert sender.outgoing(0, z, a, h).reason == 'resync'
    z, a, h = world.step()
    assert sender.outgoing(1, z, a, h).reason is None
    z, a, h = world.step()
    assert sender.outgoing(2, z, a, h + 0.1).reason == 'drift'   # e.g. the model was reset
    with pytest.raises(ValueError):
        KeyframeConfig(period=0)


def test_the_senders_mirror_is_the_h_a_lazy_receiver_delivers_bit_for_bit(fleet_dir):
    # the comm node adds (z, mirror) of its last message to its view batch for the other
    # nodes of its process: that is only of use if their receivers deliver exactly that
    model = tiny_model(7)
    world = Sender(model, 7)
    fleet = Fleet.load(fleet_dir / 'fleet.yaml')
    seq_model = SequenceModel(model)
    cfg = KeyframeConfig(period=10, max_bytes=1000, encoding=wc.H_INT8)
    link_sender = LinkSender('hero0', Signer.load('hero0', fleet_dir / 'hero0.key.yaml', fleet),
                             wc.H_FP16, 10, KeyframeSender(cfg, seq_model))
    receiver = LinkReceiver(InboxConfig(own_id='hero1', max_age=1e9), fleet, None,
                            ReplicaBank(seq_model, lazy=True), KeyframeRequester(3))
    compared = 0
    for seq in range(30):
        z, a, h = world.step()
        wire = send(link_sender, seq, z, a, h, 10 + seq)
        mirror = link_sender.keyframes.mirror()
        _, neighbour = deliver(receiver, wire, 10 + seq)
        assert mirror is not None and neighbour.synchronised
        assert neighbour.z_indices.tobytes() == z.tobytes()
        assert neighbour.h.dtype == mirror.dtype and neighbour.h.tobytes() == mirror.tobytes()
        compared += 1
    assert compared == 30 and link_sender.keyframes.keyframes_started >= 3

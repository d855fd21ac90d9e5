"""Fleet keys, signatures and the inbox's drop reasons (ROS-free core)."""
import base64
import hashlib
import math

from call_comm import wire_codec as wc
from call_comm.auth import Fleet, key_id, KeyFileError, Signer
from call_comm.inbox import DropReason, Inbox, InboxConfig, Outcome
from call_comm.keygen import write_fleet
import numpy as np
import pytest
import yaml

STRANGER_KEY_ID = 0xDEADBEEF


@pytest.fixture(scope='module')
def keys(tmp_path_factory):
    out = tmp_path_factory.mktemp('keys')
    fleet_path = write_fleet(['hero0', 'hero1', 'hero2'], out)
    return out, Fleet.load(fleet_path)


def _key_id(keys, sender):
    fleet = keys[1]
    return fleet.key_id(sender) if fleet.knows(sender) else STRANGER_KEY_ID


def _wire(keys, sender='hero1', seq=1, t=10.0, x=5.0, y=0.0, h_dim=4,
          layout=wc.DEFAULT_LAYOUT):
    sec = int(t)
    return wc.encode(_key_id(keys, sender), seq, sec, int(round((t - sec) * 1e9)),
                     (x, y, 0.3, 8.0), np.arange(layout.latents) % layout.classes,
                     np.linspace(-1, 1, h_dim), 2, np.array([[x + 1, y], [x + 2, y]]),
                     wc.H_FP16, 10, layout)


def _signed(keys, wire, signer_id=None):
    out, fleet = keys
    vehicle = signer_id or fleet.vehicle_for_key_id(wire.sender_key_id)
    signer = Signer.load(vehicle, out / f'{vehicle}.key.yaml')
    wire.signature = signer.sign(wc.signed_payload(wire))
    return wire


def test_keygen_writes_private_keys_readable_only_by_owner(keys):
    out, fleet = keys
    assert (out / 'hero0.key.yaml').stat().st_mode & 0o077 == 0
    assert fleet.knows('hero2') and not fleet.knows('hero9')


def test_key_id_is_the_big_endian_sha256_prefix_of_the_public_key(keys):
    out, fleet = keys
    entry = yaml.safe_load((out / 'fleet.yaml').read_text())['vehicles']['hero1']
    raw = base64.b64decode(entry['public_key'])
    expected = int.from_bytes(hashlib.sha256(raw).digest()[:4], 'big')
    assert key_id(raw) == fleet.key_id('hero1') == expected
    assert Signer.load('hero1', out / 'hero1.key.yaml').key_id == expected
    assert fleet.vehicle_for_key_id(expected) == 'hero1'
    assert fleet.vehicle_for_key_id(STRANGER_KEY_ID) is None
    assert len({fleet.key_id(v) for v in ('hero0', 'hero1', 'hero2')}) == 3


def test_fleet_with_two_vehicles_sharing_a_key_id_fails_fast(keys, tmp_path):
    out, _ = keys
    vehicles = yaml.safe_load((out / 'fleet.yaml').read_text())['vehicles']
    vehicles['hero9'] = dict(vehicles['hero1'])          # same public key -> same key id
    (tmp_path / 'fleet.yaml').write_text(yaml.safe_dump({'vehicles': vehicles}))
    with pytest.raises(KeyFileError, match='share the key id'):
        Fleet.load(tmp_path / 'fleet.yaml')


def test_signer_refuses_a_key_file_of_another_vehicle_or_missing_file(keys, tmp_path):
    out, fleet = keys
    with pytest.raises(KeyFileError):
        Signer.load('hero0', out / 'hero1.key.yaml', fleet)
    with pytest.raises(KeyFileError):
        Signer.load('hero0', tmp_path / 'absent.yaml', fleet)
    (tmp_path / 'bad.yaml').write_text('vehicles: {hero0: {public_key: abc}}')
    with pytest.raises(KeyFileError):
        Fleet.load(tmp_path / 'bad.yaml')


def test_embedded_demo_fleet_signs_and_verifies(tmp_path):
    fleet = Fleet.load(write_fleet(['a', 'b'], tmp_path, embed_private=True))
    signer = Signer.load('a', '', fleet)
    assert fleet.verify('a', b'payload', signer.sign(b'payload'))
    assert not fleet.verify('b', b'payload', signer.sign(b'payload'))


def test_verdicts_are_remembered_by_key_payload_and_signature(tmp_path):
    """A container's comm nodes verify each message once; any changed byte is checked anew."""
    path = write_fleet(['a', 'b'], tmp_path, embed_private=True)
    first, second = Fleet.load(path), Fleet.load(path)
    signer = Signer.load('a', '', first)
    signature = signer.sign(b'step 7')
    checked = first.verifications, second.verifications     # Signer.load checks its key
    assert first.verify('a', b'step 7', signature)
    assert second.verify('a', b'step 7', signature)
    assert (first.verifications - checked[0], second.verifications - checked[1]) == (1, 0)
    assert not second.verify('a', b'step 8', signature)              # tampered payload
    forged = bytes([signature[0] ^ 1]) + signature[1:]
    assert not second.verify('a', b'step 7', forged)
    assert not first.verify('a', b'step 7', forged)                  # remembered as bad
    assert (first.verifications - checked[0], second.verifications - checked[1]) == (1, 2)
    # another fleet naming a different key 'a' never reuses a's verdicts
    other = Fleet.load(write_fleet(['a', 'b'], tmp_path / 'other', embed_private=True))
    assert not other.verify('a', b'step 7', signature) and other.verifications == 1


def _inbox(keys, **overrides):
    config = InboxConfig(own_id='hero0', expected_h_dim=4, **overrides)
    return Inbox(config, keys[1])


def test_each_hostile_kind_is_dropped_under_its_reason(keys):
    inbox = _inbox(keys, sender_budget_burst=100.0)   # one writer sends them all at once
    assert inbox.receive(_signed(keys, _wire(keys, seq=1, t=10.0)), 100, now=10.0) is None
    unsigned = _wire(keys, seq=2, t=10.1)
    zero_signature = _wire(keys, seq=2, t=10.1)
    zero_signature.signature = bytes(64)       # what an unsigned message looks like on DDS
    forged = _signed(keys, _wire(keys, 'hero2', seq=3, t=10.1))
    forged.sender_key_id = keys[1].key_id('hero1')
    tampered = _signed(keys, _wire(keys, seq=4, t=10.1))
    tampered.x += 1.0
    stranger = _wire(keys, sender='mallory', seq=1, t=10.1)
    stranger.signature = bytes([1] * 64)
    nan_pose = _signed(keys, _wire(keys, seq=5, t=10.1))
    nan_pose.yaw = math.nan
    nan_pose = _signed(keys, nan_pose)
    short_z = _wire(keys, seq=6, t=10.1)
    short_z.z_packed = short_z.z_packed[:19]
    wrong_h = _wire(keys, seq=7, t=10.1, h_dim=5)
    bad_action = _wire(keys, seq=8, t=10.1)
    bad_action.action = 15
    bad_encoding = _wire(keys, seq=9, t=10.1)
    bad_encoding.h_encoding = 9
    replay = _signed(keys, _wire(keys, seq=1, t=10.0))
    stale = _signed(keys, _wire(keys, seq=10, t=9.0))
    future = _signed(keys, _wire(keys, seq=11, t=12.0))
    jump = _signed(keys, _wire(keys, seq=12, t=10.1, x=500.0))
    cases = [(unsigned, DropReason.UNSIGNED), (zero_signature, DropReason.UNSIGNED),
             (forged, DropReason.BAD_SIGNATURE),
             (tampered, DropReason.BAD_SIGNATURE), (stranger, DropReason.UNKNOWN_SENDER),
             (nan_pose, DropReason.MALFORMED), (_signed(keys, short_z), DropReason.MALFORMED),
             (_signed(keys, wrong_h), DropReason.MALFORMED),
             (_signed(keys, bad_action), DropReason.MALFORMED),
             (_signed(keys, bad_encoding), DropReason.MALFORMED),
             (replay, DropReason.REPLAY), (stale, DropReason.REPLAY),
             (future, DropReason.IMPLAUSIBLE), (jump, DropReason.IMPLAUSIBLE)]
    for wire, reason in cases:
        assert inbox.receive(wire, 100, now=10.1) is reason, reason
    expected = {reason: sum(1 for _, r in cases if r is reason) for reason in DropReason}
    assert inbox.dropped == expected
    good = _signed(keys, _wire(keys, seq=13, t=10.1, x=7.0))
    assert inbox.receive(good, 123, now=10.1) is None
    delivery = inbox.collect((0.0, 0.0), 50.0, now=10.1)
    assert [n.sender_id for n in delivery.neighbours] == ['hero1']
    assert delivery.neighbours[0].distance == pytest.approx(7.0)
    assert delivery.bytes_received == 123
    assert delivery.messages_received == len(cases) + 2


def test_a_z_of_another_model_layout_is_dropped_as_malformed_never_decoded(keys):
    """One fleet, one model: a receiver takes only z of its own model's (stoch, classes)."""
    small64 = wc.ZLayout(128, 16)
    for own, other in ((wc.DEFAULT_LAYOUT, small64), (small64, wc.DEFAULT_LAYOUT)):
        inbox = _inbox(keys, z_layout=own)
        stranger = _wire(keys, seq=1, t=10.0, layout=other)
        # all-zero indices: only the length tells this z from one of the receiver's model
        stranger.z_packed = bytes(other.packed_bytes)
        stranger = _signed(keys, stranger)
        assert inbox.receive_raw(_raw(stranger), now=10.0) is DropReason.MALFORMED
        assert inbox.receive(stranger, 100, now=10.0) is DropReason.MALFORMED
        assert inbox.dropped[DropReason.MALFORMED] == sum(inbox.dropped.values()) == 2
        assert inbox.collect((0.0, 0.0), 50.0, now=10.0).neighbours == []
        own_wire = _signed(keys, _wire(keys, seq=2, t=10.1, layout=own))
        assert inbox.receive_raw(_raw(own_wire), now=10.1) is None
        delivered = inbox.collect((0.0, 0.0), 50.0, now=10.1).neighbours
        np.testing.assert_array_equal(delivered[0].z_indices,
                                      np.arange(own.latents) % own.classes)


def test_garbage_fields_never_raise(keys):
    inbox = _inbox(keys)
    for name, value in [('sender_key_id', None), ('sender_key_id', -1),
                        ('sender_key_id', 2 ** 32), ('x', 'ten'), ('h_data', None)]:
        garbage = _wire(keys)
        garbage.signature = b'\x01' * 64
        setattr(garbage, name, value)
        assert inbox.receive(garbage, 1, now=None) in (
            DropReason.MALFORMED, DropReason.UNKNOWN_SENDER), name
    assert inbox.dropped[DropReason.MALFORMED] >= 3


def test_collect_gates_by_range_and_ignores_own_messages(keys):
    inbox = _inbox(keys)
    own = _signed(keys, _wire(keys, 'hero0', seq=1))
    assert inbox.receive(own, 100, now=10.0) is Outcome.OWN_ID
    assert inbox.dropped == dict.fromkeys(DropReason, 0)      # own message: not a drop
    inbox.receive(_signed(keys, _wire(keys, 'hero1', seq=1, x=10.0)), 100, now=10.0)
    inbox.receive(_signed(keys, _wire(keys, 'hero2', seq=1, x=40.0)), 100, now=10.0)
    delivery = inbox.collect((0.0, 0.0), 20.0, now=10.0)
    assert [n.sender_id for n in delivery.neighbours] == ['hero1']
    assert inbox.dropped[DropReason.OUT_OF_RANGE] == 1
    assert delivery.messages_received == 3
    assert inbox.collect((0.0, 0.0), math.inf, now=10.1).neighbours == []  # consumed


def test_new_episode_with_time_going_back_resets_replay_state(keys):
    inbox = _inbox(keys)
    inbox.receive(_signed(keys, _wire(keys, seq=50, t=100.0)), 100, now=100.0)
    inbox.collect((0.0, 0.0), 50.0, now=100.0)
    assert inbox.receive(_signed(keys, _wire(keys, seq=0, t=0.1, x=-30.0)), 100,
                         now=0.1) is None


def _raw(wire):
    from call_comm.comm_node import to_msg
    from rclpy.serialization import serialize_message
    return serialize_message(to_msg(wire))


def test_a_forger_flooding_under_an_honest_key_spends_only_its_own_budget(keys):
    inbox = _inbox(keys, sender_budget_burst=5.0, sender_budget_refill=2.0)
    fleet = keys[1]
    before = fleet.verifications
    for seq in range(1, 201):
        forged = _signed(keys, _wire(keys, 'hero2', seq=seq, t=10.0))
        forged.sender_key_id = fleet.key_id('hero1')
        inbox.receive_raw(_raw(forged), now=10.0, writer=b'mallory')
    assert inbox.dropped[DropReason.BAD_SIGNATURE] == 5            # the burst, then no crypto
    assert inbox.dropped[DropReason.RATE_LIMITED] == 195
    assert fleet.verifications - before <= 5
    honest = _signed(keys, _wire(keys, 'hero1', seq=1, t=10.0))
    assert inbox.receive_raw(_raw(honest), now=10.0, writer=b'hero1 writer') is None
    inbox.collect((0.0, 0.0), 50.0, now=10.0)                      # one step: +2 tokens
    forged.sequence = 500
    assert inbox.receive_raw(_raw(_signed(keys, forged, 'hero2')), now=10.0,
                             writer=b'mallory') is DropReason.BAD_SIGNATURE


def test_oversize_and_undecodable_bytes_are_counted_without_cryptography(keys):
    inbox = _inbox(keys)
    fleet = keys[1]
    before = fleet.verifications
    big = _wire(keys, 'hero1', seq=1, t=10.0)
    big.h_data = bytes(512 * 1024)
    big = _signed(keys, big)
    assert inbox.receive_raw(_raw(big), now=10.0) is DropReason.OVERSIZE
    assert inbox.receive_raw(b'\x00\x01\x00\x00garbage', now=10.0) is DropReason.MALFORMED
    trailing = _raw(_signed(keys, _wire(keys, 'hero1', seq=2, t=10.0)))[:-30]
    assert inbox.receive_raw(trailing, now=10.0) is DropReason.MALFORMED
    assert fleet.verifications == before
    assert inbox.tally.total == 3
    assert inbox.tally.total_bytes == len(_raw(big)) + 11 + len(trailing)


def test_every_message_ends_in_exactly_one_outcome_with_its_bytes(keys):
    inbox = _inbox(keys)
    sizes = []

    def send(wire):
        raw = _raw(wire)
        sizes.append(len(raw))
        inbox.receive_raw(raw, now=10.0)
    send(_signed(keys, _wire(keys, 'hero0', seq=1)))                 # own echo
    first = _signed(keys, _wire(keys, 'hero1', seq=1, t=9.91, x=10.0))
    send(first)
    for seq in (2, 3):                                               # 2 superseded
        send(_signed(keys, _wire(keys, 'hero1', seq=seq, t=9.9 + seq * 0.01, x=10.0)))
    send(_signed(keys, _wire(keys, 'hero2', seq=1, x=400.0)))        # out of range
    send(first)                                                      # replay
    delivery = inbox.collect((0.0, 0.0), 50.0, now=10.0)
    tally = inbox.tally
    assert [n.sender_id for n in delivery.neighbours] == ['hero1']
    assert tally.count(Outcome.OWN_ID) == tally.count(Outcome.ACCEPTED) == 1
    assert tally.count(Outcome.SUPERSEDED) == 2
    assert tally.count(DropReason.OUT_OF_RANGE) == tally.count(DropReason.REPLAY) == 1
    assert tally.total == delivery.messages_received == len(sizes) == 6
    assert tally.total_bytes == sum(sizes)
    assert delivery.bytes_received == sizes[3]
    assert delivery.bytes_in_range == sum(sizes[1:4])      # delivered + superseded, in range


def test_a_respawned_sender_with_a_new_epoch_is_resynced_not_implausible(keys):
    inbox = _inbox(keys)
    assert inbox.receive(_signed(keys, _wire(keys, seq=1, t=10.0)), 100, now=10.0) is None
    teleport = _wire(keys, seq=2, t=10.1, x=1500.0)
    assert inbox.receive(_signed(keys, teleport), 100, now=10.1) is DropReason.IMPLAUSIBLE
    teleport.epoch = 1
    assert inbox.receive(_signed(keys, teleport), 100, now=10.1) is None
    old_epoch_replay = _signed(keys, _wire(keys, seq=1, t=10.0))
    assert inbox.receive(old_epoch_replay, 100, now=10.1) is DropReason.REPLAY
    back = _wire(keys, seq=3, t=10.2, x=5.0)
    back.epoch = 1
    assert inbox.receive(_signed(keys, back), 100, now=10.2) is DropReason.IMPLAUSIBLE


def test_the_verdict_memo_keeps_digests_not_payloads(tmp_path):
    path = write_fleet(['a'], tmp_path, embed_private=True)
    fleet = Fleet.load(path)
    signer = Signer.load('a', '', fleet)
    payload = bytes(512 * 1024)
    assert fleet.verify('a', payload, signer.sign(payload))
    assert not fleet.verify('a', payload + b'x', bytes(64))
    assert all(len(key) == 32 for key in Fleet._verdicts)
    assert len(Fleet._verdicts) <= Fleet.VERDICT_MEMO


def test_a_keyframe_of_too_many_chunks_is_malformed(keys):
    inbox = _inbox(keys, max_keyframe_chunks=4)
    wire = _wire(keys, seq=1, t=10.0, h_dim=0)
    wire.h_encoding, wire.h_data = wc.H_FP16_CHUNK, bytes([0, 5]) + bytes(8)
    assert inbox.receive(_signed(keys, wire), 100, now=10.0) is DropReason.MALFORMED
    wire.h_data = bytes([0, 4]) + bytes(8)
    assert inbox.receive(_signed(keys, wire), 100, now=10.0) is None


def test_a_sender_that_respawns_announces_it_and_is_never_muted(keys):
    from call_comm.replica_link import LinkSender
    out, fleet = keys
    sender = LinkSender('hero1', Signer.load('hero1', out / 'hero1.key.yaml'), wc.H_FP16, 5)
    inbox = Inbox(InboxConfig(own_id='hero0'), fleet)
    accepted = []
    for step in range(30):
        t = 10.0 + 0.1 * step
        x = 5.0 + step if step < 10 else 1500.0 + step      # respawned 1.5 km away at step 10
        wire = sender.message(step, (int(t), int(round((t % 1) * 1e9))), (x, 0.0, 0.0, 8.0),
                              np.arange(32) % 32, np.zeros(4), 2, np.zeros((0, 2)))
        accepted.append(inbox.receive(wire, 147, now=t) is None)
        inbox.collect((0.0, 0.0), math.inf, now=t)
    assert all(accepted)
    assert sender.epoch == 1 and inbox.dropped[DropReason.IMPLAUSIBLE] == 0


def test_a_step_takes_the_previous_steps_messages_whatever_arrived_first(keys):
    # the receiver's step at t = 10.1 takes hero1's 10.0 message even though hero1's 10.1
    # message came in first; that one waits for the step at 10.2 (the pipeline's one-step
    # V2V latency), and every message still ends in exactly one outcome
    inbox = _inbox(keys)
    early = _signed(keys, _wire(keys, 'hero1', seq=1, t=9.9, x=9.0))
    late = _signed(keys, _wire(keys, 'hero1', seq=2, t=10.0, x=10.0))
    ahead = _signed(keys, _wire(keys, 'hero1', seq=3, t=10.1, x=11.0))
    for wire in (early, late, ahead):
        assert inbox.receive(wire, 100, now=10.1) is None
    first = inbox.collect((0.0, 0.0), 50.0, now=10.1, before=(10, 100_000_000))
    assert [(n.sender_id, n.sequence, n.x) for n in first.neighbours] == [('hero1', 2, 10.0)]
    assert inbox.tally.count(Outcome.SUPERSEDED) == 1       # the 9.9 one
    assert first.bytes_in_range == 200
    second = inbox.collect((0.0, 0.0), 50.0, now=10.2, before=(10, 200_000_000))
    assert [n.sequence for n in second.neighbours] == [3]
    assert inbox.tally.count(Outcome.ACCEPTED) == 2
    assert inbox.tally.total == 3
    assert inbox.collect((0.0, 0.0), 50.0, now=10.3, before=(10, 300_000_000)).neighbours == []


def test_receivers_in_one_process_decode_a_sample_once_and_keep_their_own_neighbours(
        keys, monkeypatch):
    # a container's comm nodes all receive the same serialized sample: one decode, one
    # Neighbour copy each, and each receiver's own limits still judge it
    decoded = []
    real = wc.decode_cdr
    monkeypatch.setattr(wc, 'decode_cdr', lambda raw: decoded.append(raw) or real(raw))
    raw = _raw(_signed(keys, _wire(keys, 'hero1', seq=7, t=20.0, x=3.0)))
    inboxes = [_inbox(keys), _inbox(keys), _inbox(keys, num_actions=2)]  # action 2: malformed
    outcomes = [inbox.receive_raw(raw, now=20.0) for inbox in inboxes]
    assert outcomes == [None, None, DropReason.MALFORMED]
    assert len(decoded) == 1
    first, second = (inbox.collect((0.0, 0.0), 50.0, now=20.05).neighbours
                     for inbox in inboxes[:2])
    assert len(first) == len(second) == 1 and first[0] is not second[0]
    first[0].distance = -1.0
    assert second[0].distance == pytest.approx(3.0)
    assert second[0].z_indices.tolist() == (np.arange(32) % 32).tolist()

"""Replica world model: a receiver rebuilds a sender's h from (z, a) alone."""
from call_comm import wire_codec as wc
from call_comm.replica import Replica, ReplicaBank, SequenceModel
from helpers_replica import Sender, tiny_model
import numpy as np
import pytest

# Stated tolerance: starting from the exact h, 200 rebuilt steps equal the sender's h
# bit for bit (same function, float32, batch of one, one thread, exact one-hot inputs).
EXACT_TOLERANCE = 0.0
# From an fp16 keyframe (quantisation error <= 4.9e-4) the difference stays below this.
FP16_TOLERANCE = 5e-3


@pytest.mark.parametrize('layout', [{}, {'stoch': 128, 'classes': 16}])
def test_rebuilt_h_equals_sender_h_over_200_steps_without_keyframes(layout):
    model = tiny_model(**layout)
    sequence_model = SequenceModel(model)
    wire = sequence_model.layout            # z as the receiver unpacks it from the message
    assert (wire.latents, wire.classes) == (model.cfg.stoch, model.cfg.classes)
    sender, replica = Sender(model), Replica(sequence_model)
    z, a, h = sender.step()
    update = replica.observe(0, z, a, wc.KeyframePart(0, 1, h.astype(np.float32)))
    assert update.keyframe_completed and np.array_equal(update.h, h)
    worst = 0.0
    for seq in range(1, 201):
        z, a, h = sender.step()
        update = replica.observe(seq, wc.unpack_z(wc.pack_z(z, wire), wire), a)
        assert update.h is not None and not update.gap
        worst = max(worst, float(np.max(np.abs(update.h - h))))
    assert worst <= EXACT_TOLERANCE


def test_fp16_keyframe_drift_stays_bounded():
    model = tiny_model(1)
    sender, replica = Sender(model, 1), Replica(SequenceModel(model))
    z, a, h = sender.step()
    (enc, data), = wc.keyframe_parts(h, wc.H_FP16, 1000)
    replica.observe(0, z, a, wc.decode_keyframe_part(enc, data))
    diffs = []
    for seq in range(1, 201):
        z, a, h = sender.step()
        diffs.append(float(np.max(np.abs(replica.observe(seq, z, a).h - h))))
    assert 0.0 < max(diffs) <= FP16_TOLERANCE, max(diffs)


def test_gap_desynchronises_and_chunked_keyframe_resynchronises():
    model = tiny_model(2)
    sender, replica = Sender(model, 2), Replica(SequenceModel(model))
    history = [sender.step() for _ in range(12)]
    z, a, h = history[0]
    replica.observe(0, z, a, wc.KeyframePart(0, 1, h))
    for seq in (1, 2):
        replica.observe(seq, *history[seq][:2])
    update = replica.observe(4, *history[4][:2])          # message 3 was lost
    assert update.gap and update.h is None and not replica.synchronised
    # the sender answers with a keyframe of h_5 split into 3 chunks (messages 5, 6, 7)
    parts = wc.keyframe_parts(history[5][2], wc.H_FP16, 2 + 2 * 11)
    assert len(parts) == 3 and all(len(d) <= 24 for _, d in parts)
    for i, seq in enumerate((5, 6, 7)):
        update = replica.observe(seq, *history[seq][:2], wc.decode_keyframe_part(*parts[i]))
        assert (update.h is None) == (i < 2)
    assert update.keyframe_completed
    assert np.max(np.abs(update.h - history[7][2])) < FP16_TOLERANCE
    for seq in range(8, 12):
        update = replica.observe(seq, *history[seq][:2])
        assert np.max(np.abs(update.h - history[seq][2])) < FP16_TOLERANCE


def test_drift_is_measured_on_keyframes_and_bank_evicts():
    model = tiny_model(3)
    sender, bank = Sender(model, 3), ReplicaBank(SequenceModel(model), max_senders=2)
    z, a, h = sender.step()
    bank.observe('hero1', 0, z, a, wc.KeyframePart(0, 1, h))
    for seq in range(1, 5):
        z, a, h = sender.step()
        update = bank.observe('hero1', seq, z, a, None)
    z, a, h = sender.step()
    update = bank.observe('hero1', 5, z, a, wc.KeyframePart(0, 1, h + 0.25))
    assert update.drift_max == pytest.approx(0.25, abs=1e-6)
    assert update.drift_l2 == pytest.approx(0.25 * np.sqrt(model.cfg.deter), rel=1e-5)
    bank.observe('hero2', 0, z, a, None)
    bank.observe('hero3', 0, z, a, None)
    assert not bank.synchronised('hero1')   # evicted: least recently heard


def test_legacy_conditioned_model_is_refused():
    with pytest.raises(ValueError, match='condition_sequence_model'):
        SequenceModel(tiny_model(condition_sequence_model=True))


class CountingSequenceModel(SequenceModel):
    """The real sequence model, counting its steps."""

    def __init__(self, world_model) -> None:
        super().__init__(world_model)
        self.steps = 0

    def step(self, h, z_indices, action):
        self.steps += 1
        return super().step(h, z_indices, action)


def test_predict_then_observe_costs_one_step_and_gives_the_same_h():
    model = tiny_model(3)
    sender = Sender(model, 3)
    counting = CountingSequenceModel(model)
    mirror, plain = Replica(counting), Replica(SequenceModel(model))
    z, a, h = sender.step()
    for replica in (mirror, plain):
        replica.observe(0, z, a, wc.KeyframePart(0, 1, h.astype(np.float32)))
    for seq in range(1, 20):
        z, a, h = sender.step()
        counting.steps = 0
        predicted = mirror.predict(seq, a)
        mirrored = mirror.observe(seq, z, a).h
        assert counting.steps == 1
        assert np.array_equal(predicted, mirrored)
        assert np.array_equal(mirrored, plain.observe(seq, z, a).h)
    # a prediction for another action is not reused
    z, a, h = sender.step()
    counting.steps = 0
    mirror.predict(20, (a + 1) % model.cfg.num_actions)
    assert np.array_equal(mirror.observe(20, z, a).h, plain.observe(20, z, a).h)
    assert counting.steps == 2


def _keyframed_stream(model, seed, steps, keyframes):
    """Messages (seq, z, a, part) of one sender with exact-h keyframes at `keyframes`."""
    sender = Sender(model, seed)
    out = []
    for seq in range(steps):
        z, a, h = sender.step()
        part = wc.KeyframePart(0, 1, h.astype(np.float32)) if seq in keyframes else None
        out.append((seq, z, a, part, h))
    return out


def test_lazy_replica_delivers_the_eager_h_bit_for_bit_whenever_asked():
    model = tiny_model(4)
    stream = _keyframed_stream(model, 4, 120, keyframes={0, 37, 90})
    eager = Replica(SequenceModel(model), history=16)
    lazy = Replica(SequenceModel(model), history=16, lazy=True)
    asked = 0
    for seq, z, a, part, _ in stream:
        if seq == 60:                                    # a lost message: both desynchronise
            continue
        expected = eager.observe(seq, z, a, part)
        got = lazy.observe(seq, z, a, part)
        assert got.synchronised == (expected.h is not None) and got.gap == expected.gap
        if seq % 7 == 0:                                 # delivered now and then (in range)
            asked += 1
            current = lazy.current_h()
            assert (current is None) == (expected.h is None)
            assert current is None or np.array_equal(current, expected.h)
    assert asked > 10 and np.array_equal(lazy.current_h(), eager.current_h())


def test_lazy_replica_never_asked_runs_no_steps_while_keyframes_come_often():
    model = tiny_model(5)
    counting = CountingSequenceModel(model)
    lazy = Replica(counting, history=32, lazy=True)
    for seq, z, a, part, _ in _keyframed_stream(model, 5, 100, keyframes=set(range(0, 100, 20))):
        lazy.observe(seq, z, a, part)
    assert counting.steps == 0 and lazy.synchronised
    # without keyframes the queue is bounded by the history: steps run in batches
    counting.steps = 0
    stream = _keyframed_stream(model, 5, 200, keyframes={0})
    bounded = Replica(counting, history=32, lazy=True)
    for seq, z, a, part, _ in stream:
        bounded.observe(seq, z, a, part)
    assert 0 < counting.steps <= 199 and bounded._lag < 32
    reference = Replica(SequenceModel(model))
    for seq, z, a, part, _ in stream:
        reference.observe(seq, z, a, part)
    assert np.array_equal(bounded.current_h(), reference.current_h())


def test_receivers_in_one_process_share_steps_bit_for_bit():
    """A container's comm nodes rebuild one sender's h once; the others reuse the result."""
    model = tiny_model(6)
    stream = _keyframed_stream(model, 6, 40, keyframes={0})
    first, second = SequenceModel(model), SequenceModel(model)
    a, b = Replica(first), Replica(second)
    for seq, z, action, part, h in stream:
        got_a, got_b = a.observe(seq, z, action, part).h, b.observe(seq, z, action, part).h
        assert np.array_equal(got_a, h) and np.array_equal(got_b, h)
    assert second.memo_hits == len(stream) - 1      # every step after the keyframe
    # another model object with equal inputs never reuses these results
    other = SequenceModel(tiny_model(7))
    c = Replica(other)
    for seq, z, action, part, _ in stream:
        c.observe(seq, z, action, part)
    assert other.memo_hits == 0
    assert not np.array_equal(c.current_h(), a.current_h())


def test_a_model_whose_latents_do_not_fit_the_message_is_refused():
    with pytest.raises(ValueError, match='2..256 classes'):
        SequenceModel(tiny_model(0, classes=300))

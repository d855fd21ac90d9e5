"""FIFO sequence replay: shapes, dtypes, determinism, eviction, episode-bounded windows."""
from call_learning.replay import SequenceReplay, SharedStep, Step
import numpy as np
import pytest
import torch

C, S, N, L, D, P = 3, 8, 2, 4, 6, 3


def bev_pattern(value: int) -> np.ndarray:
    """Binary 0/255 BEV that differs from step to step."""
    pixels = np.arange(C * S * S).reshape(C, S, S)
    return (((pixels + value) % 7) < 3).astype(np.uint8) * 255


def make_step(value: int, is_first: bool = False, shared: bool = True) -> Step:
    """Build a step whose every field encodes ``value`` so windows can be checked for order."""
    share = SharedStep(
        z_indices=np.full((N, L), value % 7, np.int64),
        h=np.full((N, D), value, np.float32),
        intention=np.full((N, P, 2), value, np.float32),
        rel_pose=np.full((N, 3), value, np.float32),
        mask=np.array([True, value % 2 == 0]))
    return Step(bev=bev_pattern(value), prev_action=value % 15,
                reward=float(value), cont=1.0, is_first=is_first,
                intention=np.full((P, 2), value, np.float32),
                shared=share if shared else None)


def filled(capacity=1000, streams=2, steps=40, episode=None) -> SequenceReplay:
    replay = SequenceReplay(capacity, streams)
    for t in range(steps):
        for s in range(streams):
            first = t == 0 or (episode is not None and t % episode == 0)
            replay.add(f'hero{s}', make_step(1000 * s + t, is_first=first))
    return replay


def test_sample_shapes_and_dtypes():
    batch = filled().sample(batch=5, length=7, rng=np.random.default_rng(0))
    assert batch['bev'].shape == (5, 7, C, S, S) and batch['bev'].dtype == torch.uint8
    assert batch['prev_action'].shape == (5, 7) and batch['prev_action'].dtype == torch.int64
    assert batch['reward'].dtype == torch.float32 and batch['cont'].shape == (5, 7)
    assert batch['is_first'].dtype == torch.bool and bool(batch['is_first'][:, 0].all())
    assert batch['intention'].shape == (5, 7, P, 2)
    shared = batch['shared']
    assert shared.z_indices.shape == (5, 7, N, L) and shared.z_indices.dtype == torch.int64
    assert shared.h.shape == (5, 7, N, D) and shared.h.dtype == torch.float32
    assert shared.intention.shape == (5, 7, N, P, 2)
    assert shared.rel_pose.shape == (5, 7, N, 3) and shared.mask.dtype == torch.bool


def test_windows_are_consecutive_steps_of_one_agent():
    batch = filled().sample(batch=8, length=10, rng=np.random.default_rng(1))
    rewards = batch['reward'].numpy()
    assert np.all(np.diff(rewards, axis=1) == 1.0)
    # bit-packed BEVs come back exactly (uint8 0/255)
    for b in range(8):
        for t in range(10):
            assert np.array_equal(batch['bev'][b, t].numpy(), bev_pattern(int(rewards[b, t])))
    # every field of a row comes from the same steps
    assert np.array_equal(batch['shared'].h[:, :, 0, 0].numpy(), rewards)
    assert np.array_equal(batch['intention'][:, :, 0, 0].numpy(), rewards)


def test_same_seed_same_batch_other_seed_differs():
    replay = filled()
    a = replay.sample(4, 6, np.random.default_rng(7))
    b = replay.sample(4, 6, np.random.default_rng(7))
    c = replay.sample(4, 6, np.random.default_rng(8))
    assert torch.equal(a['bev'], b['bev']) and torch.equal(a['reward'], b['reward'])
    assert not torch.equal(a['reward'], c['reward'])


def test_fifo_drops_oldest_steps():
    replay = filled(capacity=20, streams=2, steps=40)
    assert len(replay) == 20 and replay.sizes() == {'hero0': 10, 'hero1': 10}
    batch = replay.sample(16, 10, np.random.default_rng(2))
    # only the newest 10 steps (t = 30..39) of each stream remain
    assert sorted({int(r) % 1000 for r in batch['reward'][:, 0]}) == [30]


def test_storage_grows_with_content_not_capacity_and_packs_bevs():
    small = filled(capacity=1_000_000, streams=2, steps=10)
    assert small.nbytes() < 200_000
    # 64 rows allocated per stream; BEV bits take C * S * S / 8 bytes per row
    assert small._streams['hero0'].arrays['bev'].nbytes == 64 * C * S * S // 8


def test_within_episode_windows_never_cross_a_reset():
    replay = filled(steps=60, episode=12)
    batch = replay.sample(32, 12, np.random.default_rng(3), within_episode=True)
    starts = batch['reward'][:, 0].numpy().astype(int) % 1000
    assert np.all(starts % 12 == 0)
    assert not bool(batch['is_first'][:, 1:].any())
    with pytest.raises(ValueError, match='one episode'):
        replay.sample(1, 13, within_episode=True)


def test_without_shared_information_batch_has_none():
    replay = SequenceReplay(100, 1)
    for t in range(5):
        step = make_step(t, shared=False)
        step.intention = None
        replay.add('hero0', step)
    batch = replay.sample(2, 5, np.random.default_rng(0))
    assert batch['shared'] is None and batch['intention'] is None


def test_bad_input_fails_with_reason():
    with pytest.raises(ValueError, match='num_streams'):
        SequenceReplay(10, 0)
    replay = SequenceReplay(100, 1)
    replay.add('hero0', make_step(0))
    with pytest.raises(ValueError, match='streams already'):
        replay.add('hero1', make_step(0))
    with pytest.raises(ValueError, match='holds 5 steps'):
        replay.sample(1, 5)
    bad = make_step(1)
    bad.bev = bad.bev.astype(np.float32)
    with pytest.raises(TypeError, match='uint8'):
        replay.add('hero0', bad)
    grey = make_step(1)
    grey.bev[0, 0, 0] = 128
    with pytest.raises(ValueError, match='0 or 255'):
        replay.add('hero0', grey)
    wrong_shape = make_step(1)
    wrong_shape.bev = np.zeros((C, S, S + 1), np.uint8)
    with pytest.raises(ValueError, match='shape'):
        replay.add('hero0', wrong_shape)

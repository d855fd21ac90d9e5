"""Checkpoints: identical outputs after a round trip; bad files fail with a clear reason."""
import os

from call_world_model import checkpoint
from call_world_model.actor_critic import ActorCritic
from call_world_model.world_model import WorldModel
from helpers_wm import random_batch, tiny_config
import pytest
import torch


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_config()
    model = WorldModel(cfg)
    ac = ActorCritic(cfg, cfg.feat_dim, cfg.num_actions)
    batch = random_batch(cfg)
    _, posts = model.train_step(batch)            # non-trivial weights + optimiser state
    ac.train_step(model, posts)
    path = str(tmp_path / 'model.pt')
    checkpoint.save(path, model, ac, cfg, step=7, extra={'note': 'test'})
    return path, model, ac, cfg, batch


def test_round_trip_identical_outputs(saved):
    path, model, ac, cfg, batch = saved
    loaded = checkpoint.load(path)
    assert loaded.step == 7 and loaded.cfg == cfg and loaded.meta['extra'] == {'note': 'test'}
    model.eval()
    with torch.no_grad():
        posts_a, _ = model.observe(batch['bev'], batch['prev_action'], batch['is_first'],
                                   batch['shared'], batch['intention'], sample=False)
        posts_b, _ = loaded.world_model.observe(
            batch['bev'], batch['prev_action'], batch['is_first'], batch['shared'],
            batch['intention'], sample=False)
        for key in posts_a:
            assert torch.equal(posts_a[key], posts_b[key])
        assert torch.equal(model.decode(posts_a), loaded.world_model.decode(posts_b))
        feat = model.features(posts_a)
        assert torch.equal(ac.policy(feat), loaded.actor_critic.policy(feat))
        assert torch.equal(ac.value(feat), loaded.actor_critic.value(feat))
    assert loaded.world_model._optimizer is not None
    assert not [f for f in os.listdir(os.path.dirname(path)) if f.endswith('.tmp')]


def test_loading_skips_only_draws_that_the_checkpoint_overwrites(tmp_path):
    """A checkpoint without an actor-critic keeps DreamerV3's initialisation of one."""
    from call_world_model.networks import init_fan_avg_, skipped_initialisation
    weight = torch.zeros(4, 6)
    with skipped_initialisation():
        init_fan_avg_(weight)
    assert not weight.any()                              # skipped inside the context
    assert init_fan_avg_(weight).any()                   # drawn again after it
    torch.manual_seed(0)
    cfg = tiny_config()
    path = str(tmp_path / 'world_model_only.pt')
    checkpoint.save(path, WorldModel(cfg), None, cfg, step=1, optimizers=False)
    critic_out = checkpoint.load(path).actor_critic.critic.out.weight
    assert not critic_out.any()                          # zero output layer (outscale 0)


def test_missing_file(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match='does not exist'):
        checkpoint.load(str(tmp_path / 'nope.pt'))


def test_truncated_and_corrupt(saved, tmp_path):
    path = saved[0]
    data = open(path, 'rb').read()
    truncated = tmp_path / 'truncated.pt'
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(checkpoint.CheckpointError, match='corrupt or truncated'):
        checkpoint.load(str(truncated))
    garbage = tmp_path / 'garbage.pt'
    garbage.write_bytes(b'not a checkpoint at all' * 10)
    with pytest.raises(checkpoint.CheckpointError, match='corrupt or truncated'):
        checkpoint.load(str(garbage))


def test_wrong_version_and_mismatched_config(saved, tmp_path):
    path, _, _, cfg, _ = saved
    payload = torch.load(path, weights_only=True)
    payload['format_version'] = 99
    bad = tmp_path / 'v99.pt'
    torch.save(payload, bad)
    with pytest.raises(checkpoint.CheckpointError, match='format_version 99'):
        checkpoint.load(str(bad))
    # expected config differs
    with pytest.raises(checkpoint.CheckpointError, match='deter'):
        checkpoint.load(path, expected_config=tiny_config(deter=64))
    # stored config does not fit the stored weights
    payload = torch.load(path, weights_only=True)
    payload['config']['deter'] = 48
    mismatch = tmp_path / 'mismatch.pt'
    torch.save(payload, mismatch)
    with pytest.raises(checkpoint.CheckpointError, match='do not match the config'):
        checkpoint.load(str(mismatch))
    payload['config']['no_such_key'] = 1
    torch.save(payload, mismatch)
    with pytest.raises(checkpoint.CheckpointError, match='invalid config'):
        checkpoint.load(str(mismatch))


def test_checkpoint_without_conditioning_key_loads_as_legacy(tmp_path):
    """Checkpoints written before condition_sequence_model existed keep their f(h, z, a, c)."""
    torch.manual_seed(0)
    cfg = tiny_config(condition_sequence_model=True)
    model = WorldModel(cfg)
    path = str(tmp_path / 'legacy.pt')
    checkpoint.save(path, model, None, cfg, step=1, optimizers=False)
    payload = torch.load(path, weights_only=True)
    del payload['config']['condition_sequence_model']
    torch.save(payload, path)
    loaded = checkpoint.load(path)
    assert loaded.cfg.condition_sequence_model is True
    batch = random_batch(cfg)
    with torch.no_grad():
        a, _ = model.observe(batch['bev'], batch['prev_action'], batch['is_first'],
                             batch['shared'], batch['intention'], sample=False)
        b, _ = loaded.world_model.observe(batch['bev'], batch['prev_action'],
                                          batch['is_first'], batch['shared'],
                                          batch['intention'], sample=False)
    assert torch.equal(a['deter'], b['deter'])


def test_shared_load_is_one_copy_per_file_version(saved, tmp_path):
    path, model, _, _, _ = saved
    first = checkpoint.load_shared(path)
    assert checkpoint.load_shared(path) is first
    assert not first.world_model.training and not first.actor_critic.training
    for a, b in zip(model.state_dict().values(), first.world_model.state_dict().values()):
        assert torch.equal(a, b)
    os.utime(path, ns=(1, 1))                      # the file changed: a fresh copy
    assert checkpoint.load_shared(path) is not first
    with pytest.raises(checkpoint.CheckpointError, match='does not exist'):
        checkpoint.load_shared(str(tmp_path / 'nope.pt'))


@pytest.mark.parametrize('with_actor_critic', [True, False])
def test_config_is_read_without_the_weights(tmp_path, with_actor_critic):
    from call_world_model.checkpoint_config import read_summary
    cfg = tiny_config()
    path = str(tmp_path / 'c.pt')
    checkpoint.save(path, WorldModel(cfg), ActorCritic(cfg, cfg.feat_dim, cfg.num_actions)
                    if with_actor_critic else None, cfg, 7)
    summary = read_summary(path)
    assert summary.cfg == checkpoint.load(path).cfg == cfg
    assert summary.has_actor_critic is with_actor_critic
    for bad in (b'', b'x' * 100, open(path, 'rb').read()[:1000]):
        (tmp_path / 'bad.pt').write_bytes(bad)
        with pytest.raises(ValueError, match='corrupt or not a CALL checkpoint'):
            read_summary(str(tmp_path / 'bad.pt'))
    with pytest.raises(ValueError, match='does not exist'):
        read_summary(str(tmp_path / 'none.pt'))

"""Actor-critic: lambda-returns, return normalisation, train_step updates parameters."""
from call_world_model.actor_critic import ActorCritic, lambda_returns, ReturnNormalizer
from call_world_model.world_model import WorldModel
from helpers_wm import random_batch, tiny_config
import pytest
import torch


def test_lambda_returns_hand_computed():
    rewards = torch.tensor([[1.0], [2.0]])
    values = torch.tensor([[0.0], [10.0], [20.0]])
    disc = torch.tensor([[0.5], [0.5]])
    lam = 0.5
    r1 = 2.0 + 0.5 * (0.5 * 20.0 + 0.5 * 20.0)          # R_1 = r_2 + d ((1-l) v_2 + l R_2)
    r0 = 1.0 + 0.5 * (0.5 * 10.0 + 0.5 * r1)
    out = lambda_returns(rewards, values, disc, lam)
    assert out.squeeze(-1).tolist() == pytest.approx([r0, r1])


def test_return_normalizer_limit_and_ema():
    norm = ReturnNormalizer(5.0, 95.0, 0.99, 1.0)
    assert float(norm.update(torch.zeros(100))) == 1.0       # range 0 -> limited to 1
    norm = ReturnNormalizer(5.0, 95.0, 0.5, 1.0)
    norm.update(torch.linspace(0.0, 100.0, 1001))            # P5 = 5, P95 = 95
    assert float(norm.scale()) == pytest.approx(90.0, rel=1e-3)
    norm.update(torch.zeros(10))
    assert float(norm.scale()) == pytest.approx(45.0, rel=1e-3)


def test_policy_act_value_shapes():
    cfg = tiny_config()
    ac = ActorCritic(cfg, cfg.feat_dim, cfg.num_actions)
    feat = torch.randn(4, cfg.feat_dim)
    logp = ac.policy(feat)
    assert logp.shape == (4, cfg.num_actions)
    assert torch.all(logp.exp() >= cfg.unimix / cfg.num_actions - 1e-6)
    assert ac.act(feat).shape == (4,) and ac.act(feat, sample=False).dtype == torch.long
    assert ac.value(feat).shape == (4,)


def test_train_step_changes_parameters_and_tracks_slow_critic():
    torch.manual_seed(0)
    cfg = tiny_config(ac_lr=1e-3)
    model = WorldModel(cfg)
    ac = ActorCritic(cfg, cfg.feat_dim, cfg.num_actions)
    _, posts = model.train_step(random_batch(cfg, shared=False))
    actor_before = [p.detach().clone() for p in ac.actor.parameters()]
    critic_before = [p.detach().clone() for p in ac.critic.parameters()]
    slow_before = [p.detach().clone() for p in ac.slow_critic.parameters()]
    model_before = [p.detach().clone() for p in model.parameters()]

    def reward_fn(world_model, states):
        return states['stoch'][..., 0, 0] * 10.0   # a reward the policy can influence

    for _ in range(3):
        metrics = ac.train_step(model, posts, reward_fn=reward_fn)
    for key in ('actor_loss', 'critic_loss', 'imag_return', 'return_scale'):
        assert key in metrics and torch.isfinite(torch.tensor(metrics[key]))
    changed = lambda before, params: any(  # noqa: E731
        not torch.equal(a, b.detach()) for a, b in zip(before, params))
    assert changed(actor_before, ac.actor.parameters())
    assert changed(critic_before, ac.critic.parameters())
    assert changed(slow_before, ac.slow_critic.parameters())
    assert not changed(model_before, model.parameters())   # world model untouched

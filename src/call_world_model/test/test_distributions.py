"""Two-hot symlog, unimix and straight-through samples."""
from call_world_model.distributions import (
    categorical_kl, sample_one_hot, symexp, symlog, TwoHotSymlog, unimix_logits)
import torch


def test_symlog_inverse():
    x = torch.tensor([-1000.0, -3.0, 0.0, 0.5, 1e5])
    assert torch.allclose(symexp(symlog(x)), x, rtol=1e-5)


def test_two_hot_mean_recovers_value():
    dist = TwoHotSymlog.linspace(-20.0, 20.0, 255)
    x = torch.tensor([-37.5, -1.0, 0.0, 0.3, 12.0, 5000.0])
    target = dist.two_hot(x)
    assert torch.allclose(target.sum(-1), torch.ones(len(x)))
    assert (target > 0).sum(-1).le(2).all()
    # logits = log(target) give back x as expected value
    mean = dist.mean(torch.log(target + 1e-12))
    assert torch.allclose(mean, x, rtol=1e-3, atol=1e-3)


def test_unimix_floor_and_kl_zero():
    logits = torch.tensor([[100.0, 0.0, 0.0, 0.0]])
    probs = unimix_logits(logits, 0.01).exp()
    assert torch.all(probs >= 0.01 / 4 - 1e-7)
    assert torch.allclose(probs.sum(-1), torch.ones(1))
    stacked = logits.reshape(1, 1, 4)
    assert float(categorical_kl(stacked, stacked)) == 0.0


def test_straight_through_gradient():
    logits = torch.randn(3, 32, 32, requires_grad=True)
    sample = sample_one_hot(logits)
    assert torch.allclose(sample.detach().sum(-1), torch.ones(3, 32))
    (sample * torch.randn_like(sample)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0

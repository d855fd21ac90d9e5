"""The prior's image likelihood (``prior_image_scale``): off by default, what it adds when on."""
from call_world_model.world_model import WorldModel
from helpers_wm import random_batch, tiny_config
import pytest
import torch


def _model(**overrides):
    torch.manual_seed(0)
    return WorldModel(tiny_config(**overrides))


def _loss(model, batch, seed=3):
    torch.manual_seed(seed)   # the same latent samples for every call
    return model.loss(batch)


def test_off_by_default_the_loss_has_no_prior_term():
    model = _model()
    assert model.cfg.prior_image_scale == 0.0
    _, metrics, _ = _loss(model, random_batch(model.cfg))
    assert 'prior_image_loss' not in metrics


def test_the_term_is_the_scaled_nll_of_the_decoded_prior_frames():
    batch = random_batch(tiny_config(), batch=2, steps=4)
    base, _, _ = _loss(_model(), batch)
    model = _model(prior_image_scale=2.0)
    loss, metrics, _ = _loss(model, batch)
    assert metrics['prior_image_loss'] > 0.0
    assert float(loss) == pytest.approx(float(base) + 2.0 * metrics['prior_image_loss'],
                                        rel=1e-5)
    # by hand: decode the prior states of frames 1..3 (frame 0 starts the episode)
    torch.manual_seed(3)
    _, priors = model.observe(batch['bev'], batch['prev_action'], batch['is_first'],
                              batch['shared'], batch['intention'])
    logits = model.decode(priors)
    target = (batch['bev'] > 0).float()
    nll = model._image_nll(logits, target).sum((-1, -2, -3))[:, 1:]
    assert metrics['prior_image_loss'] == pytest.approx(float(nll.sum()) / nll.numel() * 3 / 4,
                                                        rel=1e-5)


def test_a_frame_that_starts_an_episode_is_left_out():
    model = _model(prior_image_scale=1.0)
    batch = random_batch(model.cfg, batch=2, steps=3)
    batch['is_first'][:] = True
    _, metrics, _ = _loss(model, batch)
    assert metrics['prior_image_loss'] == 0.0


def test_it_trains_the_prior_head_through_the_latent_sample():
    """Given fixed h, the term's only path to ``img_out`` is the straight-through z sample."""
    model = _model(prior_image_scale=1.0)
    batch = random_batch(model.cfg, batch=2, steps=3)
    deter = torch.randn(2, 3, model.cfg.deter)   # fixed h: no path through the sequence model
    priors = model.rssm.prior_of(deter)
    nll = model._prior_image_nll(priors, (batch['bev'] > 0).float(), batch['is_first'])
    nll.sum().backward()
    grad = sum(float(p.grad.abs().sum()) for p in model.rssm.img_out.parameters())
    assert grad > 0.0


def test_the_decoder_weights_get_no_gradient_from_it():
    grads = {}
    for scale in (0.0, 1.0):
        model = _model(prior_image_scale=scale)
        loss, _, _ = _loss(model, random_batch(model.cfg, steps=4))
        loss.backward()
        grads[scale] = torch.cat([p.grad.flatten()
                                  for p in model.heads['decoder'].parameters()])
    assert float(grads[1.0].abs().sum()) > 0.0
    assert torch.equal(grads[1.0], grads[0.0])

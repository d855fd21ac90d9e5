"""World model: shapes, gradients, KL balancing / free bits, overfitting, prediction API."""
import math

from call_world_model.config import load_config
from call_world_model.world_model import kl_losses, WorldModel
from helpers_wm import random_batch, random_shared, tiny_config
import pytest
import torch


@pytest.fixture
def model():
    torch.manual_seed(0)
    return WorldModel(tiny_config(free_bits=0.0))


def test_shapes(model):
    cfg = model.cfg
    batch = random_batch(cfg, batch=3, steps=5)
    state = model.initial_state(3)
    assert state['deter'].shape == (3, cfg.deter)
    assert state['stoch'].shape == (3, 32, 32) and state['logits'].shape == (3, 32, 32)
    post, prior = model.observe_step(
        state, batch['prev_action'][:, 0], batch['bev'][:, 0], batch['is_first'][:, 0],
        batch['shared'].at_time(0), batch['intention'][:, 0])
    for s in (post, prior):
        assert s['deter'].shape == (3, cfg.deter) and s['stoch'].shape == (3, 32, 32)
    assert torch.allclose(post['stoch'].sum(-1), torch.ones(3, 32))
    assert model.features(post).shape == (3, cfg.deter + 1024)
    assert model.decode(post).shape == (3, cfg.bev_channels, cfg.bev_size, cfg.bev_size)
    assert model.reward(post).shape == (3,) and model.cont(post).shape == (3,)
    posts, priors = model.observe(batch['bev'], batch['prev_action'], batch['is_first'],
                                  batch['shared'], batch['intention'])
    assert posts['deter'].shape == (3, 5, cfg.deter) and priors['stoch'].shape == (3, 5, 32, 32)
    nxt = model.imagine_step(post, torch.zeros(3, dtype=torch.long))
    assert nxt['deter'].shape == (3, cfg.deter)
    rolled = model.rollout(post, torch.zeros(3, 7, dtype=torch.long))
    assert rolled['stoch'].shape == (3, 7, 32, 32)
    probs = model.predict_bev(batch['bev'], batch['prev_action'],
                              torch.ones(3, 4, dtype=torch.long),
                              shared=batch['shared'], intention=batch['intention'])
    assert probs.shape == (3, 4, cfg.bev_channels, cfg.bev_size, cfg.bev_size)
    assert probs.min() >= 0.0 and probs.max() <= 1.0


def test_gradients_reach_every_part(model):
    batch = random_batch(model.cfg)
    loss, metrics, _ = model.loss(batch)
    assert math.isfinite(float(loss.detach()))
    for key in ('image_loss', 'reward_loss', 'cont_loss', 'dyn_loss', 'rep_loss', 'kl'):
        assert key in metrics
    loss.backward()
    parts = {'encoder': model.encoder, 'rssm.img_in': model.rssm.img_in,
             'rssm.gru': model.rssm.gru, 'rssm.img_out': model.rssm.img_out,
             'rssm.obs_out': model.rssm.obs_out, 'decoder': model.heads['decoder'],
             'reward': model.heads['reward'], 'cont': model.heads['cont'],
             'intention': model.intention_encoder, 'pooling': model.shared_pooling}
    for name, part in parts.items():
        grads = [p.grad for p in part.parameters() if p.grad is not None]
        assert grads, name
        assert all(torch.isfinite(g).all() for g in grads), name
        assert sum(float(g.abs().sum()) for g in grads) > 0.0, name
    assert model.rssm.initial_deter.grad.abs().sum() > 0.0


def test_kl_balance_and_free_bits_hand_computed():
    # one latent, two classes: q = (0.5, 0.5), p = (0.9, 0.1)
    q = torch.log(torch.tensor([[[0.5, 0.5]]])).requires_grad_(True)
    p = torch.log(torch.tensor([[[0.9, 0.1]]])).requires_grad_(True)
    expected = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)  # 0.5108 nats
    dyn, rep, raw = kl_losses(q, p, free_bits=0.1)
    assert float(dyn) == pytest.approx(expected, abs=1e-5)
    assert float(rep) == pytest.approx(expected, abs=1e-5)
    assert float(raw) == pytest.approx(expected, abs=1e-5)
    # balance: dyn trains only the prior, rep only the posterior (stop-gradients)
    grad_q, grad_p = torch.autograd.grad(dyn, (q, p), allow_unused=True)
    assert grad_q is None or float(grad_q.abs().sum()) == 0.0
    assert float(grad_p.abs().sum()) > 0.0
    grad_q, grad_p = torch.autograd.grad(rep, (q, p), allow_unused=True)
    assert float(grad_q.abs().sum()) > 0.0
    assert grad_p is None or float(grad_p.abs().sum()) == 0.0
    # free bits 1 nat: 0.51 < 1 is clipped to exactly 1 and yields no gradient
    dyn, rep, _ = kl_losses(q, p, free_bits=1.0)
    assert float(dyn) == 1.0 and float(rep) == 1.0
    assert float(torch.autograd.grad(dyn + rep, q, allow_unused=True)[0].abs().sum()) == 0.0
    # 32 latents of the same pair: KL sums over latents (16.35 nats) and is not clipped
    q32 = q.detach().expand(1, 32, 2)
    p32 = p.detach().expand(1, 32, 2)
    dyn, _, _ = kl_losses(q32, p32, free_bits=1.0)
    assert float(dyn) == pytest.approx(32 * expected, abs=1e-4)


def _moving_square_batch(cfg, steps=8):
    bev = torch.zeros(1, steps, cfg.bev_channels, cfg.bev_size, cfg.bev_size,
                      dtype=torch.uint8)
    bev[:, :, 0, 10:22, :] = 1                            # a road band
    for t in range(steps):
        bev[0, t, 1, 12:16, 2 + 3 * t: 6 + 3 * t] = 1     # a vehicle moving right
    return {
        'bev': bev, 'prev_action': torch.full((1, steps), 7, dtype=torch.long),
        'reward': torch.linspace(0.0, 1.0, steps).unsqueeze(0), 'cont': torch.ones(1, steps),
        'is_first': torch.tensor([[True] + [False] * (steps - 1)]),
        'shared': None, 'intention': None}


def test_tiny_model_overfits_a_fixed_sequence():
    """Stated factor: 150 Adam steps at lr 3e-3 cut the total loss by more than 10x."""
    torch.manual_seed(1)
    model = WorldModel(tiny_config(lr=3e-3))
    batch = _moving_square_batch(model.cfg)
    first, _ = model.train_step(batch)
    for _ in range(150):
        last, _ = model.train_step(batch)
    assert last['model_loss'] < first['model_loss'] / 10.0, (first, last)
    assert last['image_loss'] < first['image_loss'] / 10.0
    assert last['reward_loss'] < first['reward_loss']


def test_filtering_without_the_prior_gives_the_same_posterior(model):
    batch = random_batch(model.cfg, batch=2, steps=2)
    with torch.no_grad():
        state, _ = model.observe_step(None, batch['prev_action'][:, 0], batch['bev'][:, 0],
                                      batch['is_first'][:, 0], sample=False)
        args = (state, batch['prev_action'][:, 1], batch['bev'][:, 1], torch.zeros(2).bool(),
                batch['shared'].at_time(1), batch['intention'][:, 1])
        full, prior = model.observe_step(*args, sample=False)
        lean, none = model.observe_step(*args, sample=False, with_prior=False)
    assert prior is not None and none is None
    for key in full:
        assert torch.equal(full[key], lean[key])


def test_is_first_resets_state(model):
    batch = random_batch(model.cfg, batch=2, steps=3, shared=False)
    batch['is_first'][:] = True
    posts, _ = model.observe(batch['bev'], batch['prev_action'], batch['is_first'],
                             sample=False)
    single, _ = model.observe(batch['bev'][:, 2:], batch['prev_action'][:, 2:],
                              batch['is_first'][:, 2:], sample=False)
    assert torch.allclose(posts['deter'][:, 2], single['deter'][:, 0])


def test_shared_information_changes_the_posterior(model):
    batch = random_batch(model.cfg, batch=1, steps=1)
    args = (None, batch['prev_action'][:, 0], batch['bev'][:, 0], batch['is_first'][:, 0])
    without, _ = model.observe_step(*args, shared=None, sample=False)
    with_shared, _ = model.observe_step(*args, shared=random_shared(model.cfg, (1,), 3),
                                        sample=False)
    assert not torch.allclose(without['logits'], with_shared['logits'])


def _one_step(model, shared, intention):
    torch.manual_seed(3)
    batch = random_batch(model.cfg, batch=1, steps=2)
    state, _ = model.observe_step(None, batch['prev_action'][:, 0], batch['bev'][:, 0],
                                  batch['is_first'][:, 0], sample=False)
    return model.observe_step(state, batch['prev_action'][:, 1], batch['bev'][:, 1],
                              torch.tensor([False]), shared, intention, sample=False)


def test_default_sequence_model_is_unconditioned_eq_11(model):
    """Presets: h_t = f(h, z, a) ignores T and w; the posterior q(z | h, x, s, w) sees both."""
    assert model.cfg.condition_sequence_model is False
    cfg = model.cfg
    plain_post, plain_prior = _one_step(model, None, None)
    shared = random_shared(cfg, (1,), 3)
    intention = torch.randn(1, cfg.intention_points, 2) * 10.0
    post, prior = _one_step(model, shared, intention)
    assert torch.equal(post['deter'], plain_post['deter'])
    assert torch.equal(prior['logits'], plain_prior['logits'])
    assert not torch.allclose(post['logits'], plain_post['logits'])
    only_intention, _ = _one_step(model, None, intention)
    assert not torch.allclose(only_intention['logits'], plain_post['logits'])
    # imagination: h_{t+1} = f(h_t, z_t, a_t) regardless of what is passed as context
    action = torch.tensor([4])
    a = model.imagine_step(post, action, shared=shared, intention=intention, sample=False)
    b = model.imagine_step(post, action, sample=False)
    assert torch.equal(a['deter'], b['deter'])
    h = model.rssm.sequence_step(post['deter'], post['stoch'],
                                 model.rssm.action_one_hot(action))
    assert torch.equal(h, a['deter'])


def test_legacy_conditioned_sequence_model_still_works():
    torch.manual_seed(0)
    model = WorldModel(tiny_config(condition_sequence_model=True))
    cfg = model.cfg
    plain, _ = _one_step(model, None, None)
    post, _ = _one_step(model, random_shared(cfg, (1,), 3), None)
    assert not torch.allclose(post['deter'], plain['deter'])
    with pytest.raises(ValueError, match='cond'):
        model.rssm.sequence_step(post['deter'], post['stoch'],
                                 model.rssm.action_one_hot(torch.tensor([0])))
    batch = random_batch(cfg)
    loss, _, _ = model.loss(batch)
    assert math.isfinite(float(loss.detach()))


def test_latent_samples_are_exact_one_hots(model):
    batch = random_batch(model.cfg, batch=4, steps=6)
    posts, priors = model.observe(batch['bev'], batch['prev_action'], batch['is_first'],
                                  batch['shared'], batch['intention'])
    for stoch in (posts['stoch'], priors['stoch']):
        assert bool(((stoch == 0.0) | (stoch == 1.0)).all())
        assert bool((stoch.sum(-1) == 1.0).all())


def test_vehicle_channels_can_weigh_their_positives_more():
    # logits 0 -> every pixel costs ln 2; a weight w makes a positive vehicle pixel cost w ln 2
    cfg = load_config('tiny', {'image_pos_weight': 10.0})
    model = WorldModel(cfg)
    target = torch.zeros(1, cfg.bev_channels, cfg.bev_size, cfg.bev_size)
    target[0, 3, :2, :3] = 1.0   # 6 seen-vehicle pixels (weighted)
    target[0, 0, :1, :5] = 1.0   # 5 drivable pixels (not weighted)
    nll = model._image_nll(torch.zeros_like(target), target).sum()
    pixels = target.numel()
    assert float(nll) == pytest.approx((pixels + 9 * 6) * math.log(2.0), rel=1e-5)
    plain = WorldModel(load_config('tiny'))._image_nll(torch.zeros_like(target), target).sum()
    assert float(plain) == pytest.approx(pixels * math.log(2.0), rel=1e-5)
    with pytest.raises(ValueError, match='image_weighted_channels'):
        load_config('tiny', {'image_weighted_channels': [7]})


def test_calibrate_recovers_the_probability_a_weighted_likelihood_learns():
    # the weighted NLL's minimiser over logits is logit(p) + ln w for a pixel that is on with
    # probability p; calibrate() must map it back to logit(p) on weighted channels only
    cfg = load_config('tiny', {'image_pos_weight': 10.0})
    model = WorldModel(cfg)
    p = torch.tensor(0.3)
    grid = torch.linspace(-6.0, 6.0, 24001).view(-1, 1, 1, 1)
    logits = grid.expand(-1, cfg.bev_channels, 1, 1)
    expected = (p * model._image_nll(logits, torch.ones_like(logits))
                + (1 - p) * model._image_nll(logits, torch.zeros_like(logits)))
    best = logits[:, 0, 0, 0][expected[:, :, 0, 0].argmin(0)]    # per channel
    weighted = list(cfg.image_weighted_channels)
    assert float(best[weighted[0]]) == pytest.approx(math.log(0.3 / 0.7) + math.log(10.0),
                                                     abs=1e-3)
    calibrated = torch.sigmoid(model.calibrate(best.view(1, -1, 1, 1))).flatten()
    assert torch.allclose(calibrated, torch.full_like(calibrated, 0.3), atol=1e-3)
    plain = WorldModel(load_config('tiny'))
    same = torch.randn(2, cfg.bev_channels, 4, 4)
    assert torch.equal(plain.calibrate(same), same)

"""The faster update computes the same thing: loop-free terms, one-hot columns, bf16 convs."""
from call_world_model.rssm import stack_states
from call_world_model.world_model import WorldModel
from helpers_wm import random_batch, tiny_config
import torch


def test_sequence_observe_equals_step_by_step_filtering():
    torch.manual_seed(0)
    for overrides in ({}, {'obs_input': 'local', 'decoder_input': 'spatial', 'minres': 4,
                           'stoch': 32}):
        model = WorldModel(tiny_config(**overrides))
        b = random_batch(model.cfg, batch=2, steps=5)
        with torch.no_grad():
            posts, priors = model.observe(b['bev'], b['prev_action'], b['is_first'],
                                          b['shared'], b['intention'], sample=False)
            state, steps, step_priors = None, [], []
            for t in range(5):
                state, prior = model.observe_step(
                    state, b['prev_action'][:, t], b['bev'][:, t], b['is_first'][:, t],
                    b['shared'].at_time(t), b['intention'][:, t], sample=False)
                steps.append(state)
                step_priors.append(prior)
        steps, step_priors = stack_states(steps), stack_states(step_priors)
        assert torch.equal(posts['stoch'], steps['stoch'])
        assert torch.allclose(posts['logits'], steps['logits'], atol=1e-5)
        assert torch.allclose(priors['logits'], step_priors['logits'], atol=1e-5)


def _gradients(model, batch):
    model.zero_grad()
    posts, priors = model.observe(batch['bev'], batch['prev_action'], batch['is_first'],
                                  sample=False)
    loss = (posts['logits'][..., :3] * torch.arange(3.0)).sum() + posts['deter'].pow(2).sum() \
        + priors['logits'][..., 0].sum()
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_one_hot_columns_give_the_dense_product_gradients():
    torch.manual_seed(1)
    model = WorldModel(tiny_config())
    batch = random_batch(model.cfg, batch=2, steps=5)
    batch['is_first'][:, 2] = True  # an all-zero action row inside the sequence
    fast = _gradients(model, batch)
    rssm = model.rssm
    dense_img_in = type(rssm)._img_in_one_hot
    try:
        type(rssm)._img_in_one_hot = lambda self, z, a: self.img_in(
            torch.cat([z.flatten(-2), a], -1))
        dense = _gradients(model, batch)
    finally:
        type(rssm)._img_in_one_hot = dense_img_in
    assert fast.keys() == dense.keys()
    for name in dense:
        scale = dense[name].abs().max() + 1e-12
        assert ((fast[name] - dense[name]).abs().max() / scale) < 1e-4, name


def test_bf16_convolutions_only_while_training():
    torch.manual_seed(2)
    plain = WorldModel(tiny_config())
    fast = WorldModel(tiny_config(train_conv_bf16=True))
    fast.load_state_dict(plain.state_dict())
    batch = random_batch(plain.cfg, batch=2, steps=4)
    frames = batch['bev'][:, 0].float()
    plain.eval()
    fast.eval()
    with torch.no_grad():
        assert torch.equal(plain.encoder(frames), fast.encoder(frames))
    plain.train()
    fast.train()
    e_plain, e_fast = plain.encoder(frames), fast.encoder(frames)
    assert e_fast.dtype == torch.float32 and not torch.equal(e_plain, e_fast)
    assert torch.allclose(e_plain, e_fast, atol=0.05, rtol=0.05)
    first, _ = fast.train_step(batch)
    for _ in range(15):
        last, _ = fast.train_step(batch)
    assert last['image_loss'] < first['image_loss']

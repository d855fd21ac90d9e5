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


def _dense_sequence_step(rssm, deter, stoch, action):
    return rssm.gru(rssm.img_in(torch.cat([stoch.flatten(-2), action], -1)), deter)


def _dense_pooling(pooling, shared):
    cfg = pooling.cfg
    z = torch.nn.functional.one_hot(shared.z_indices.long(), cfg.classes).float().flatten(-2)
    pose = shared.rel_pose
    pose_feat = torch.stack([pose[..., 0] / cfg.rel_pose_scale,
                             pose[..., 1] / cfg.rel_pose_scale,
                             torch.sin(pose[..., 2]), torch.cos(pose[..., 2])], -1)
    return pooling.per_neighbour(torch.cat(
        [z, shared.h, pooling.intention_encoder(shared.intention), pose_feat], -1))


def test_inference_looks_up_the_one_hot_columns_of_the_dense_layers():
    torch.manual_seed(2)
    model = WorldModel(tiny_config())
    cfg, rssm = model.cfg, model.rssm
    indices = torch.randint(0, cfg.classes, (5, cfg.stoch))
    stoch = torch.nn.functional.one_hot(indices, cfg.classes).float()
    deter = torch.randn(5, cfg.deter)
    action = rssm.action_one_hot(torch.tensor([0, 3, 1, 2, 4]) % cfg.num_actions)
    action[2] = 0.0                       # an episode start feeds no action
    shared = random_batch(cfg, batch=5, steps=1)['shared'].at_time(0)
    with torch.no_grad():
        dense = _dense_sequence_step(rssm, deter, stoch, action)
        looked_up = rssm.sequence_step(deter, stoch, action)
        replica = rssm.advance(deter[[0, 1, 3, 4]], indices[[0, 1, 3, 4]],
                               action[[0, 1, 3, 4]].argmax(-1))
        alone = torch.cat([rssm.sequence_step(deter[i:i + 1], stoch[i:i + 1], action[i:i + 1])
                           for i in range(5)])
        pooled_dense = _dense_pooling(model.shared_pooling, shared)
        pooled = model.shared_pooling._per_neighbour_indexed(
            shared.z_indices.long(), torch.cat([
                shared.h, model.shared_pooling.intention_encoder(shared.intention),
                torch.stack([shared.rel_pose[..., 0] / cfg.rel_pose_scale,
                             shared.rel_pose[..., 1] / cfg.rel_pose_scale,
                             torch.sin(shared.rel_pose[..., 2]),
                             torch.cos(shared.rel_pose[..., 2])], -1)], -1))
        pooled_forward = model.shared_pooling(shared, (5,))
    with torch.enable_grad():
        pooled_forward_dense = model.shared_pooling(shared, (5,))
    assert torch.allclose(looked_up, dense, atol=1e-5)
    # a replica (advance, other batch) and a sender's step agree bit for bit
    assert torch.equal(replica, looked_up[[0, 1, 3, 4]])
    assert torch.allclose(alone, looked_up, atol=1e-5)
    assert torch.allclose(pooled, pooled_dense, atol=1e-5)
    assert torch.allclose(pooled_forward, pooled_forward_dense, atol=1e-5)


def test_looked_up_columns_follow_a_weight_change():
    torch.manual_seed(3)
    model, other = WorldModel(tiny_config()), WorldModel(tiny_config())
    cfg, rssm = model.cfg, model.rssm
    stoch = torch.nn.functional.one_hot(torch.randint(0, cfg.classes, (2, cfg.stoch)),
                                        cfg.classes).float()
    deter, action = torch.randn(2, cfg.deter), rssm.action_one_hot(torch.tensor([1, 2]))
    with torch.no_grad():
        before = rssm.sequence_step(deter, stoch, action)       # builds the table
        model.load_state_dict(other.state_dict())                # in place: new version
        after = rssm.sequence_step(deter, stoch, action)
        expected = _dense_sequence_step(other.rssm, deter, stoch, action)
    assert not torch.allclose(before, after)
    assert torch.allclose(after, expected, atol=1e-5)
    assert set(model.state_dict()) == set(other.state_dict())    # no table in the checkpoint


def _module_advance(rssm, deter, indices, action):
    """``advance`` as the modules compute it: the action's one-hot product, module calls."""
    x = rssm._img_in_indexed(indices, rssm.action_one_hot(action))
    gru = rssm.gru
    parts = gru.norm(gru.linear(torch.cat([x, deter], -1)))
    reset, cand, update = parts.chunk(3, -1)
    reset = torch.sigmoid(reset)
    cand = torch.tanh(reset * cand)
    update = torch.sigmoid(update - 1.0)
    return update * cand + (1.0 - update) * deter


def test_replica_step_equals_the_module_step_for_every_action_and_batch():
    torch.manual_seed(4)
    for overrides in ({}, {'stoch': 32, 'classes': 16}):
        model = WorldModel(tiny_config(**overrides))
        cfg, rssm = model.cfg, model.rssm
        with torch.no_grad():
            for batch in (1, 1, 3, cfg.num_actions):
                deter = torch.randn(batch, cfg.deter) * 3.0
                indices = torch.randint(0, cfg.classes, (batch, cfg.stoch))
                for first in range(cfg.num_actions):
                    action = (torch.arange(batch) + first) % cfg.num_actions
                    assert torch.equal(rssm.advance(deter, indices, action),
                                       _module_advance(rssm, deter, indices, action))
            # the action rows follow an in-place weight change (an optimiser step)
            rssm.img_in[0].weight[:, cfg.stoch_flat:] += 0.25
            action = torch.tensor([1])
            assert torch.equal(rssm.advance(deter[:1], indices[:1], action),
                               _module_advance(rssm, deter[:1], indices[:1], action))


def test_replica_step_with_a_non_finite_action_weight_is_the_product():
    """0 * inf is NaN in the one-hot product, so a row lookup would differ: not used then."""
    torch.manual_seed(5)
    model = WorldModel(tiny_config())
    cfg, rssm = model.cfg, model.rssm
    deter = torch.randn(2, cfg.deter)
    indices = torch.randint(0, cfg.classes, (2, cfg.stoch))
    action = torch.tensor([0, 1])
    with torch.no_grad():
        rssm.advance(deter, indices, action)                     # tables of the finite weight
        rssm.img_in[0].weight[3, cfg.stoch_flat + 1] = float('inf')
        fast = rssm.advance(deter, indices, action)
        reference = _module_advance(rssm, deter, indices, action)
    assert torch.isnan(reference).any()
    assert torch.equal(torch.isnan(fast), torch.isnan(reference))
    assert torch.equal(fast.nan_to_num(), reference.nan_to_num())

"""Shared builders for the world-model tests (tiny preset, one CPU thread)."""
from call_world_model.config import load_config
from call_world_model.shared_pooling import SharedBatch
import torch

torch.set_num_threads(1)


def tiny_config(**overrides):
    """Return the tiny preset with optional overrides."""
    return load_config('tiny', overrides or None)


def random_shared(cfg, batch_shape, count, generator=None):
    """Build a SharedBatch with ``count`` real neighbours in max_neighbours slots."""
    shared = SharedBatch.empty(batch_shape, cfg)
    n = cfg.max_neighbours
    shape = tuple(batch_shape) + (n,)
    shared.z_indices = torch.randint(0, cfg.classes, shape + (cfg.stoch,), generator=generator)
    shared.h = torch.randn(shape + (cfg.deter,), generator=generator)
    shared.intention = 10.0 * torch.randn(shape + (cfg.intention_points, 2),
                                          generator=generator)
    shared.rel_pose = 10.0 * torch.randn(shape + (3,), generator=generator)
    shared.mask[..., :count] = True
    return shared


def random_batch(cfg, batch=2, steps=6, seed=0, shared=True):
    """Build a replay-like batch dict with uint8 BEV masks."""
    gen = torch.Generator().manual_seed(seed)
    size = cfg.bev_size
    out = {
        'bev': (torch.rand(batch, steps, cfg.bev_channels, size, size, generator=gen) > 0.7
                ).to(torch.uint8),
        'prev_action': torch.randint(0, cfg.num_actions, (batch, steps), generator=gen),
        'reward': torch.randn(batch, steps, generator=gen),
        'cont': torch.ones(batch, steps),
        'is_first': torch.zeros(batch, steps, dtype=torch.bool),
        'intention': 5.0 * torch.randn(batch, steps, cfg.intention_points, 2, generator=gen),
        'shared': random_shared(cfg, (batch, steps), 2, gen) if shared else None,
    }
    out['is_first'][:, 0] = True
    return out


def assert_trains_and_predicts(model, batch, steps: int = 30):
    """Image loss falls over ``steps`` updates on ``batch``; 3-step BEV predictions decode."""
    first, _ = model.train_step(batch)
    for _ in range(steps):
        last, _ = model.train_step(batch)
    assert last['image_loss'] < first['image_loss']
    batch_size = batch['bev'].shape[0]
    probs = model.predict_bev(batch['bev'], batch['prev_action'],
                              torch.zeros(batch_size, 3, dtype=torch.long))
    cfg = model.cfg
    assert probs.shape == (batch_size, 3, cfg.bev_channels, cfg.bev_size, cfg.bev_size)

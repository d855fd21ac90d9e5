"""Shared builders for the world-model tests (tiny preset, one CPU thread)."""
import math

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


def prediction_nll(model, batch, context: int) -> float:
    """
    Mean Bernoulli NLL of the frames the model predicts after ``context`` observed ones.

    The prediction rolls out open loop with the batch's own actions and is scored against the
    batch's true later frames, so it measures predictions, not only their shape.
    """
    bev = batch['bev']
    with torch.no_grad():
        probs = model.predict_bev(bev[:, :context], batch['prev_action'][:, :context],
                                  batch['prev_action'][:, context:],
                                  context_is_first=batch['is_first'][:, :context])
    cfg = model.cfg
    assert probs.shape == (bev.shape[0], bev.shape[1] - context, cfg.bev_channels,
                           cfg.bev_size, cfg.bev_size)
    assert bool(((probs >= 0) & (probs <= 1)).all())
    truth = bev[:, context:].float()
    probs = probs.clamp(1e-6, 1 - 1e-6)
    return float(-(truth * probs.log() + (1 - truth) * (1 - probs).log()).mean())


def assert_trains_and_predicts(model, batch, steps: int = 30):
    """
    Check that ``steps`` updates on ``batch`` lower its image loss and its prediction NLL.

    The predictions roll out open loop from the first half of the batch's frames.
    """
    context = max(1, batch['bev'].shape[1] // 2)
    untrained = prediction_nll(model, batch, context)
    first, _ = model.train_step(batch)
    for _ in range(steps):
        last, _ = model.train_step(batch)
    assert last['image_loss'] < first['image_loss']
    trained = prediction_nll(model, batch, context)
    assert trained < untrained, (trained, untrained)
    # and better than knowing nothing (p = 0.5 everywhere scores ln 2)
    assert trained < math.log(2), trained

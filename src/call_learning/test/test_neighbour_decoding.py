"""Neighbour latents are decoded as one batch; malformed ones never reach the decoder."""
from call_perception.bev_raster import CHANNEL_INDEX
from call_perception.neighbour_views import VIEW_CHANNEL_NAMES, VIEW_CHANNELS
from call_world_model.config import load_config
from call_world_model.neighbour_decoding import decode_neighbour_vehicles, latent_problem
from call_world_model.world_model import WorldModel
import numpy as np
import torch


def _model():
    torch.manual_seed(0)
    return WorldModel(load_config('tiny')).eval()


def test_batch_equals_one_by_one_and_masks_are_the_thresholded_vehicle_channels():
    model = _model()
    cfg = model.cfg
    rng = np.random.default_rng(0)
    latents = [(rng.integers(0, cfg.classes, cfg.stoch), rng.normal(size=cfg.deter))
               for _ in range(3)]
    batch = decode_neighbour_vehicles(model, latents, VIEW_CHANNELS, threshold=0.5)
    assert batch.kept == [0, 1, 2] and batch.dropped == 0
    assert batch.masks.shape == (3, cfg.bev_size, cfg.bev_size)
    assert batch.masks.dtype == np.uint8 and set(np.unique(batch.masks)) <= {0, 255}
    for i, latent in enumerate(latents):
        single = decode_neighbour_vehicles(model, [latent], VIEW_CHANNELS, threshold=0.5)
        assert np.array_equal(single.masks[0], batch.masks[i])
    # the mask is the union of the decoded ego and seen channels above the threshold
    z = torch.from_numpy(np.asarray(latents[0][0]))
    state = {'deter': torch.tensor(latents[0][1], dtype=torch.float32)[None],
             'stoch': torch.nn.functional.one_hot(z, cfg.classes).float()[None]}
    with torch.no_grad():
        probs = model.bev_probs(state)[0]
    expected = np.zeros((cfg.bev_size, cfg.bev_size), bool)
    for name in VIEW_CHANNEL_NAMES:
        expected |= probs[CHANNEL_INDEX[name]].numpy() > 0.5
    assert np.array_equal(batch.masks[0] > 0, expected)
    # a lower threshold can only add pixels
    low = decode_neighbour_vehicles(model, latents, VIEW_CHANNELS, threshold=0.1)
    assert np.all(low.masks >= batch.masks)


def test_malformed_or_non_finite_latents_are_dropped_and_counted():
    model = _model()
    cfg = model.cfg
    good = (np.zeros(cfg.stoch, np.int64), np.zeros(cfg.deter, np.float32))
    nan_h = np.zeros(cfg.deter, np.float32)
    nan_h[3] = np.nan
    bad = [
        (np.zeros(cfg.stoch - 1, np.int64), good[1]),            # too few latents
        (np.full(cfg.stoch, cfg.classes, np.int64), good[1]),    # index outside the classes
        (np.full(cfg.stoch, -1, np.int64), good[1]),             # negative index
        (good[0], nan_h),                                        # non-finite h
        (good[0], np.full(cfg.deter, np.inf, np.float32)),
        (good[0], np.zeros(cfg.deter + 1, np.float32)),          # wrong h size
        (np.full(cfg.stoch, 0.5), good[1]),                      # not integer indices
    ]
    for z, h in bad:
        assert latent_problem(z, h, cfg.stoch, cfg.classes, cfg.deter)
    assert latent_problem(*good, cfg.stoch, cfg.classes, cfg.deter) == ''
    out = decode_neighbour_vehicles(model, bad[:3] + [good] + bad[3:], VIEW_CHANNELS)
    assert out.dropped == len(bad) and out.kept == [3] and out.masks.shape[0] == 1
    none = decode_neighbour_vehicles(model, bad, VIEW_CHANNELS)
    assert none.dropped == len(bad) and none.masks.shape == (0, cfg.bev_size, cfg.bev_size)

"""The decoder's indexed inference (z as class indices) is the one-hot forward's."""
from pathlib import Path

from call_world_model.checkpoint import load
from call_world_model.neighbour_decoding import decode_neighbour_vehicles
from call_world_model.world_model import WorldModel
from helpers_wm import tiny_config
import numpy as np
import torch
from torch.nn import functional as F

SHIPPED = Path(__file__).resolve().parents[1] / 'checkpoints' / 'call_small.pt'
VIEW_CHANNELS = (1, 2)  # two channels, as the neighbour views decode


def _latents(cfg, count, seed):
    rng = np.random.default_rng(seed)
    z = torch.from_numpy(rng.integers(0, cfg.classes, (count, cfg.stoch)))
    h = torch.from_numpy(np.tanh(rng.normal(size=(count, cfg.deter))).astype(np.float32))
    return z, h


def _dense(model, z, h, channels):
    state = {'deter': h, 'stoch': F.one_hot(z, model.cfg.classes).float()}
    with torch.no_grad():
        return model.bev_probs(state, channels)


def test_indexed_probabilities_are_the_one_hot_forwards_up_to_rounding():
    torch.manual_seed(3)
    for spatial in (False, True):
        cfg = tiny_config(decoder_input='spatial') if spatial else tiny_config()
        model = WorldModel(cfg).eval()
        z, h = _latents(cfg, 6, seed=1)
        indexed = model.bev_probs_indexed(z, h, VIEW_CHANNELS)
        dense = _dense(model, z, h, VIEW_CHANNELS)
        assert indexed.shape == dense.shape == (6, 2, cfg.bev_size, cfg.bev_size)
        assert torch.allclose(indexed, dense, atol=1e-6, rtol=0)
        # a weight changed in place (a training step) reaches the gathered table
        with torch.no_grad():
            model.heads['decoder'].project.weight.mul_(2.0)
        assert torch.allclose(model.bev_probs_indexed(z, h, VIEW_CHANNELS),
                              _dense(model, z, h, VIEW_CHANNELS), atol=1e-6, rtol=0)


def test_shipped_models_neighbour_masks_are_the_one_hot_forwards():
    """100 latents of the shipped model: every thresholded mask pixel as the dense path's."""
    model = load(str(SHIPPED), load_optimizers=False).world_model.eval()
    cfg = model.cfg
    z, h = _latents(cfg, 100, seed=7)
    dense = _dense(model, z, h, VIEW_CHANNELS)
    masks = decode_neighbour_vehicles(model, list(zip(z.numpy(), h.numpy())), VIEW_CHANNELS)
    expected = np.where((dense.amax(1) > 0.5).numpy(), 255, 0).astype(np.uint8)
    assert expected.any()
    assert np.array_equal(masks.masks, expected)
    assert torch.allclose(model.bev_probs_indexed(z, h, VIEW_CHANNELS), dense, atol=1e-5, rtol=0)

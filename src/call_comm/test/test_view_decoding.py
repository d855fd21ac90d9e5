"""The comm node's view decoder: the world-model package's function, batched, counted."""
from call_comm.view_decoding import load_view_decoder, ViewDecoder
from call_common.msg_conversions import pack_mask
from call_world_model import checkpoint
from call_world_model.neighbour_decoding import decode_neighbour_vehicles
from helpers_replica import tiny_model
import numpy as np
import pytest

CHANNELS = (2, 3)


@pytest.fixture(scope='module')
def decoder(tmp_path_factory):
    model = tiny_model(5)
    path = str(tmp_path_factory.mktemp('views') / 'tiny.pt')
    checkpoint.save(path, model, None, model.cfg, step=0, optimizers=False)
    return load_view_decoder(path)   # through the entry point, as the node


def _latents(cfg, n, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, cfg.classes, cfg.stoch).astype(np.uint8),
             rng.normal(size=cfg.deter).astype(np.float32)) for _ in range(n)]


def test_views_are_the_decoders_masks_in_one_batch_and_remembered(decoder):
    model = decoder.model
    views = ViewDecoder(decoder, CHANNELS, 0.5)
    latents = _latents(model.cfg, 3)
    calls = []
    hook = model.heads['decoder'].register_forward_hook(
        lambda module, inputs, output: calls.append(inputs[0].shape[0]))
    try:
        packed = views.views(latents)
        again = ViewDecoder(decoder, CHANNELS, 0.5).views(latents[1:])  # another comm node
    finally:
        hook.remove()
    expected = decode_neighbour_vehicles(model, latents, CHANNELS, 0.5).masks
    assert packed == [pack_mask(m) for m in expected]
    assert calls == [3], 'one decoder batch for the step; the second node decodes nothing'
    assert again == packed[1:] and views.decoded == 3 and views.dropped == 0


def test_non_finite_or_malformed_latents_are_dropped_and_counted_empty_h_is_no_view(decoder):
    cfg = decoder.model.cfg
    good = _latents(cfg, 1, seed=1)[0]
    nan_h = good[1].copy()
    nan_h[0] = np.nan
    views = ViewDecoder(decoder, CHANNELS, 0.5)
    rows = []
    hook = decoder.model.heads['decoder'].register_forward_hook(
        lambda module, inputs, output: rows.append(inputs[0].clone()))
    try:
        out = views.views([(good[0], nan_h), good, (good[0], np.zeros(0, np.float32)),
                           (np.full(cfg.stoch, cfg.classes), good[1])])
    finally:
        hook.remove()
    assert out[0] is None and out[1] is not None and out[2] is None and out[3] is None
    assert views.dropped == 2 and views.decoded == 1
    assert sum(r.shape[0] for r in rows) == 1 and all(np.isfinite(r.numpy()).all() for r in rows)


def test_threshold_outside_the_unit_interval_fails_fast(decoder):
    with pytest.raises(ValueError, match='neighbour_view_threshold'):
        ViewDecoder(decoder, CHANNELS, 1.0)


def test_a_node_decodes_its_own_coming_latent_for_the_others_only_when_they_share(tmp_path):
    model = tiny_model(6)
    path = str(tmp_path / 'tiny.pt')
    checkpoint.save(path, model, None, model.cfg, step=0, optimizers=False)
    decoder = load_view_decoder(path)
    neighbours, own = _latents(decoder.model.cfg, 2, seed=4), _latents(decoder.model.cfg, 1, 5)
    batches = []
    hook = decoder.model.heads['decoder'].register_forward_hook(
        lambda module, inputs, output: batches.append(inputs[0].shape[0]))
    try:
        alone = ViewDecoder(decoder, CHANNELS, 0.5)
        alone.views(neighbours[:1], coming=own)        # nobody else: the own latent is no use
        first, second = alone, ViewDecoder(decoder, CHANNELS, 0.5)
        first.views(neighbours[1:], coming=own)
        assert first.views([], coming=own) == []        # nothing to decode: no batch of one
        got = second.views(neighbours + own)
    finally:
        hook.remove()
    assert batches == [1, 2], 'the own latent rides on the second batch'
    assert first.prefetched == 1 and first.decoded == 2 and second.decoded == 0
    expected = decode_neighbour_vehicles(decoder.model, neighbours + own, CHANNELS, 0.5).masks
    assert got == [pack_mask(m) for m in expected]

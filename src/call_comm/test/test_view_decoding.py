"""The comm node's view decoder: the world-model package's function, batched, counted."""
from call_comm.view_decoding import (decode_together, load_view_decoder, ViewBatcher,
                                     ViewDecoder, ViewRequest)
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


def _decoder_of_a_new_model(tmp_path, seed):
    """Return a view decoder on a model of its own (a memo and members no other test shares)."""
    model = tiny_model(seed)
    path = str(tmp_path / 'tiny.pt')
    checkpoint.save(path, model, None, model.cfg, step=0, optimizers=False)
    return load_view_decoder(path)


def test_a_node_decodes_its_own_coming_latent_for_the_others_only_when_they_share(tmp_path):
    decoder = _decoder_of_a_new_model(tmp_path, 6)
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


def test_a_destroyed_nodes_decoder_no_longer_counts_as_one_that_shares(tmp_path):
    import gc
    decoder = _decoder_of_a_new_model(tmp_path, 7)
    neighbours, own = _latents(decoder.model.cfg, 1, seed=8), _latents(decoder.model.cfg, 1, 9)
    staying, leaving = ViewDecoder(decoder, CHANNELS, 0.5), ViewDecoder(decoder, CHANNELS, 0.5)
    del leaving
    gc.collect()
    staying.views(neighbours, coming=own)      # alone again: its own latent is no use
    assert staying.prefetched == 0 and staying.decoded == 1


def _container(tmp_path, name, nodes):
    """``nodes`` ViewDecoders on one model of their own (one container's comm nodes)."""
    model = tiny_model(7)
    path = str(tmp_path / f'{name}.pt')
    checkpoint.save(path, model, None, model.cfg, step=0, optimizers=False)
    decoder = load_view_decoder(path)
    return decoder, [ViewDecoder(decoder, CHANNELS, 0.5) for _ in range(nodes)]


def _batched(decoder, nodes, steps):
    """
    Submit every node's (latents, coming) to one ViewBatcher and flush it once.

    Returns each node's views, the decoder's batch sizes and the flush's request count.
    """
    batches = []
    hook = decoder.model.heads['decoder'].register_forward_hook(
        lambda module, inputs, output: batches.append(inputs[0].shape[0]))
    batcher = ViewBatcher.for_model(decoder.model)
    got = [None] * len(steps)
    try:
        for k, (node, (latents, coming)) in enumerate(zip(nodes, steps)):
            batcher.submit(ViewRequest(node, latents, coming),
                           lambda views, k=k: got.__setitem__(k, views))
        flushed = batcher.flush()
    finally:
        hook.remove()
    return got, batches, flushed


def test_a_containers_steps_decoded_as_one_batch_equal_the_steps_one_by_one(tmp_path):
    # four comm nodes of a container: overlapping neighbours, a malformed latent asked for
    # twice, an unsynchronised neighbour, a known latent, and each node's coming latent
    decoder, _ = _container(tmp_path, 'shape', 0)
    cfg = decoder.model.cfg
    lat = _latents(cfg, 7, seed=8)
    bad = (lat[0][0], np.full(cfg.deter, np.nan, np.float32))
    empty = (lat[1][0], np.zeros(0, np.float32))
    steps = [([lat[0], lat[1], bad], [lat[4]]), ([lat[1], lat[2], empty], [lat[5]]),
             ([lat[4], lat[0], bad, lat[3]], [lat[6]]), ([lat[2], lat[5]], [])]
    warm = [lat[3]]                       # decoded at an earlier step (in the memo)

    one_decoder, one_by_one = _container(tmp_path, 'one', 4)
    one_by_one[0].views(warm)
    expected = [node.views(latents, coming) for node, (latents, coming) in
                zip(one_by_one, steps)]

    batch_decoder, nodes = _container(tmp_path, 'batch', 5)   # the fifth steps later
    nodes[0].views(warm)
    got, batches, flushed = _batched(batch_decoder, nodes, steps)
    assert flushed == 4
    assert batches == [6], 'one batch: lat 0, 1, 2, 4, 5 and the coming lat 6 (bad: refused)'
    assert got == expected
    assert [n.dropped for n in nodes[:4]] == [n.dropped for n in one_by_one] == [1, 0, 1, 0]
    # CommStats publishes the dropped counts; decoded / prefetched only say who ran a row
    assert sum(n.decoded + n.prefetched for n in nodes) == 1 + 6   # warm-up, the batch
    masks = decode_neighbour_vehicles(decoder.model, lat, CHANNELS, 0.5).masks
    assert got[2][3] == pack_mask(masks[3]) and got[3] == [pack_mask(masks[2]),
                                                           pack_mask(masks[5])]
    later = nodes[3].views([lat[6]])      # the coming latent was decoded into the memo
    assert later == [pack_mask(masks[6])] and nodes[2].prefetched == 1
    assert decode_together([]) == []


def test_with_every_node_in_the_batch_no_coming_latent_is_decoded(tmp_path):
    # nobody is left to ask for a coming latent this step: it would be a wasted decoder row
    decoder, nodes = _container(tmp_path, 'all', 3)
    lat = _latents(decoder.model.cfg, 4, seed=11)
    steps = [([lat[0]], [lat[1]]), ([lat[1]], [lat[2]]), ([lat[0]], [lat[3]])]
    got, batches, flushed = _batched(decoder, nodes, steps)
    assert flushed == 3
    assert batches == [2], 'lat 0 and 1, asked for; not the coming lat 2 and 3'
    masks = decode_neighbour_vehicles(decoder.model, lat, CHANNELS, 0.5).masks
    assert got == [[pack_mask(masks[0])], [pack_mask(masks[1])], [pack_mask(masks[0])]]
    assert sum(n.prefetched for n in nodes) == 0

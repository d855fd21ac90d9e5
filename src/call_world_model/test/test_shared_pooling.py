"""Shared-information pooling: permutation invariance, 0..N neighbours, masking."""
from call_world_model.intention import IntentionEncoder
from call_world_model.shared_pooling import SharedBatch, SharedPooling
from helpers_wm import random_shared, tiny_config
import pytest
import torch


@pytest.fixture
def pooling():
    torch.manual_seed(0)
    cfg = tiny_config()
    return SharedPooling(cfg, IntentionEncoder(cfg)), cfg


def test_permutation_invariant(pooling):
    pool, cfg = pooling
    shared = random_shared(cfg, (2,), 3, torch.Generator().manual_seed(3))
    perm = torch.randperm(cfg.max_neighbours, generator=torch.Generator().manual_seed(4))
    permuted = shared.apply(lambda x: x[:, perm])
    assert torch.allclose(pool(shared, (2,)), pool(permuted, (2,)), atol=1e-5)


@pytest.mark.parametrize('count', [0, 1, 2, 4])
def test_zero_to_n_neighbours(pooling, count):
    pool, cfg = pooling
    out = pool(random_shared(cfg, (2, 3), count), (2, 3))
    assert out.shape == (2, 3, cfg.shared_dim) and torch.isfinite(out).all()


def test_empty_mask_equals_none_and_padding_is_ignored(pooling):
    pool, cfg = pooling
    empty = random_shared(cfg, (2,), 0)            # garbage values, mask all False
    assert torch.allclose(pool(empty, (2,)), pool(None, (2,)), atol=1e-6)
    two = random_shared(cfg, (2,), 2)
    altered = two.apply(lambda x: x.clone())
    altered.h[:, 2:] = 1e3                          # only padding slots change
    assert torch.allclose(pool(two, (2,)), pool(altered, (2,)), atol=1e-6)
    fewer_slots = two.apply(lambda x: x[:, :2])
    assert torch.allclose(pool(two, (2,)), pool(fewer_slots, (2,)), atol=1e-6)


def test_validate(pooling):
    _, cfg = pooling
    shared = SharedBatch.empty((2,), cfg)
    shared.validate(cfg)
    shared.z_indices[0, 0, 0] = cfg.classes
    with pytest.raises(ValueError, match='z_indices'):
        shared.validate(cfg)

"""The model stage's rules: neighbour batch, own intention, validity once E exists."""
import math

from call_world_model.config import load_config
from call_world_model.intention import fit_waypoints, map_to_ego, relative_pose
from call_world_model.model_stage import (ModelStage, neighbour_batch, own_intention,
                                          SharedLatent)
from call_world_model.observe_batch import ObserveBatcher
from call_world_model.world_model import WorldModel
import numpy as np
import pytest
import torch

CFG = load_config('tiny')


def latent(x, y, h=None):
    return SharedLatent(x, y, 0.0, np.full(CFG.stoch, 3), np.ones(CFG.deter, np.float32)
                        if h is None else h, np.array([[x + 5.0, y], [x + 10.0, y]]))


def test_neighbours_are_nearest_first_capped_and_in_the_ego_frame():
    many = [latent(30.0 + i, 0.0) for i in range(CFG.max_neighbours + 2)] + [latent(0.0, 5.0)]
    batch = neighbour_batch(CFG, (0.0, 0.0, math.pi / 2), many)
    assert batch.mask.shape == (1, CFG.max_neighbours) and bool(batch.mask.all())
    # the ego faces +y: the vehicle 5 m north is 5 m ahead, and comes first
    assert batch.rel_pose[0, 0, :2].tolist() == pytest.approx([5.0, 0.0], abs=1e-6)
    assert batch.intention[0, 0, 0].tolist() == pytest.approx([5.0, -5.0], abs=1e-5)
    assert neighbour_batch(CFG, (0.0, 0.0, 0.0), []) is None
    pending = neighbour_batch(CFG, (0.0, 0.0, 0.0), [latent(1.0, 0.0, np.zeros(0))])
    assert not bool(pending.h.any())           # replica h not rebuilt yet: zeros
    plain = neighbour_batch(CFG, (0.0, 0.0, 0.0), [latent(1.0, 0.0)], share_intention=False)
    assert not bool(plain.intention.any())


def test_neighbour_batch_equals_the_slot_by_slot_tensor_fill_bit_for_bit():
    rng = np.random.default_rng(4)
    ego = (3.0, -2.0, 0.7)
    neighbours = [SharedLatent(float(x), float(y), float(yaw),
                               rng.integers(0, CFG.classes, CFG.stoch).astype(np.uint8),
                               rng.standard_normal(CFG.deter).astype(np.float32) if i else
                               np.zeros(0, np.float32), rng.standard_normal((i + 1, 2)) * 20)
                  for i, (x, y, yaw) in enumerate(rng.standard_normal((5, 3)) * 30)]
    batch = neighbour_batch(CFG, ego, neighbours)
    # the reference: each slot and field assigned as a tensor, nearest first
    rows = sorted(((float(np.hypot(*relative_pose(*ego, n.x, n.y, n.yaw)[:2])), i)
                   for i, n in enumerate(neighbours)))[:CFG.max_neighbours]
    assert batch.mask.shape == (1, len(rows)) and len(rows) == min(5, CFG.max_neighbours)
    for slot, (_, i) in enumerate(rows):
        n = neighbours[i]
        rel = torch.as_tensor(relative_pose(*ego, n.x, n.y, n.yaw), dtype=torch.float32)
        assert torch.equal(batch.rel_pose[0, slot], rel)
        assert torch.equal(batch.z_indices[0, slot],
                           torch.as_tensor(np.asarray(n.z_indices, dtype=np.int64)))
        h = torch.as_tensor(n.h) if len(n.h) else torch.zeros(CFG.deter)
        assert torch.equal(batch.h[0, slot], h)
        waypoints = torch.as_tensor(fit_waypoints(map_to_ego(n.intention_xy, *ego),
                                                  CFG.intention_points))
        assert torch.equal(batch.intention[0, slot], waypoints)
    assert batch.mask.dtype == torch.bool and bool(batch.mask.all())
    assert batch.z_indices.dtype == torch.long and batch.h.dtype == torch.float32
    batch.validate(CFG)


def test_own_intention_is_zeros_before_the_first_plan():
    assert not bool(own_intention(CFG, (0.0, 0.0, 0.0), None).any())
    plan = np.array([[1.0, 0.0], [2.0, 0.0]])
    ego = own_intention(CFG, (1.0, 0.0, 0.0), plan)
    assert ego.shape == (1, CFG.intention_points, 2) and float(ego[0, -1, 0]) == 1.0


def test_a_state_is_valid_once_e_over_k_steps_exists_and_a_fault_restarts():
    torch.manual_seed(0)
    model = WorldModel(CFG).eval()
    stage = ModelStage(model, error_horizon=3)
    batcher = ObserveBatcher(model)
    bev = torch.zeros(1, CFG.bev_channels, CFG.bev_size, CFG.bev_size, dtype=torch.uint8)
    valid = []
    for _ in range(5):
        done = []
        batcher.submit(stage.request(bev, (0.0, 0.0, 0.0), [], None),
                       lambda post, tracked: done.append(stage.complete(post, tracked)))
        batcher.flush()
        valid.append(done[0].valid)
    assert valid == [False, False, False, True, True]
    fault = stage.complete(stage.state, None)
    assert not fault.valid and fault.post is None and stage.state is None
    assert not stage.tracker.ready

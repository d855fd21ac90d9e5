"""Intention helpers: frames, padding, encoder shape checks."""
import math

from call_world_model.intention import fit_waypoints, IntentionEncoder, map_to_ego, relative_pose
from helpers_wm import tiny_config
import numpy as np
import pytest
import torch


def test_map_to_ego_and_relative_pose():
    # ego at (10, 5) heading north: a point 3 m north is 3 m ahead, 2 m west is 2 m left
    local = map_to_ego(np.array([[10.0, 8.0], [8.0, 5.0]]), 10.0, 5.0, math.pi / 2)
    assert local == pytest.approx(np.array([[3.0, 0.0], [0.0, 2.0]]), abs=1e-9)
    rel = relative_pose(0.0, 0.0, math.pi / 2, 0.0, 4.0, -math.pi)
    assert rel == pytest.approx([4.0, 0.0, math.pi / 2], abs=1e-9)


def test_fit_waypoints():
    assert fit_waypoints(np.zeros((0, 2)), 3).shape == (3, 2)
    padded = fit_waypoints(np.array([[1.0, 2.0]]), 3)
    assert padded.tolist() == [[1.0, 2.0]] * 3
    assert fit_waypoints(np.arange(20.0).reshape(10, 2), 4).shape == (4, 2)


def test_encoder_shapes():
    cfg = tiny_config()
    encoder = IntentionEncoder(cfg)
    out = encoder(torch.zeros(2, 3, cfg.intention_points, 2))
    assert out.shape == (2, 3, cfg.intention_dim)
    with pytest.raises(ValueError, match='waypoints'):
        encoder(torch.zeros(2, cfg.intention_points + 1, 2))

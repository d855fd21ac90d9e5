"""
Latent intention w (paper section 3): the planned waypoints of a vehicle, encoded.

The ego's own plan conditions its posterior (and, with ``condition_sequence_model``, its
sequence model); the same encoder turns each neighbour's shared waypoints into w_j for the
shared-information pooling, so w lives in one space.
Waypoints are (P, 2) metres in the EGO frame (x forward, y left), P = ``intention_points``.
"""
import math

from call_world_model.config import WorldModelConfig
from call_world_model.networks import MLP
import numpy as np
import torch
from torch import nn


class IntentionEncoder(nn.Module):
    """MLP over the flattened, scaled waypoints (..., P, 2) -> latent intention (..., dim)."""

    def __init__(self, cfg: WorldModelConfig):
        """Size the MLP from ``intention_points``, ``intention_dim`` and ``hidden``."""
        super().__init__()
        self.points = cfg.intention_points
        self.scale = cfg.intention_scale
        self.net = MLP(2 * cfg.intention_points, cfg.hidden, 1, cfg.intention_dim)

    def forward(self, waypoints: torch.Tensor) -> torch.Tensor:
        """(..., P, 2) ego-frame metres -> (..., intention_dim)."""
        if waypoints.shape[-2:] != (self.points, 2):
            raise ValueError(f'waypoints must end in ({self.points}, 2), '
                             f'got {tuple(waypoints.shape)}')
        flat = (waypoints / self.scale).flatten(-2)
        return self.net(flat)


def map_to_ego(points_xy: np.ndarray, ego_x: float, ego_y: float, ego_yaw: float
               ) -> np.ndarray:
    """Map-frame (M, 2) points -> ego frame (x forward, y left) of the pose (x, y, yaw)."""
    points = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    cos, sin = math.cos(ego_yaw), math.sin(ego_yaw)
    dx = points[:, 0] - ego_x
    dy = points[:, 1] - ego_y
    return np.stack([cos * dx + sin * dy, -sin * dx + cos * dy], axis=1)


def relative_pose(ego_x: float, ego_y: float, ego_yaw: float,
                  other_x: float, other_y: float, other_yaw: float) -> np.ndarray:
    """(dx, dy, dyaw) of another vehicle in the ego frame; dyaw wrapped to (-pi, pi]."""
    local = map_to_ego(np.array([[other_x, other_y]]), ego_x, ego_y, ego_yaw)[0]
    dyaw = math.atan2(math.sin(other_yaw - ego_yaw), math.cos(other_yaw - ego_yaw))
    return np.array([local[0], local[1], dyaw], dtype=np.float64)


def fit_waypoints(points_xy: np.ndarray, count: int) -> np.ndarray:
    """Exactly ``count`` waypoints: truncate, or pad by repeating the last (zeros if none)."""
    points = np.asarray(points_xy, dtype=np.float32).reshape(-1, 2)
    if len(points) == 0:
        return np.zeros((count, 2), dtype=np.float32)
    if len(points) >= count:
        return points[:count].copy()
    pad = np.repeat(points[-1:], count - len(points), axis=0)
    return np.concatenate([points, pad], axis=0)

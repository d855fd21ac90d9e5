"""
The world-model stage of one vehicle step (ROS-free): observe, track E, say whether to trust it.

One rule each, for the world-model node and the fleet pipeline that trains and evaluates:

* neighbours -> ``SharedBatch`` (``neighbour_batch``): the accepted neighbours nearest first,
  at most ``max_neighbours``, each with its pose relative to the ego and its declared
  waypoints in the ego frame (paper section 3, T_i,t);
* own intention (``own_intention``): the declared plan in the ego frame, fitted to
  ``intention_points``; zeros before the first plan;
* validity (``ModelStage.complete``): a state is valid once the prediction error E over the
  last K steps exists (paper Algorithm 1; ``LatentState.valid``) and the posterior is finite.
  A non-finite posterior restarts the vehicle's state and its E.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from call_world_model.config import WorldModelConfig
from call_world_model.intention import fit_waypoints, map_to_ego, relative_pose
from call_world_model.observe_batch import ObserveBatcher, ObserveRequest
from call_world_model.prediction import PredictionErrorTracker
from call_world_model.rssm import State
from call_world_model.shared_pooling import SharedBatch
from call_world_model.world_model import WorldModel
import numpy as np
import torch

Pose = Tuple[float, float, float]


@dataclass(frozen=True)
class SharedLatent:
    """One accepted neighbour as the model reads it (from its decoded LatentMessage)."""

    x: float
    y: float
    yaw: float
    z_indices: np.ndarray          # (stoch,) class indices
    h: np.ndarray                  # (deter,); empty: not rebuilt yet (replica), read as zeros
    intention_xy: np.ndarray       # (M, 2) map frame


@dataclass(frozen=True)
class ModelOutput:
    """One observed step of one vehicle."""

    post: Optional[State]          # batch-1 posterior; None after a non-finite one
    error: float                   # E (a partial mean while warming up), NaN after a fault
    valid: bool                    # E over K steps exists and the posterior is finite

    def z_indices(self) -> np.ndarray:
        """(stoch,) uint8 class indices of the posterior sample."""
        return self.post['stoch'][0].argmax(-1).to(torch.uint8).numpy()

    def h(self) -> np.ndarray:
        """(deter,) float32 recurrent state."""
        return self.post['deter'][0].numpy()


def neighbour_batch(cfg: WorldModelConfig, ego: Pose, neighbours: Sequence[SharedLatent],
                    share_intention: bool = True) -> Optional[SharedBatch]:
    """(1,)-batch of the nearest ``max_neighbours`` neighbours, no padding; None if none."""
    ego_x, ego_y, ego_yaw = ego
    rows = []
    for n in neighbours:
        rel = relative_pose(ego_x, ego_y, ego_yaw, n.x, n.y, n.yaw)
        rows.append((float(np.hypot(rel[0], rel[1])), n, rel))
    if not rows:
        return None
    rows.sort(key=lambda row: row[0])
    rows = rows[:cfg.max_neighbours]
    # filled as NumPy arrays and handed to torch once per field: a tensor slot assignment per
    # neighbour and field cost more than the values (no padding to pool over)
    count = len(rows)
    z_indices = np.zeros((1, count, cfg.stoch), dtype=np.int64)
    h = np.zeros((1, count, cfg.deter), dtype=np.float32)
    intention = np.zeros((1, count, cfg.intention_points, 2), dtype=np.float32)
    rel_pose = np.zeros((1, count, 3), dtype=np.float32)
    for slot, (_, n, rel) in enumerate(rows):
        z_indices[0, slot] = np.asarray(n.z_indices, dtype=np.int64)
        if len(n.h):
            h[0, slot] = np.asarray(n.h, dtype=np.float32)
        if share_intention:
            intention[0, slot] = fit_waypoints(
                map_to_ego(n.intention_xy, ego_x, ego_y, ego_yaw), cfg.intention_points)
        rel_pose[0, slot] = rel
    return SharedBatch(z_indices=torch.from_numpy(z_indices), h=torch.from_numpy(h),
                       intention=torch.from_numpy(intention),
                       rel_pose=torch.from_numpy(rel_pose),
                       mask=torch.ones((1, count), dtype=torch.bool))


def own_intention(cfg: WorldModelConfig, ego: Optional[Pose],
                  plan_xy: Optional[np.ndarray]) -> torch.Tensor:
    """(1, P, 2) ego-frame waypoints of the declared plan; zeros without a plan or pose."""
    if plan_xy is None or ego is None or len(plan_xy) == 0:
        return torch.zeros(1, cfg.intention_points, 2)
    return torch.as_tensor(fit_waypoints(map_to_ego(plan_xy, *ego), cfg.intention_points))[None]


class ModelStage:
    """One vehicle's world-model state between steps: posterior, last action, E tracker."""

    def __init__(self, model: WorldModel, error_horizon: int,
                 share_intention: bool = True) -> None:
        """``share_intention`` False: no own or shared intention (latent sharing only)."""
        self.model = model
        self.cfg = model.cfg
        self.share_intention = share_intention
        self.tracker = PredictionErrorTracker(int(error_horizon), model)
        self.state: Optional[State] = None
        self.action = 0               # the action that led into the next observed step

    def reset(self) -> None:
        """Start over (episode start, model fault)."""
        self.state = None
        self.action = 0
        self.tracker.reset()

    def request(self, bev: torch.Tensor, ego: Optional[Pose],
                neighbours: Sequence[SharedLatent],
                plan_xy: Optional[np.ndarray]) -> ObserveRequest:
        """Build this step's observe request; bev (1, C, S, S) uint8, pose and plan map frame."""
        shared = (neighbour_batch(self.cfg, ego, neighbours, self.share_intention)
                  if ego is not None else None)
        intention = own_intention(self.cfg, ego, plan_xy) if self.share_intention else None
        return ObserveRequest(self.state, self.action, bev, shared, intention, self.tracker,
                              plan_xy)

    def complete(self, post: State, tracked: Optional[Tuple[float, bool]]) -> ModelOutput:
        """Take the batch's posterior and (E, ready); None: non-finite, restart."""
        if tracked is None:
            self.state = None
            self.tracker.reset()
            return ModelOutput(None, float('nan'), False)
        self.state = post
        error, ready = tracked
        return ModelOutput(post, float(error), bool(ready))


def observe_fleet(batcher: ObserveBatcher, stages: Sequence[ModelStage],
                  requests: Sequence[ObserveRequest]) -> List[ModelOutput]:
    """Observe several vehicles' steps as one batch (as a container's nodes do)."""
    outputs: List[Optional[ModelOutput]] = [None] * len(stages)

    def done(index: int):
        def finish(post: State, tracked: Optional[Tuple[float, bool]]) -> None:
            outputs[index] = stages[index].complete(post, tracked)
        return finish

    for index, request in enumerate(requests):
        batcher.submit(request, done(index))
    batcher.flush()
    return outputs

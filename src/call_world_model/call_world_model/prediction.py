"""
Prediction error E = ||X_hat - X|| over the last K steps (paper section 3.3, Algorithm 1).

X_t = {z_t, w_t}: the posterior latent and the plan. For every step t the tracker keeps the
open-loop predictions of z_t made from the posteriors at t-1, ..., t-K (each rolled forward
with the actions actually taken, mode of the prior) and the plans made at t-1, ..., t-K.

    E_t = (1 / K') sum_{k=1..K'} [ d_z(p_hat_{t|t-k}, q_t) + beta * d_w(w_{t-k}, w_t) ]

* d_z = L1 distance between predicted prior class probabilities and posterior class
  probabilities, averaged over the model's latents and expressed per REFERENCE_LATENTS (32,
  the paper's and DreamerV3's latent count): 0 (perfect) .. 64 (disjoint) for every preset.
  With 32 latents this is the plain sum over latents; a preset with 128 latents (small64g8)
  would otherwise see E four times larger for the same surprise, so one threshold c would
  mean "share more" for one preset and "rarely" for another. A stale or wrong latent moves a
  few of 32 latents, E in ~[5, 60], matching the paper's c in [10, 80].
* d_w = mean over the current plan's waypoints of the distance [m] to the nearest waypoint of
  the plan made k steps earlier (both map frame): how much the intention changed; beta =
  ``waypoint_error_scale`` (1 / m).
* K' = number of predictions available (< K while warming up; ``ready`` is False then).
"""
from collections import deque
from typing import Deque, Dict, List, Optional, Sequence, Tuple

from call_world_model.rssm import State
from call_world_model.world_model import WorldModel
import numpy as np
import torch


REFERENCE_LATENTS = 32  # d_z is expressed per this many latents (see the module doc)


def latent_l1(pred_logits: torch.Tensor, post_logits: torch.Tensor) -> torch.Tensor:
    """L1 between class probabilities per REFERENCE_LATENTS latents: (..., S, K) x2 -> (...,)."""
    per_latent = (torch.softmax(pred_logits, -1) - torch.softmax(post_logits, -1)).abs().sum(-1)
    return per_latent.mean(-1) * REFERENCE_LATENTS


def waypoint_change(previous: Optional[np.ndarray], current: Optional[np.ndarray]) -> float:
    """Mean distance [m] from each current waypoint to the nearest previous one (0 if none)."""
    if previous is None or current is None or len(previous) == 0 or len(current) == 0:
        return 0.0
    diff = current[:, None, :] - previous[None, :, :]
    return float(np.sqrt((diff ** 2).sum(-1)).min(1).mean())


def waypoint_changes(previous: Sequence[Optional[np.ndarray]],
                     current: Optional[np.ndarray]) -> List[float]:
    """
    ``waypoint_change(p, current)`` for each plan ``p`` of ``previous``, the same floats.

    The tracker compares the current plan with each of the last K plans every step; plans of
    one shape (the planner's are) go through one stacked computation instead of K: the same
    element-wise operations, and each mean and minimum reduces the same numbers in the same
    order along a contiguous last axis.
    """
    out = [0.0] * len(previous)
    if current is None or len(current) == 0:
        return out
    by_shape: Dict[tuple, List[int]] = {}
    for k, plan in enumerate(previous):
        if plan is not None and len(plan):
            by_shape.setdefault(plan.shape, []).append(k)
    for indices in by_shape.values():
        if len(indices) == 1:
            out[indices[0]] = waypoint_change(previous[indices[0]], current)
            continue
        stacked = np.stack([previous[k] for k in indices])            # (n, P, 2)
        diff = current[None, :, None, :] - stacked[:, None, :, :]     # (n, M, P, 2)
        means = np.sqrt((diff ** 2).sum(-1)).min(-1).mean(-1)        # (n,)
        for k, value in zip(indices, means.tolist()):
            out[k] = value
    return out


class PredictionErrorTracker:
    """Maintains the K open-loop tracks and returns E after each observed step."""

    def __init__(self, horizon: int, model: WorldModel, waypoint_scale: Optional[float] = None):
        """``horizon`` is K; ``waypoint_scale`` defaults to the config's waypoint_error_scale."""
        if horizon <= 0:
            raise ValueError(f'prediction horizon K must be > 0, got {horizon}')
        self.horizon = horizon
        self.model = model
        self.waypoint_scale = (model.cfg.waypoint_error_scale if waypoint_scale is None
                               else waypoint_scale)
        self._tracks: Optional[State] = None     # (n, ...) predicted states for the next step
        self._plans: Deque[Optional[np.ndarray]] = deque(maxlen=horizon)
        self.last_error = 0.0

    def reset(self) -> None:
        """Forget all tracks (episode start, model fault)."""
        self._tracks = None
        self._plans.clear()
        self.last_error = 0.0

    @property
    def ready(self) -> bool:
        """Tell whether the next update compares K predictions."""
        return self._tracks is not None and self._tracks['deter'].shape[0] >= self.horizon \
            and len(self._plans) >= self.horizon

    @torch.no_grad()
    def update(self, post: State, prev_action: int,
               plan_xy: Optional[np.ndarray] = None) -> Tuple[float, bool]:
        """
        Compare predictions with the new posterior ``post`` (batch 1), then extend tracks.

        prev_action: the action taken between the previous and this step. plan_xy: current
        plan (M, 2) map frame, or None. Returns (E, ready).
        """
        return update_together([(self, post, prev_action, plan_xy)])[0]

    def _complete(self, post: State, predicted: Optional[State],
                  plan_xy: Optional[np.ndarray]) -> Tuple[float, bool]:
        """Score ``predicted`` (the tracks rolled one step) against ``post``, extend tracks."""
        errors = []
        if predicted is not None:
            n = predicted['deter'].shape[0]
            latent = latent_l1(predicted['logits'], post['logits'].expand_as(
                predicted['logits'])).tolist()
            # track index 0 is the oldest start (t - n), plans are aligned oldest-first
            plans = [self._plans[k] if k < len(self._plans) else None for k in range(n)]
            current = None if plan_xy is None else np.asarray(plan_xy, dtype=np.float64)
            for latent_k, change in zip(latent, waypoint_changes(plans, current)):
                errors.append(latent_k + self.waypoint_scale * change)
            keep = {key: v[-(self.horizon - 1):] if self.horizon > 1 else v[:0]
                    for key, v in predicted.items()}
            self._tracks = {key: torch.cat([keep[key], post[key]], 0) for key in post}
        else:
            self._tracks = {key: v.clone() for key, v in post.items()}
        self._plans.append(None if plan_xy is None else np.asarray(plan_xy, dtype=np.float64))
        ready = len(errors) >= self.horizon
        self.last_error = float(np.mean(errors)) if errors else 0.0
        return self.last_error, ready


Update = Tuple[PredictionErrorTracker, State, int, Optional[np.ndarray]]


@torch.no_grad()
def update_together(updates: Sequence[Update]) -> List[Tuple[float, bool]]:
    """
    ``PredictionErrorTracker.update`` of several trackers on one model, with one prior step.

    Items are (tracker, post, prev_action, plan_xy). Every tracker's open-loop tracks are
    rolled one step as one batch (a container's vehicles, see ``observe_batch``); results
    equal the separate updates to float rounding. Returns (E, ready) per item.
    """
    rolling = [u for u in updates if u[0]._tracks is not None]
    predicted: Dict[int, State] = {}
    if rolling:
        tracks = [u[0]._tracks for u in rolling]
        sizes = [t['deter'].shape[0] for t in tracks]
        batch = {key: torch.cat([t[key] for t in tracks]) for key in tracks[0]}
        action = torch.cat([torch.full((n,), int(u[2]), dtype=torch.long)
                            for n, u in zip(sizes, rolling)])
        rolled = rolling[0][0].model.imagine_step(batch, action, sample=False)
        start = 0
        for n, u in zip(sizes, rolling):
            predicted[id(u[0])] = {key: v[start:start + n] for key, v in rolled.items()}
            start += n
    return [tracker._complete(post, predicted.get(id(tracker)), plan_xy)
            for tracker, post, _, plan_xy in updates]


# Generic palette for predicted BEV channels (later channels are painted over earlier ones);
# channel meaning follows call_perception.bev_raster.CHANNELS.
PALETTE = np.array([
    [90, 90, 90], [200, 200, 200], [60, 120, 255], [0, 200, 0], [255, 200, 0],
    [230, 30, 30], [180, 0, 255], [0, 200, 200]], dtype=np.float32)


def colorize_bev(probs: np.ndarray) -> np.ndarray:
    """Colour BEV probabilities (C, H, W) in [0, 1] as rgb8 (H, W, 3), blending channels."""
    probs = np.clip(np.asarray(probs, dtype=np.float32), 0.0, 1.0)
    image = np.zeros(probs.shape[1:] + (3,), dtype=np.float32)
    for channel in range(probs.shape[0]):
        alpha = probs[channel][..., None]
        image = image * (1.0 - alpha) + PALETTE[channel % len(PALETTE)] * alpha
    return image.astype(np.uint8)


def prediction_strip(probs: np.ndarray, gap: int = 2) -> np.ndarray:
    """Lay predicted frames (K, C, H, W) out as one rgb8 strip with white gaps."""
    frames = [colorize_bev(frame) for frame in probs]
    height = frames[0].shape[0]
    spacer = np.full((height, gap, 3), 255, dtype=np.uint8)
    parts = []
    for index, frame in enumerate(frames):
        if index:
            parts.append(spacer)
        parts.append(frame)
    return np.concatenate(parts, axis=1)

"""
k-step BEV prediction: the one function every user of an open-loop BEV forecast calls.

Two predictors, chosen by whether a motion head is given:

* no head (DreamerV3, the paper): the posterior at t0 is rolled forward with the actions
  actually taken, mode of the prior, and each imagined (z_k, h_k) is decoded alone;
* a head (``bev_motion``, a stated deviation): the last observed BEVs are moved on by the head's
  velocity field and the ego's actions.

Both return calibrated probabilities (W, H, C, S, S) for k in ``horizons`` (k = 0: the
posterior's reconstruction, or with a head the last observed frame itself).
"""
from dataclasses import dataclass
from typing import Optional, Sequence

from call_world_model.bev_motion import BevMotionHead
from call_world_model.rssm import State
from call_world_model.world_model import bev_to_float, WorldModel
import torch


@dataclass
class Observed:
    """What the motion head reads besides the model: the ego's own BEVs and motion."""

    context: torch.Tensor  # (W, T, C, S, S) observed BEVs ending at t0 (uint8 or [0, 1])
    align: torch.Tensor  # (W, T, 2, 3) pixel affines of those frames into the t0 frame
    future: torch.Tensor  # (W, H, 2, 3) pixel affines of the t0 frame into that of t0 + k


@torch.no_grad()
def predict_k_steps(model: WorldModel, start: State, actions: torch.Tensor,
                    horizons: Sequence[int], head: Optional[BevMotionHead] = None,
                    observed: Optional[Observed] = None) -> torch.Tensor:
    """
    BEV probabilities (W, len(horizons), C, S, S) at t0 + k.

    start: posterior states at t0 (leading dim W); actions (W, K >= max k) long, actions[:, j]
    taken after frame t0 + j; head/observed: the motion head and its inputs, both or neither
    (``observed.future`` is the ego's motion under those same actions).
    """
    horizons = [int(k) for k in horizons]
    if (head is None) != (observed is None):
        raise ValueError('a motion head needs the observed context, and only it does')
    if head is not None:
        return head(bev_to_float(observed.context), observed.align.float(),
                    observed.future.float(), horizons)
    kmax = max(horizons)
    states = {key: value[:, None] for key, value in start.items()}
    if kmax > 0:
        rolled = model.rollout(start, actions[:, :kmax], sample=False)
        states = {key: torch.cat([states[key], rolled[key]], 1) for key in states}
    index = torch.tensor(horizons)
    picked = {key: value[:, index] for key, value in states.items()}
    return model.bev_probs(picked)

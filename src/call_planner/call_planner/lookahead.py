"""
K-step look-ahead with the world model: the paper's eq. 3 (section 4).

For every first action a_0 of the discrete action set the world model imagines K steps from
the current model state x_t; after the first step the actor chooses the actions. Each
candidate is scored

    v(x_t | a_0) = sum_{k=0}^{K-1} gamma^k c_{<=k} r_hat_{t+k} + gamma^K c_{<=K} v(x_hat_{t+K})

where r_hat_{t+k} is the reward head on the state reached by a_{t+k} (DreamerV3 convention:
the reward of a transition is predicted from its successor state) and c_{<=k} is the product
of the continue head's probabilities of the states before it (an imagined crash stops
accumulating reward and value, as in DreamerV3's lambda-returns). With an
`occupancy_cost.OccupancyCost`, the ego footprint's overlap with the decoded vehicles of the
imagined states is subtracted with the same weights. The best candidate is the plan. All
first actions are imagined as ONE batch: the cost of a plan is K batched model steps, not
K x |A|.
"""
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Protocol

from call_planner.occupancy_cost import OccupancyCost
import numpy as np
import torch

State = dict[str, torch.Tensor]


class ImaginingModel(Protocol):
    """What the look-ahead needs from `call_world_model.world_model.WorldModel`."""

    def imagine_step(self, state: State, action: torch.Tensor, **kwargs: Any) -> State:
        """Prior step of the RSSM: x_{t+1} ~ p(. | x_t, a_t) (kwargs: conditioning)."""

    def features(self, state: State) -> torch.Tensor:
        """(B, F) features of a model state, the input of the heads and the actor-critic."""

    def reward(self, state: State) -> torch.Tensor:
        """(B,) predicted reward of the transition into `state`."""

    def cont(self, state: State) -> torch.Tensor:
        """(B,) predicted probability that the episode continues from `state`."""


class PolicyAndValue(Protocol):
    """What the look-ahead needs from `call_world_model.actor_critic.ActorCritic`."""

    def policy(self, feat: torch.Tensor) -> torch.Tensor:
        """(B, A) action logits."""

    def value(self, feat: torch.Tensor) -> torch.Tensor:
        """(B,) state value."""


@dataclass(frozen=True)
class Plan:
    """
    The outcome of one look-ahead.

    first_action: the index to execute now; actions: the K planned indices (actions[0] is
    first_action); scores: eq. 3 value per first action (index = action index); value: the
    score of the chosen plan; candidates: (B, K) the planned indices of every candidate
    (row b starts with first action b), so other costs can rescore them.
    """

    first_action: int
    actions: tuple[int, ...]
    scores: np.ndarray
    value: float
    candidates: Optional[np.ndarray] = None


def expand_state(state: Mapping[str, torch.Tensor], batch: int) -> State:
    """Repeat a batch-1 model state `batch` times along the batch dimension."""
    out = {}
    for key, value in state.items():
        if value.shape[0] != 1:
            raise ValueError(f'state[{key!r}] must have batch size 1, got {tuple(value.shape)}')
        out[key] = value.expand(batch, *value.shape[1:]).contiguous()
    return out


def expand_kwargs(kwargs: Optional[Mapping[str, Any]], batch: int) -> dict:
    """Repeat batch-1 tensors among imagine_step keyword arguments like the state."""
    out = {}
    for key, value in (kwargs or {}).items():
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == 1:
            value = value.expand(batch, *value.shape[1:]).contiguous()
        out[key] = value
    return out


def _next_actions(logits: torch.Tensor, sample: bool,
                  generator: Optional[torch.Generator]) -> torch.Tensor:
    if not sample:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float(), dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.inference_mode()
def rollout_scores(world_model: ImaginingModel, actor_critic: PolicyAndValue, start: State,
                   first_actions: torch.Tensor, horizon: int, gamma: float,
                   sample: bool = False, generator: Optional[torch.Generator] = None,
                   imagine_kwargs: Optional[Mapping[str, Any]] = None,
                   occupancy: Optional[OccupancyCost] = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Imagine `horizon` steps for each first action in one batch.

    `start` is a model state with batch size len(first_actions) (see `expand_state`);
    `imagine_kwargs` go to every `imagine_step` (e.g. the world model's `sample=False` and a
    pooled `shared_vec`, batch-sized); `occupancy` charges the footprint overlap of the
    decoded imagined states. Returns (scores (B,), actions (B, horizon) long).
    """
    if horizon < 1:
        raise ValueError(f'horizon must be >= 1, got {horizon}')
    state = start
    action = first_actions.long()
    actions = []
    score = torch.zeros(action.shape[0], dtype=torch.float32)
    alive = torch.ones_like(score)
    decoded = set(occupancy.decoded_steps(horizon)) if occupancy is not None else set()
    feats, weights = [], []
    for k in range(horizon):
        if k > 0:
            action = _next_actions(actor_critic.policy(world_model.features(state)),
                                   sample, generator)
        actions.append(action)
        state = world_model.imagine_step(state, action, **(imagine_kwargs or {}))
        if k in decoded:
            feats.append(world_model.features(state))
            weights.append((gamma ** k) * alive)
        score = score + (gamma ** k) * alive * world_model.reward(state).float()
        alive = alive * world_model.cont(state).float()
    value = actor_critic.value(world_model.features(state)).float()
    score = score + (gamma ** horizon) * alive * value
    if feats:
        overlaps = occupancy.overlap(torch.cat(feats)).view(len(feats), -1)
        score = score - occupancy.discounted(overlaps.float(), torch.stack(weights))
    return score, torch.stack(actions, dim=1)


def plan(world_model: ImaginingModel, actor_critic: PolicyAndValue, state: State,
         num_actions: int, horizon: int, gamma: float, sample: bool = False,
         generator: Optional[torch.Generator] = None,
         imagine_kwargs: Optional[Mapping[str, Any]] = None,
         occupancy: Optional[OccupancyCost] = None) -> Plan:
    """
    Eq. 3: the best K-step plan from a batch-1 model state `state`.

    Batch-1 tensors in `imagine_kwargs` are repeated like the state. Ties go to the lowest
    action index, so the choice is deterministic when neither the actor nor the world model
    samples.
    """
    first_actions = torch.arange(num_actions)
    scores, actions = rollout_scores(world_model, actor_critic,
                                     expand_state(state, num_actions), first_actions,
                                     horizon, gamma, sample, generator,
                                     expand_kwargs(imagine_kwargs, num_actions), occupancy)
    return best_plan(scores, actions)


def best_plan(scores: torch.Tensor, actions: torch.Tensor) -> Plan:
    """Pick the highest score (B,) among rollouts with actions (B, K); ties: the lowest."""
    scores_np = scores.numpy().astype(np.float64)
    if not np.all(np.isfinite(scores_np)):
        raise FloatingPointError('look-ahead produced non-finite scores')
    best = int(np.argmax(scores_np))
    return Plan(first_action=best,
                actions=tuple(int(a) for a in actions[best].tolist()),
                scores=scores_np, value=float(scores_np[best]),
                candidates=actions.numpy().astype(np.int64))

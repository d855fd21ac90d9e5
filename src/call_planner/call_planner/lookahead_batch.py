"""
Run the eq. 3 look-aheads of several vehicles' planners as one imagination.

Why: a container's planner nodes share one model (``checkpoint.load_shared``), and each
look-ahead imagines its 15 first actions K steps ahead, a batch of 15 rows per layer. On a
CPU much of that is per-operator overhead; the vehicles that re-plan on the same tick run
their rows together (4 vehicles: 60 rows per layer, one pass of Python around the kernels),
as the world-model nodes batch their observe steps (``call_world_model.observe_batch``).

Only deterministic look-aheads are batched (neither the actor nor the imagined z sampled, the
defaults in config/planner.yaml): a sampled one draws from its vehicle's own generator in its
own order, so it runs alone. Every row of the imagination is computed from its own state
only, so a batch of one is exactly ``IndexedLookahead.plan`` and larger batches give the same
scores up to float rounding (different kernel blocking), which ``test_lookahead_batch``
bounds.
"""
from dataclasses import dataclass
from typing import Dict, List, Sequence, Union

from call_common.batching import Batcher
from call_planner.indexed_lookahead import IndexedLookahead
from call_planner.lookahead import best_plan, expand_state, Plan, State
import torch


@dataclass
class LookaheadRequest:
    """One vehicle's deterministic look-ahead from a batch-1 model state."""

    lookahead: IndexedLookahead
    state: State
    num_actions: int
    horizon: int
    gamma: float

    def key(self) -> tuple:
        """Return what requests must share to share one imagination (models and numbers)."""
        occupancy = self.lookahead.occupancy
        return (id(self.lookahead.world_model), id(self.lookahead.actor_critic),
                None if occupancy is None else occupancy.config,
                self.num_actions, self.horizon, self.gamma)

    def alone(self) -> Plan:
        """Plan this request by itself (what the planner does outside a container)."""
        return self.lookahead.plan(self.state, self.num_actions, self.horizon, self.gamma,
                                   False, None, {'sample': False})


# a plan, or the error that planning it raised (the node then stops the vehicle)
Outcome = Union[Plan, Exception]


def plan_together(requests: Sequence[LookaheadRequest]) -> List[Outcome]:
    """Plan every request; those with equal keys as one imagination. One outcome each."""
    groups: Dict[tuple, List[int]] = {}
    for index, request in enumerate(requests):
        groups.setdefault(request.key(), []).append(index)
    outcomes: List[Outcome] = [None] * len(requests)
    for members in groups.values():
        for index, outcome in zip(members, _plan_group([requests[i] for i in members])):
            outcomes[index] = outcome
    return outcomes


def _plan_group(requests: List[LookaheadRequest]) -> List[Outcome]:
    """Plans of requests with one key; a group of one is the plain look-ahead."""
    first = requests[0]
    if len(requests) == 1:
        try:
            return [first.alone()]
        except (FloatingPointError, RuntimeError, ValueError) as error:
            return [error]
    rows = first.num_actions
    start = {key: torch.cat([expand_state({key: r.state[key]}, rows)[key] for r in requests])
             for key in ('deter', 'stoch')}
    try:
        scores, actions = first.lookahead.rollout_scores(
            start, torch.arange(rows).repeat(len(requests)), first.horizon, first.gamma,
            False, False, None)
    except (RuntimeError, ValueError) as error:
        return [error] * len(requests)
    outcomes: List[Outcome] = []
    for i in range(len(requests)):
        try:
            outcomes.append(best_plan(scores[i * rows:(i + 1) * rows],
                                      actions[i * rows:(i + 1) * rows]))
        except FloatingPointError as error:     # non-finite scores: this vehicle stops
            outcomes.append(error)
    return outcomes


class LookaheadBatcher(Batcher):
    """
    Pending look-aheads of the planner nodes that share one world model in a process.

    ``flush`` (``call_common.batching.Batcher``) plans the queue with ``plan_together`` and
    hands each node's ``done`` its own outcome.
    """

    def run(self, requests: Sequence[LookaheadRequest]) -> List[Outcome]:
        """Plan the queued look-aheads (those with equal keys as one imagination)."""
        with torch.no_grad():
            return plan_together(requests)

"""
When to re-plan: the kept K-step plan and the per-step action (paper section 4).

The paper fixes the planned waypoints (the intention w shared with other vehicles) for K steps
and re-plans at t + K ("the agent aims to find the next K-step actions"). It does not say in
so many words whether the executed actions are also committed for K steps, so that is the
option `replan_every`:

- `replan_every == K` (our default, 0 in config/planner.yaml) commits: the K actions of a
  plan are executed open loop, and the plan and its waypoints are renewed every K steps
  (strict reading of the paper). One look-ahead per K steps.
- `replan_every == 1` is receding-horizon control: a fresh look-ahead every step picks the
  action from the newest model state, while the intention (the kept plan's waypoints) still
  only changes every K steps. It reacts within one step instead of K, at K times the
  planning cost.
- values in between re-plan every `replan_every` steps and execute the newest plan's actions
  in between.

Whatever `replan_every`, a vehicle that comes up is answered at once: the policy re-plans
whenever the rest of its kept plan is charged a conflict (`conflict_cost`), so while it
closes on a vehicle it re-plans every step and can keep choosing to brake.

Why commit by default: with the shipped checkpoint it also drives better. `call_evaluate
--config smoke --only driving --set driving.modes=[lsi] --set seeds=[2000,2001,2002]
--set driving.max_env_steps=1500` gave success 21.6 % vs 10.3 %, route completion 56 % vs
45 %, collisions 0.055 % vs 0.115 % of vehicle-steps (replan_every 5 vs 1), and the
planner's share of a vehicle's CPU per tick falls from about 27 % to 6 %
(bench/bench_bringup.py). The safety fallback (controlled stop on stale inputs) acts every
step either way.
"""
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from call_planner.conflict_cost import ConflictCost
from call_planner.indexed_lookahead import IndexedLookahead
from call_planner.lookahead import ImaginingModel, Plan, plan, PolicyAndValue, State
from call_planner.lookahead_batch import LookaheadRequest
from call_planner.occupancy_cost import OccupancyCost
from call_planner.route_cost import rescored, RouteContext, RouteCost
import numpy as np
import torch

# A step's model state, or a function that makes it: the planner node hands the latter, since
# the state (one-hot z, log-probabilities) is read only on the steps that run a look-ahead
StateSource = Union[State, Callable[[], State]]


def _made(state: StateSource) -> State:
    """Return the state, made now if it came as a function."""
    return state() if callable(state) else state


@dataclass(frozen=True)
class LookaheadConfig:
    """Numbers of the look-ahead (config/planner.yaml)."""

    K: int = 5               # look-ahead horizon K (paper eq. 3)
    gamma: float = 0.997
    replan_every: int = 0    # 0: = K (re-plan at t + K, the paper)
    sample_actor: bool = False

    def __post_init__(self):
        """Fail fast on numbers the planner cannot honour."""
        if self.replan_every == 0:
            object.__setattr__(self, 'replan_every', self.K)
        if self.K < 1:
            raise ValueError(f'K must be >= 1, got {self.K}')
        if not 1 <= self.replan_every <= self.K:
            raise ValueError(f'replan_every must be in [1, K={self.K}], '
                             f'got {self.replan_every}')
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f'gamma must be in (0, 1], got {self.gamma}')


@dataclass(frozen=True)
class Decision:
    """
    One step's outcome: the action to execute and the plans behind it.

    intention: the kept plan whose waypoints are the published intention; refreshed: True on
    the step the intention was renewed (waypoints must be recomputed from the current pose);
    replanned: True when a look-ahead ran this step.
    """

    action: int
    active: Plan
    intention: Plan
    replanned: bool
    refreshed: bool


class ReplanningPolicy:
    """Keeps the K-step plan and decides each step whether to run the look-ahead."""

    def __init__(self, world_model: ImaginingModel, actor_critic: PolicyAndValue,
                 num_actions: int, config: LookaheadConfig,
                 generator: Optional[torch.Generator] = None,
                 occupancy: Optional[OccupancyCost] = None,
                 route_cost: Optional[RouteCost] = None,
                 conflict_cost: Optional[ConflictCost] = None):
        """
        Bind the models; `generator` makes sampled actor rollouts reproducible.

        `occupancy`: the footprint-overlap cost of the decoded imagined states (None: the
        look-ahead scores reward and value only); `route_cost`: each candidate's deviation
        from the route (None: the route is not scored); `conflict_cost`: each candidate's
        TTC shortfall to the tracked vehicles of the route context (None: not scored).
        """
        self.route_cost = route_cost
        self.conflict_cost = conflict_cost
        self.world_model = world_model
        self.actor_critic = actor_critic
        self.num_actions = num_actions
        self.config = config
        self.generator = generator
        self.occupancy = occupancy
        # call_world_model's own models take the index-gather path (same plans, half the
        # multiply-adds); other ImaginingModels (tests' toy models) the generic one
        self._indexed = (IndexedLookahead(world_model, actor_critic, occupancy)
                         if IndexedLookahead.supports(world_model, actor_critic) else None)
        self.reset()

    def reset(self) -> None:
        """Forget the kept plans (e.g. after a safety stop or an episode reset)."""
        self._active: Optional[Plan] = None
        self._active_age = 0
        self._intention: Optional[Plan] = None
        self._intention_age = 0

    def _due(self) -> tuple[bool, bool]:
        """(refresh, replan): whether this step renews the intention and runs a look-ahead."""
        cfg = self.config
        refresh = self._intention is None or self._intention_age >= cfg.K
        replan = refresh or self._active is None or self._active_age >= cfg.replan_every
        return refresh, replan

    def lookahead_request(self, state: StateSource,
                          imagine_kwargs: Optional[dict[str, Any]] = None
                          ) -> Optional[LookaheadRequest]:
        """
        Return this step's look-ahead as a request others may batch (`lookahead_batch`).

        None when no look-ahead is due this step, or when it cannot be batched (a sampled
        actor or imagined z, or a model without the indexed path): `step` then runs it.
        `state` may be a function that makes it (`StateSource`), called only for a request.
        """
        if not self._due()[1] or self._indexed is None or self.config.sample_actor \
                or bool((imagine_kwargs or {}).get('sample', True)):
            return None
        return LookaheadRequest(self._indexed, _made(state), self.num_actions, self.config.K,
                                self.config.gamma)

    def _kept_plan_conflicts(self, route: Optional[RouteContext]) -> bool:
        """Whether the rest of the kept plan is charged a conflict (a vehicle came up)."""
        if self.conflict_cost is None or route is None or self._active is None \
                or not len(route.tracks):
            return False
        rest = list(self._active.actions[self._active_age:])
        kept = np.array([rest + rest[-1:] * (self.config.K - len(rest))])
        return bool(self.conflict_cost.cost(kept, route)[0] > 0.0)

    def step(self, state: StateSource, imagine_kwargs: Optional[dict[str, Any]] = None,
             route: Optional[RouteContext] = None, planned: Optional[Plan] = None
             ) -> Decision:
        """
        Choose this step's action from the batch-1 model state `state`.

        `imagine_kwargs` condition the imagination (see `lookahead.plan`); `route` (pose,
        speed, waypoints ahead) lets the route cost rescore the candidates; `planned`: the
        outcome of this step's `lookahead_request`, planned elsewhere (with other vehicles').
        `state` may be a function that makes it (`StateSource`): only a look-ahead run here
        reads the state, and most steps keep their plan.
        """
        cfg = self.config
        refresh, replan = self._due()
        if not replan and self._kept_plan_conflicts(route):
            replan = True
        if replan:
            if planned is not None:
                self._active = planned
            elif self._indexed is not None:
                self._active = self._indexed.plan(_made(state), self.num_actions, cfg.K,
                                                  cfg.gamma, cfg.sample_actor, self.generator,
                                                  imagine_kwargs)
            else:
                self._active = plan(self.world_model, self.actor_critic, _made(state),
                                    self.num_actions, cfg.K, cfg.gamma, cfg.sample_actor,
                                    self.generator, imagine_kwargs, self.occupancy)
            costs = [c.cost(self._active.candidates, route)
                     for c in (self.route_cost, self.conflict_cost)
                     if c is not None and route is not None]
            if costs:
                self._active = rescored(self._active, sum(costs))
            self._active_age = 0
        if refresh:
            self._intention = self._active
            self._intention_age = 0
        action = self._active.actions[self._active_age]
        decision = Decision(action=action, active=self._active, intention=self._intention,
                            replanned=replan, refreshed=refresh)
        self._active_age += 1
        self._intention_age += 1
        return decision

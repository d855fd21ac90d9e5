"""
The planning stage of one vehicle step (ROS-free): look-ahead on the published state, driver.

One object for the planner node and the fleet pipeline that trains and evaluates
(``FleetLookahead``: the parity test, the driving evaluation and the experiments' tables), so
all plan with the same rule: the published (z, h) becomes the
model state (``model_state.state_from_latent``), ``replanning.ReplanningPolicy`` keeps the
K-step plan and runs the look-ahead (paper eq. 3, with the occupancy cost when the model
decodes vehicles), and ``call_vehicle.driver.Driver`` maps the action to the control and
declares the intention. Every number comes from the planner's parameters
(config/planner.yaml), whoever builds the stage. The TTC safety monitor and the watchdog
stay in the node: they act on the node's own inputs (the BEV topic, message freshness).
"""
import dataclasses
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from call_common.param_files import package_defaults, with_overrides
from call_perception.bev_raster import BevConfig
from call_planner.conflict_cost import conflict_cost_or_none, ConflictConfig, ConflictCost
from call_planner.lookahead import Plan
from call_planner.lookahead_batch import LookaheadRequest
from call_planner.model_state import imagination_kwargs, state_from_latent
from call_planner.occupancy_cost import OccupancyConfig, OccupancyCost
from call_planner.replanning import Decision, LookaheadConfig, ReplanningPolicy
from call_planner.route_cost import route_cost_or_none, RouteConfig, RouteContext, RouteCost
from call_planner.ttc_monitor import MonitorConfig
from call_planner.turn_assist import turn_assist_from_params
from call_vehicle.actions import ActionSet
from call_vehicle.driver import Driver
from call_vehicle.vehicle_control import ControlModel
from call_vehicle.vehicle_model import BicycleModel
import numpy as np
import torch


def planner_params(overrides: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """
    Return the planner node's parameters outside ROS: config/planner.yaml with ``overrides``.

    Why: a stage built by the evaluation must plan with the node's numbers, so it starts from
    the same file, under the node's typing rule (``call_common.param_files.with_overrides``).
    """
    return with_overrides(package_defaults('call_planner', 'planner.yaml'), overrides)


def driver_from_params(p: Mapping[str, Any]) -> Driver:
    """Build the vehicle's driver from the planner's parameters (actions, vehicle, K)."""
    return Driver(ActionSet.from_config({'accels': p['accels'], 'steers': p['steers']}),
                  BicycleModel.from_config(p),
                  ControlModel.from_config({k: p[k] for k in
                                            dataclasses.asdict(ControlModel())}),
                  float(p['comfortable_decel']), int(p['K']))


def lookahead_from_params(p: Mapping[str, Any]) -> LookaheadConfig:
    """Read the look-ahead numbers from the planner's parameters."""
    return LookaheadConfig(K=int(p['K']), gamma=float(p['gamma']),
                           replan_every=int(p['replan_every']),
                           sample_actor=bool(p['sample_actor']))


def occupancy_from_params(world_model: Any, p: Mapping[str, Any]) -> Optional[OccupancyCost]:
    """Build the look-ahead's occupancy cost (None when off or the model decodes no vehicles)."""
    if not float(p['occupancy_weight']) > 0.0 or not OccupancyCost.supports(world_model):
        return None
    bev = BevConfig.from_yaml(str(p['bev_config']) or None)
    return OccupancyCost(world_model, OccupancyConfig(
        weight=float(p['occupancy_weight']), every=int(p['occupancy_every']),
        margin=float(p['occupancy_margin']), ego_length=float(p['ego_length']),
        ego_width=float(p['ego_width']), window_m=bev.size * bev.metres_per_pixel,
        ego_row_fraction=bev.ego_row / bev.size, ego_col_fraction=bev.ego_col / bev.size))


def route_cost_from_params(p: Mapping[str, Any]) -> Optional[RouteCost]:
    """Build the look-ahead's route cost (None when its weight is 0)."""
    return route_cost_or_none(RouteConfig(float(p['route_weight']), float(p['route_lookahead']),
                                          float(p['route_speed_weight']),
                                          float(p['route_reference_speed']),
                                          float(p['route_lateral_accel'])),
                              ActionSet.from_config({'accels': p['accels'],
                                                     'steers': p['steers']}),
                              BicycleModel.from_config(p))


def conflict_cost_from_params(p: Mapping[str, Any]) -> Optional[ConflictCost]:
    """Build the look-ahead's conflict cost (None when its weight is 0)."""
    return conflict_cost_or_none(ConflictConfig(float(p['conflict_weight']),
                                                float(p['conflict_ttc']),
                                                float(p['conflict_horizon']),
                                                float(p['conflict_ttc_shared']),
                                                bool(p['conflict_on_route'])),
                                 MonitorConfig.from_params(p),
                                 ActionSet.from_config({'accels': p['accels'],
                                                        'steers': p['steers']}),
                                 BicycleModel.from_config(p),
                                 turn_assist_from_params(p))


class PlanStage:
    """One vehicle's kept plan and the look-ahead that renews it."""

    def __init__(self, world_model: Any, actor_critic: Any, p: Mapping[str, Any],
                 seed: Optional[int] = None,
                 occupancy: Optional[OccupancyCost] = None) -> None:
        """
        Bind the models and the planner's parameters ``p`` (config/planner.yaml names).

        ``seed`` seeds the generator of sampled actor actions (default: ``p['seed']``);
        ``occupancy`` shares one cost object between stages (default: built from ``p``).
        """
        self.cfg = world_model.cfg
        self.driver = driver_from_params(p)
        if len(self.driver.actions) != self.cfg.num_actions:
            raise ValueError(f'action set has {len(self.driver.actions)} actions, the '
                             f'checkpoint {self.cfg.num_actions}')
        self.lookahead = lookahead_from_params(p)
        self.occupancy = occupancy if occupancy is not None else \
            occupancy_from_params(world_model, p)
        generator = torch.Generator().manual_seed(int(p['seed'] if seed is None else seed))
        self.policy = ReplanningPolicy(world_model, actor_critic, len(self.driver.actions),
                                       self.lookahead, generator, self.occupancy,
                                       route_cost_from_params(p),
                                       conflict_cost_from_params(p))
        self.imagine_kwargs = imagination_kwargs(world_model, bool(p['sample_latent']))

    def _state(self, z_indices: np.ndarray, h: np.ndarray) -> dict:
        return state_from_latent(np.asarray(z_indices), np.asarray(h, dtype=np.float32),
                                 self.cfg.stoch, self.cfg.classes)

    def lookahead_request(self, z_indices: np.ndarray, h: np.ndarray
                          ) -> Optional[LookaheadRequest]:
        """
        Return this step's look-ahead as a batchable request (``lookahead_batch``), or None.

        None: no look-ahead is due this step or it cannot be batched; ``decide`` runs it.
        """
        return self.policy.lookahead_request(lambda: self._state(z_indices, h),
                                             self.imagine_kwargs)

    def decide(self, z_indices: np.ndarray, h: np.ndarray,
               route: Optional[RouteContext] = None, planned: Optional[Plan] = None
               ) -> Decision:
        """
        Decide this step from the published state (z indices, h) and the route.

        ``planned``: the plan of this step's ``lookahead_request``, made in a batch.
        """
        with torch.no_grad():
            return self.policy.step(lambda: self._state(z_indices, h), self.imagine_kwargs,
                                    route, planned)

    def reset(self) -> None:
        """Forget the kept plan (a stop, an override, a new episode)."""
        self.policy.reset()


class FleetLookahead:
    """
    The planner's stage for every vehicle of the fleet pipeline (a ``pipeline.FleetPolicy``).

    Vehicle ``i``'s stage in episode ``e`` is seeded ``seed_of(i, e)`` (default: the
    parameter ``seed``); a renewed plan's K actions become its declared intention, as the
    planner node declares them.
    """

    def __init__(self, world_model: Any, actor_critic: Any, p: Mapping[str, Any],
                 seed_of: Optional[Callable[[int, int], int]] = None) -> None:
        """Bind the models and the planner's parameters; stages are built on first use."""
        self.world_model = world_model
        self.actor_critic = actor_critic
        self.params = dict(p)
        self.seed_of = seed_of or (lambda index, episode: int(p['seed']))
        self.occupancy = occupancy_from_params(world_model, p)
        self.episode = 0
        self.stages: dict = {}
        self.tracks: dict = {}      # index -> the monitor's tracks this step (conflict cost)

    def stage(self, index: int) -> PlanStage:
        """Return vehicle ``index``'s stage."""
        if index not in self.stages:
            self.stages[index] = PlanStage(self.world_model, self.actor_critic, self.params,
                                           self.seed_of(index, self.episode), self.occupancy)
        return self.stages[index]

    def restart(self, episode: int = 0) -> None:
        """Forget every vehicle's stage; the next ones are seeded for ``episode``."""
        self.episode = episode
        self.stages = {}

    def choose(self, indices: Sequence[int], outputs: Sequence[Any],
               observations: Sequence[Any]) -> List[Tuple[int, Optional[Sequence[int]]]]:
        """Return (action, renewed plan or None) per listed vehicle."""
        chosen = []
        for index, output, observation in zip(indices, outputs, observations):
            ego = observation.ego
            route = RouteContext((ego.x, ego.y, ego.yaw), ego.speed, observation.route,
                                 tuple(self.tracks.get(index, ())))
            decision = self.stage(index).decide(output.z_indices(), output.h(), route)
            chosen.append((decision.action,
                           decision.intention.actions if decision.refreshed else None))
        return chosen

    def forget(self, index: int) -> None:
        """Drop the vehicle's kept plan (it stopped)."""
        self.stage(index).reset()

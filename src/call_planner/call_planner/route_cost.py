"""
Cost of a candidate plan leaving the route: the look-ahead's sense of where the goal is.

The ego's line in the BEV is its declared plan once it has one (call_perception), so after
the first plan the world model no longer sees the route, and the reward head and the critic
(learned from few trips, on a CPU budget) do not keep a vehicle in its lane or take the
route's lane changes: vehicles drifted off the road within seconds. Route-following planners
score each candidate trajectory by its deviation from the reference path (the lateral and
heading terms of pure pursuit and Stanley control); here every eq. 3 candidate's K planned
actions are integrated with the vehicle's kinematic bicycle model (the one the intention
uses) and charged

    cost(a_0..a_{K-1}) = w * mean_k [ d(p_k) + d(p_k + L (cos psi_k, sin psi_k)) ]

where d is the distance [m] to the route polyline (the simulator's / CARLA waypoint
publisher's window ahead), p_k and psi_k the k-th predicted position and heading and L the
look-ahead distance: the second term is the pure-pursuit heading error, measured where it
will matter. Weight in reward units per metre (config/planner.yaml, `route_*`). The route
comes from the planning module, not from the learned model: no privileged information.

Progress along the route is the reference path's other half: a route follower tracks a
reference speed as well as the path (the paper's R_velocity rewards speed up to its limit,
App. E.1). Without it the look-ahead, whose learned reward head is weak on progress, let
vehicles crawl at walking pace in traffic, where a crawling car is the one that gets hit.
Each candidate is also charged

    w_v * mean_k max(0, v_ref - v_k)

for the predicted speeds v_k below the reference speed v_ref [m/s]; braking for a vehicle
ahead stays the occupancy cost's and the safety monitor's business. Where the route bends
(a turn at a junction) the reference is the curve's speed, v_ref = min(v_ref, sqrt(a_lat /
kappa)) for the largest curvature kappa of the route within the distance it takes to brake
from v_ref, as speed planners of route followers bound lateral acceleration, and speeds above
that curve speed are charged as well: a turn taken at the straight road's speed left the
road.
"""
from dataclasses import dataclass, replace
import math
from typing import Optional, Sequence

from call_vehicle.actions import ActionSet
from call_vehicle.vehicle_model import BicycleModel
import numpy as np


@dataclass(frozen=True)
class RouteConfig:
    """Weight and geometry of the route cost (config/planner.yaml, `route_*`)."""

    weight: float = 0.5           # reward units per metre of mean deviation; 0 = off
    lookahead: float = 8.0        # [m] L: where the heading error is measured
    speed_weight: float = 0.0     # w_v: reward units per m/s below the reference; 0 = off
    reference_speed: float = 0.0  # [m/s] v_ref
    lateral_accel: float = 0.0    # [m/s^2] a_lat bounding the speed in curves; 0 = no bound
    brake_decel: float = 2.0      # [m/s^2] how far ahead curves count: v_ref^2 / (2 b)

    def __post_init__(self):
        """Fail fast on a negative weight, look-ahead or speed."""
        for name in ('weight', 'lookahead', 'speed_weight', 'reference_speed',
                     'lateral_accel', 'brake_decel'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f'route_{name} must be >= 0, got {value}')


@dataclass(frozen=True)
class RouteContext:
    """Where the ego is, the route it follows and the vehicles around (map frame)."""

    pose: tuple             # (x, y, yaw)
    speed: float            # [m/s]
    route: np.ndarray       # (M, 2) waypoints ahead, in driving order
    # the safety monitor's tracked vehicles (ttc_monitor.Track) of the current fused BEV,
    # seen and shared: the conflict cost's input
    tracks: tuple = ()


def kinematic_rollout(table: np.ndarray, bicycle: BicycleModel, candidates: np.ndarray,
                      pose: tuple, speed: float) -> tuple:
    """
    Integrate B candidate plans (B, K) of action indices with the bicycle model.

    `table` (A, 2): (accel, steer) per action. Returns x, y, yaw, speed, each (B, K): the
    state after each planned step (the intention's waypoints).
    """
    accel, steer = table[candidates].transpose(2, 0, 1)                       # (B, K) each
    return tuple(bicycle.rollout_arrays(*(float(v) for v in pose), max(float(speed), 0.0),
                                        accel, steer))


def distance_to_polyline(points: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Distance [m] of each point (..., 2) to the polyline (M, 2), M >= 2."""
    a, b = line[:-1], line[1:]
    ab = b - a
    length2 = np.maximum((ab ** 2).sum(-1), 1e-12)
    flat = points.reshape(-1, 1, 2)
    t = np.clip(((flat - a) * ab).sum(-1) / length2, 0.0, 1.0)
    nearest = a + t[..., None] * ab
    return np.sqrt(((flat - nearest) ** 2).sum(-1)).min(-1).reshape(points.shape[:-1])


class RouteCost:
    """Charges each candidate's kinematic rollout its deviation from the route."""

    def __init__(self, config: RouteConfig, actions: ActionSet,
                 bicycle: BicycleModel = BicycleModel()):
        """Bind the weights, the action set and the vehicle model of the intention."""
        self.config = config
        self.table = np.array([actions.action(i) for i in range(len(actions))])   # (A, 2)
        self.bicycle = bicycle

    def cost(self, candidates: np.ndarray, context: RouteContext) -> np.ndarray:
        """(B,) cost of B candidate plans (B, K) of action indices; 0 without a route."""
        candidates = np.asarray(candidates, dtype=np.int64)
        route = np.asarray(context.route, dtype=np.float64).reshape(-1, 2)
        if len(route) < 2:
            return np.zeros(len(candidates))
        x, y, yaw, speed = kinematic_rollout(self.table, self.bicycle, candidates,
                                             context.pose, context.speed)       # (B, K)
        ahead = self.config.lookahead
        points = np.stack([np.stack([x, y], -1),
                           np.stack([x + ahead * np.cos(yaw), y + ahead * np.sin(yaw)], -1)],
                          2)                                                    # (B, K, 2, 2)
        reference = self.reference_speed(route)
        shortfall = np.maximum(reference - speed, 0.0).mean(-1)
        if reference < self.config.reference_speed:         # in a curve: its speed, not more
            shortfall = shortfall + np.maximum(speed - reference, 0.0).mean(-1)
        deviation = distance_to_polyline(points, route).sum(-1).mean(-1)      # (B,)
        return self.config.weight * deviation + self.config.speed_weight * shortfall

    def reference_speed(self, route: np.ndarray) -> float:
        """v_ref, lowered to the curve speed of the sharpest bend within braking distance."""
        cfg = self.config
        if cfg.lateral_accel <= 0.0:
            return cfg.reference_speed
        kappa = route_curvature(route, cfg.reference_speed ** 2 / (2.0 * cfg.brake_decel))
        if kappa <= 1e-9:
            return cfg.reference_speed
        return min(cfg.reference_speed, math.sqrt(cfg.lateral_accel / kappa))


def route_curvature(route: np.ndarray, reach: float) -> float:
    """
    Largest curvature [1/m] of the polyline `route` (M, 2) within `reach` metres of its start.

    Each vertex's turn angle over the mean length of its two segments; 0 for a straight or
    too short route.
    """
    route = np.asarray(route, dtype=np.float64).reshape(-1, 2)
    if len(route) < 3:
        return 0.0
    steps = np.diff(route, axis=0)
    lengths = np.hypot(steps[:, 0], steps[:, 1])
    keep = lengths > 1e-6
    steps, lengths = steps[keep], lengths[keep]
    if len(steps) < 2:
        return 0.0
    heading = np.arctan2(steps[:, 1], steps[:, 0])
    turn = np.abs(np.remainder(np.diff(heading) + math.pi, 2 * math.pi) - math.pi)
    arc = np.cumsum(lengths)[:-1]                 # distance to each vertex's turn
    ds = 0.5 * (lengths[:-1] + lengths[1:])
    near = arc <= reach
    return float((turn[near] / ds[near]).max()) if near.any() else 0.0


def rescored(plan, costs: Sequence[float]):
    """Return the plan among `plan.candidates` that is best once `costs` are subtracted."""
    if plan.candidates is None:
        raise ValueError('the plan carries no candidates to rescore')
    scores = np.asarray(plan.scores, dtype=np.float64) - np.asarray(costs, dtype=np.float64)
    if not np.all(np.isfinite(scores)):
        raise FloatingPointError('route cost produced non-finite scores')
    best = int(np.argmax(scores))
    return replace(plan, first_action=best, actions=tuple(int(a) for a in plan.candidates[best]),
                   scores=scores, value=float(scores[best]))


def route_cost_or_none(config: Optional[RouteConfig], actions: ActionSet,
                       bicycle: BicycleModel = BicycleModel()) -> Optional[RouteCost]:
    """Return a RouteCost, or None when both weights are 0 (the plain eq. 3 look-ahead)."""
    if config is None or (config.weight == 0.0 and config.speed_weight == 0.0):
        return None
    return RouteCost(config, actions, bicycle)

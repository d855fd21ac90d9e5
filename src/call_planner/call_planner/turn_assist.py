"""
Steering through a bend tighter than the action set can turn.

The paper's action set (App. E.1) steers at most 0.6 of the steering range. On the kinematic
bicycle the intention uses (wheelbase 2.9 m, 0.5 rad at full lock) that turns on a circle of
about 9.4 m, and the crossroad's right turns have 5.75 m (its connecting lanes). Steering only
the set's values, even a route follower that starts turning early swings about 2 m wide, and
the learned planner, which does not, left the road in such turns or came to stand across the
oncoming lanes, and the junction locked (docs/results.md, "Turns the action set cannot
drive").

So where the route ahead bends more tightly than the set can turn, the lateral command follows
the route by pure pursuit (Coulter 1992): delta = atan(2 L sin(alpha) / l_d), L the wheelbase,
alpha the angle to the route point l_d ahead, l_d = max(`min_lookahead`, `lookahead_time` x
speed), up to full lock. It only ever steers harder than the planner did. The longitudinal
command stays the planner's or the monitor's; the route cost's curve speed
(`route_lateral_accel`) charges the look-ahead for entering the bend faster. The caller tells the
world model the nearest discrete action, as for a monitor's override. Elsewhere, on every
road whose bends the set can drive, nothing changes.

A turn can also be left unfinished: a vehicle that stood at a bend's entry and then turned
late still points far off its route when the bend's last vertex leaves the waypoint window,
and the route ahead then reads as straight. With the set's steer it drifted across the lanes
it had turned into, up to the cross traffic's stop line, and stood there (docs/results.md,
"Turns left unfinished"). With `finish_turns` (on) the assist also steers, and predictions follow
the route, while the ego heads more than `off_heading` away from the route point its pursuit
aims at (pure pursuit's alpha, which grows with the lateral offset, so a vehicle drifting
off its route after the turn counts too), and drives slower than `finish_speed`. Lane keeping
stays far below that angle. Lane changes, the route's and the evasive ones of some learned
planners, reach it too, but at cruising speed; a bend tighter than the set turns is driven
slower, since the route cost's curve speed sqrt(a_lat / kappa) is about 4.3 m/s at the set's
tightest curvature and `route_lateral_accel` = 2 m/s^2.
"""
from dataclasses import dataclass
import math
from typing import Any, Mapping, Optional

from call_planner.route_cost import route_curvature
from call_planner.route_path import finite_points, route_ahead, route_path
from call_vehicle.actions import ActionSet
from call_vehicle.vehicle_model import BicycleModel
from call_world_model.intention import map_to_ego
import numpy as np


@dataclass(frozen=True)
class TurnAssistConfig:
    """Where a bend counts and how far ahead the pursuit aims (planner.yaml `turn_assist_*`)."""

    enabled: bool = True
    reach: float = 6.0             # [m] a bend counts this far ahead of the ego ...
    reach_time: float = 0.5        # [s] ... plus this long at the current speed
    lookahead_time: float = 0.6    # [s] l_d: the pursuit aims this far ahead ...
    min_lookahead: float = 3.0     # [m] ... and at least this far
    route_path: bool = True        # predictions of the ego follow the route in such a bend
    finish_turns: bool = True      # ... and wherever the ego heads away from the point its
    off_heading: float = 0.35      # [rad] pursuit aims at by more than this ...
    finish_speed: float = 4.0      # [m/s] ... slower than this

    def __post_init__(self):
        """Fail fast on a negative distance or time, or a pursuit aiming at the ego itself."""
        for name in ('reach', 'reach_time', 'lookahead_time'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f'turn_assist_{name} must be >= 0, got {value}')
        if not self.finish_speed >= 0.0:                   # .inf: at any speed
            raise ValueError(f'turn_assist_finish_speed must be >= 0, got {self.finish_speed}')
        if not (math.isfinite(self.min_lookahead) and self.min_lookahead > 0.0):
            raise ValueError(f'turn_assist_min_lookahead must be > 0, got {self.min_lookahead}')
        if not (0.0 < self.off_heading <= math.pi):
            raise ValueError(f'turn_assist_off_heading must be in (0, pi] rad, '
                             f'got {self.off_heading}')

    @classmethod
    def from_params(cls, p: Mapping[str, Any]) -> 'TurnAssistConfig':
        """Read the `turn_assist_*` keys of the planner's parameters."""
        return cls(enabled=bool(p['turn_assist_enabled']),
                   reach=float(p['turn_assist_reach']),
                   reach_time=float(p['turn_assist_reach_time']),
                   lookahead_time=float(p['turn_assist_lookahead_time']),
                   min_lookahead=float(p['turn_assist_min_lookahead']),
                   route_path=bool(p['turn_assist_route_path']),
                   finish_turns=bool(p['turn_assist_finish_turns']),
                   off_heading=float(p['turn_assist_off_heading']),
                   finish_speed=float(p['turn_assist_finish_speed']))


def pursuit_point(pose: tuple, route: np.ndarray, lookahead: float) -> tuple:
    """Return the route point pure pursuit aims at, in the ego's frame: (ahead, left) [m]."""
    local = map_to_ego(route, *pose)                      # x ahead, y left
    ahead, left = local[:, 0], local[:, 1]
    far = np.flatnonzero((np.hypot(ahead, left) >= lookahead) & (ahead > 0.0))
    i = int(far[0]) if len(far) else len(route) - 1
    return float(ahead[i]), float(left[i])


def pursuit_steer(pose: tuple, route: np.ndarray, lookahead: float,
                  bicycle: BicycleModel) -> float:
    """Normalised steer in [-1, 1] of pure pursuit towards `route` (M, 2), map frame."""
    ahead, left = pursuit_point(pose, route, lookahead)
    distance2 = max(ahead ** 2 + left ** 2, 1e-6)
    delta = math.atan(2.0 * bicycle.wheelbase * left / distance2)     # 2 L sin(a) / l_d
    return float(np.clip(delta / bicycle.max_steer_angle, -1.0, 1.0))


class TurnAssist:
    """The steer a vehicle drives: the planner's, or the route's pursuit in a too tight bend."""

    def __init__(self, config: TurnAssistConfig, actions: ActionSet, bicycle: BicycleModel):
        """Bind the config; the set's tightest curvature follows from its largest steer."""
        self.config = config
        self.bicycle = bicycle
        largest = max(abs(s) for s in actions.steers)
        self.set_curvature = math.tan(largest * bicycle.max_steer_angle) / bicycle.wheelbase

    def in_bend(self, route: Any, speed: float, start: float = 0.0) -> bool:
        """
        Whether the route (M, 2) bends more tightly than the set turns, within reach.

        The reach is counted from `start` metres along the route.
        """
        route = np.asarray(route, dtype=np.float64).reshape(-1, 2)
        if not self.config.enabled or len(route) < 3:
            return False
        reach = self.config.reach + self.config.reach_time * max(float(speed), 0.0)
        return route_curvature(route, start + reach) > self.set_curvature

    def lookahead(self, speed: float) -> float:
        """Return the pursuit's l_d [m] at this speed."""
        return max(self.config.min_lookahead, self.config.lookahead_time * max(float(speed), 0.0))

    def heads_off(self, pose: tuple, speed: float, route: Any) -> bool:
        """
        Whether the ego heads away from its route: a turn left unfinished, or a drift after it.

        The angle is pure pursuit's alpha, between the ego's heading and the route point the
        pursuit aims at. Always false without `finish_turns`, and at `finish_speed` or faster.
        """
        if not (self.config.enabled and self.config.finish_turns):
            return False
        if not float(speed) < self.config.finish_speed:
            return False
        route = finite_points(route)
        if len(route) < 2:
            return False
        ahead, left = pursuit_point(pose, route, self.lookahead(speed))
        return abs(math.atan2(left, ahead)) > self.config.off_heading

    def predicted_path(self, pose: tuple, speed: float, route: Any, far: float
                       ) -> Optional[tuple]:
        """
        Where the ego will drive when the assist takes it through a bend: x, y, heading (M,).

        The route from the ego on (`route_path.route_path`, continued `far` metres), when
        `route_path` is on and the route bends more tightly than the set turns within reach
        of the ego's projection on it (read on the route's own vertices:
        `route_path.route_ahead`); else None (predictions keep their own model of the ego's
        motion).
        """
        if not self.config.route_path:
            return None
        route = finite_points(route)
        if len(route) < 2:
            return None
        ahead, start = route_ahead(route, (pose[0], pose[1]))
        if not (self.in_bend(ahead, speed, start) or self.heads_off(pose, speed, route)):
            return None
        return route_path(pose, route, far)

    def steer(self, pose: tuple, speed: float, route: Any, steer: float) -> Optional[float]:
        """Return the pursuit's steer where it must replace `steer`, else None."""
        if not (self.in_bend(route, speed) or self.heads_off(pose, speed, route)):
            return None
        route = np.asarray(route, dtype=np.float64).reshape(-1, 2)
        pursued = pursuit_steer(pose, route, self.lookahead(speed), self.bicycle)
        return pursued if abs(pursued) > abs(steer) else None


def turn_assist_from_params(p: Mapping[str, Any]) -> Optional[TurnAssist]:
    """Build the assist from the planner's parameters (None when off)."""
    config = TurnAssistConfig.from_params(p)
    if not config.enabled:
        return None
    actions = ActionSet.from_config({'accels': p['accels'], 'steers': p['steers']})
    return TurnAssist(config, actions, BicycleModel.from_config(p))

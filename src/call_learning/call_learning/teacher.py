"""
A privileged rule-based driver: the teacher of the actor's behaviour-cloning warm start.

It sees every vehicle (the simulator's ground truth, `AgentObservation.others`), not the BEV:
it only has to drive well enough that imitating it gives the actor a sensible start before
DreamerV3's imagination training (the paper trains from scratch; CPU budgets do not allow
that). Longitudinal: the intelligent driver model (Treiber et al. 2000) towards a cruise
speed, keeping a time gap to the nearest vehicle whose predicted path (constant velocity, 3 s)
comes within `corridor` of the ego's route ahead, so a crossing vehicle is yielded to as well
as a leader followed (vehicles going the ego's way count where they are now). Lateral: pure
pursuit on the route. Both are quantised to the nearest of the 15 actions (App. E.1).

    python -m call_learning.teacher --scenario four_lane_demo --steps 600 --seed 0

drives every CALL vehicle with the teacher and prints `call_sim.driving_metrics`.
"""
import argparse
from dataclasses import dataclass
import math
from typing import Any, Optional, Sequence

from call_vehicle.actions import ActionSet
from call_world_model.intention import map_to_ego
import numpy as np


@dataclass(frozen=True)
class TeacherConfig:
    """Numbers of the teacher (IDM and pure pursuit)."""

    cruise_speed: float = 8.0        # [m/s] desired speed
    time_gap: float = 1.5            # [s] IDM safe time headway
    min_gap: float = 4.0             # [m] IDM jam distance (bumper to bumper)
    max_accel: float = 2.0           # [m/s^2] IDM a
    comfortable_decel: float = 2.0   # [m/s^2] IDM b
    corridor: float = 2.5            # [m] half-width of the ego's path corridor
    prediction: float = 3.0          # [s] constant-velocity look-ahead of crossing vehicles
    crossing_angle: float = 0.5      # [rad] heading difference above which a vehicle crosses
    lookahead: float = 8.0           # [m] pure-pursuit target distance on the route
    steer_gain: float = 1.5          # steer command per rad of heading error
    vehicle_length: float = 4.8      # [m] bumper-gap correction


def _corridor_gap(observation: Any, config: TeacherConfig) -> tuple[float, float]:
    """
    (bumper gap [m], speed along the ego's heading [m/s]) of the nearest vehicle in the way.

    In the way: its position now (or, for a crossing vehicle, within `prediction` seconds at
    constant velocity) lies ahead of the ego and within `corridor` of the route polyline.
    inf gap when none is.
    """
    ego = observation.ego
    route = np.asarray(observation.route, dtype=np.float64).reshape(-1, 2)
    if len(route) < 2 or not observation.others:
        return math.inf, 0.0
    local_route = map_to_ego(route, ego.x, ego.y, ego.yaw)
    best, best_speed = math.inf, 0.0
    times = np.linspace(0.0, config.prediction, 7)
    for other in observation.others:
        vx, vy = other.speed * math.cos(other.yaw), other.speed * math.sin(other.yaw)
        rel_heading = math.remainder(other.yaw - ego.yaw, math.tau)
        # a vehicle going our way is in the way where it is now (its straight-line future
        # leaves a curved lane); a crossing one also where it is heading
        steps = times if abs(rel_heading) > config.crossing_angle else times[:1]
        path = np.stack([other.x + vx * steps, other.y + vy * steps], 1)
        local = map_to_ego(path, ego.x, ego.y, ego.yaw)
        dist = np.hypot(local[:, None, 0] - local_route[None, :, 0],
                        local[:, None, 1] - local_route[None, :, 1]).min(1)
        inside = (dist < config.corridor) & (local[:, 0] > 0.0)
        if not inside.any():
            continue
        # the gap to where it enters the corridor first (now, or where it will cross)
        ahead = float(local[np.argmax(inside), 0]) - config.vehicle_length
        if ahead < best:
            best, best_speed = max(ahead, 0.0), other.speed * math.cos(rel_heading)
    return best, best_speed


def teacher_accel(observation: Any, config: TeacherConfig) -> float:
    """IDM acceleration [m/s^2] towards the cruise speed behind the vehicle in the way."""
    speed = observation.ego.speed
    free = 1.0 - (speed / config.cruise_speed) ** 4
    gap, lead_speed = _corridor_gap(observation, config)
    if math.isinf(gap):
        return config.max_accel * free
    closing = speed - lead_speed
    desired = config.min_gap + max(0.0, speed * config.time_gap + speed * closing / (
        2.0 * math.sqrt(config.max_accel * config.comfortable_decel)))
    return config.max_accel * (free - (desired / max(gap, 0.1)) ** 2)


def teacher_steer(observation: Any, config: TeacherConfig) -> float:
    """Pure-pursuit steer command in [-1, 1] towards the route point `lookahead` ahead."""
    ego = observation.ego
    return pursuit_steer((ego.x, ego.y, ego.yaw), observation.route, config)


def pursuit_steer(pose: tuple[float, float, float], route: Any, config: TeacherConfig) -> float:
    """
    `teacher_steer` from a pose and a route polyline (map frame).

    A pose of its own, so that a driver can integrate its pursuit along a predicted motion.
    """
    route = np.asarray(route, dtype=np.float64).reshape(-1, 2)
    if len(route) == 0:
        return 0.0
    local = map_to_ego(route, *pose)
    dist = np.hypot(local[:, 0], local[:, 1])
    ahead = np.flatnonzero((dist >= config.lookahead) & (local[:, 0] > 0))
    target = local[ahead[0]] if len(ahead) else local[-1]
    heading_error = math.atan2(target[1], max(target[0], 1e-3))
    return float(np.clip(config.steer_gain * heading_error, -1.0, 1.0))


def teacher_action(observation: Any, actions: ActionSet, config: TeacherConfig) -> int:
    """Return the teacher's (accel, steer), quantised to the nearest discrete action."""
    return actions.index(teacher_accel(observation, config), teacher_steer(observation, config))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Drive a scenario with the teacher and print its driving metrics."""
    from call_sim.driving_metrics import summarise, VehicleStep
    from call_sim.env import MultiVehicleEnv
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument('--scenario', default='four_lane_demo')
    parser.add_argument('--steps', type=int, default=600)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    config = TeacherConfig()
    records, outcomes, progress = [], [], []
    with MultiVehicleEnv.from_scenario(args.scenario) as env:
        obs, _ = env.reset(seed=args.seed)
        trip = dict.fromkeys(obs, 0)
        for step in range(args.steps):
            controls = {role: env.control_model.to_control(
                *env.action_set.action(teacher_action(o, env.action_set, config)),
                o.ego.speed) for role, o in obs.items()}
            obs, _, term, trunc, infos = env.step(controls)
            for role, info in infos.items():
                records.append(VehicleStep((role, trip[role]), env.time, info['ttc'],
                                           info['collision'], info['accel']))
                if info['reached'] or info['collision'] or info['off_road']:
                    outcomes.append('reached' if info['reached'] else
                                    'collision' if info['collision'] else 'off_road')
                    progress.append(min(info['progress'] / info['route_length'], 1.0))
                    trip[role] += 1
            if any(term.values()) or any(trunc.values()):
                obs, _ = env.reset(seed=args.seed + step + 1)
                trip = {role: n + 1 for role, n in trip.items()}
    summary = summarise(records, outcomes, progress)
    print(' '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}'
                   for k, v in summary.items() if k != 'conventions'))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

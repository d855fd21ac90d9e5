"""
The paper's App. E.1 reward, one function per term.

R = w1 R_safe + w2 R_comfort + w3 R_time + w4 R_velocity + w5 R_ori + w6 R_target;
weights and scales live in config/reward.yaml.
"""
from dataclasses import dataclass
import math
from typing import Any, Mapping

TERMS = ('safe', 'comfort', 'time', 'velocity', 'orientation', 'target')


def safe_term(ttc: float, collision: bool, ttc_threshold: float) -> float:
    """-1 on collision, else -(threshold - TTC) / threshold when TTC is below the threshold."""
    if collision:
        return -1.0
    return -min(max((ttc_threshold - ttc) / ttc_threshold, 0.0), 1.0)


def comfort_term(jerk: float, accel: float, jerk_scale: float, accel_scale: float) -> float:
    """Mean of the saturated |jerk| and |acceleration| penalties, in [-1, 0]."""
    return -0.5 * (min(abs(jerk) / jerk_scale, 1.0) + min(abs(accel) / accel_scale, 1.0))


def time_term(reached: bool, arrival_bonus: float) -> float:
    """-1 for every step spent before arriving, the arrival bonus on the arrival step."""
    return arrival_bonus if reached else -1.0


def velocity_term(speed: float, leader_gap: float, speed_limit_near_leader: float,
                  close_leader_gap: float, speed_excess_scale: float) -> float:
    """Penalise speed above the limit while the leader is closer than `close_leader_gap`."""
    if leader_gap >= close_leader_gap or speed <= speed_limit_near_leader:
        return 0.0
    return -min((speed - speed_limit_near_leader) / speed_excess_scale, 1.0)


def orientation_term(yaw: float, lane_yaw: float, orientation_scale: float) -> float:
    """Penalise the heading error with respect to the nearest lane direction."""
    error = abs(math.atan2(math.sin(yaw - lane_yaw), math.cos(yaw - lane_yaw)))
    return -min(error / orientation_scale, 1.0)


def target_term(route_distance: float, route_distance_scale: float) -> float:
    """Penalise the distance from the planned waypoint polyline."""
    return -min(route_distance / route_distance_scale, 1.0)


@dataclass(frozen=True)
class RewardInputs:
    """Per-step quantities the reward reads (all measured by the simulator)."""

    ttc: float
    collision: bool
    jerk: float
    accel: float
    reached: bool
    speed: float
    leader_gap: float
    yaw: float
    lane_yaw: float
    route_distance: float


def reward_terms(x: RewardInputs, terms: Mapping[str, float]) -> dict[str, float]:
    """Every unweighted term by name."""
    return {
        'safe': safe_term(x.ttc, x.collision, terms['ttc_threshold']),
        'comfort': comfort_term(x.jerk, x.accel, terms['jerk_scale'], terms['accel_scale']),
        'time': time_term(x.reached, terms['arrival_bonus']),
        'velocity': velocity_term(x.speed, x.leader_gap, terms['speed_limit_near_leader'],
                                  terms['close_leader_gap'], terms['speed_excess_scale']),
        'orientation': orientation_term(x.yaw, x.lane_yaw, terms['orientation_scale']),
        'target': target_term(x.route_distance, terms['route_distance_scale']),
    }


def total_reward(terms: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """Weighted sum of the terms."""
    return float(sum(weights[name] * terms[name] for name in TERMS))


def validate_reward_config(config: Mapping[str, Any]) -> None:
    """Fail fast on a reward config lacking a weight or scale."""
    missing = [k for k in TERMS if k not in config.get('weights', {})]
    needed = ('ttc_threshold', 'jerk_scale', 'accel_scale', 'arrival_bonus',
              'speed_limit_near_leader', 'close_leader_gap', 'speed_excess_scale',
              'orientation_scale', 'route_distance_scale')
    missing += [k for k in needed if k not in config.get('terms', {})]
    if missing:
        raise ValueError(f'reward config lacks {missing}')

"""
Cost of a candidate plan running into a tracked vehicle: the look-ahead's car-following.

The occupancy cost reads the world model's decoded prediction, which renders other vehicles
faintly (Table 1), and the reward head and critic are learned from few collisions: the
look-ahead kept speed towards slower and crossing vehicles until the safety monitor's TTC
fell below its comfortable threshold, so the monitor did the braking, and a vehicle known
early through sharing (paper App. F) was braked for no earlier than a seen one. Planners
that use a tracker's objects charge each candidate trajectory its time to collision with
them (car-following / ACC terms of sampling-based planners); here the tracks are the safety
monitor's, from the current fused BEV (own sensing and V2V alike), so what sharing tells the
ego shapes the plan as soon as it is in the BEV.

Each eq. 3 candidate's K actions are integrated with the kinematic bicycle model
(`route_cost.kinematic_rollout`) and continued to `horizon` seconds at the candidate's mean
acceleration along its last heading (the plan's braking or accelerating carried on); every
track moves at constant velocity. The candidate's TTC is its first disc contact with any
track (`ttc_monitor.first_contacts`, the monitor's geometry: contacts that begin behind the
ego are left out), and it is charged

    cost = w * max(0, ttc_plan - TTC)

so with `ttc_plan` above the monitor's comfortable threshold the planner slows down for a
conflict before the monitor would override. Weight in reward units per second
(config/planner.yaml, `conflict_*`).
"""
from dataclasses import dataclass
import math
from typing import Optional

from call_planner.route_cost import kinematic_rollout, RouteContext
from call_planner.ttc_monitor import first_contacts, MonitorConfig
from call_vehicle.actions import ActionSet
from call_vehicle.vehicle_model import BicycleModel
import numpy as np


@dataclass(frozen=True)
class ConflictConfig:
    """Weight and horizon of the conflict cost (config/planner.yaml, `conflict_*`)."""

    weight: float = 2.0      # reward units per second of TTC below ttc; 0 = off
    ttc: float = 4.5         # [s] the planner's own TTC threshold
    horizon: float = 5.0     # [s] prediction of ego candidates and tracks

    def __post_init__(self):
        """Fail fast on a negative weight or a threshold beyond the horizon."""
        if not (math.isfinite(self.weight) and self.weight >= 0.0):
            raise ValueError(f'conflict_weight must be >= 0, got {self.weight}')
        if not (0.0 < self.ttc <= self.horizon and math.isfinite(self.horizon)):
            raise ValueError(f'conflict_ttc must be in (0, conflict_horizon], got {self.ttc}')


class ConflictCost:
    """Charges each candidate's kinematic rollout its TTC shortfall to the tracked vehicles."""

    def __init__(self, config: ConflictConfig, geometry: MonitorConfig, actions: ActionSet,
                 bicycle: BicycleModel = BicycleModel()):
        """Bind the weights, the footprint geometry (the monitor's) and the vehicle model."""
        self.config = config
        self.geometry = geometry
        self.table = np.array([actions.action(i) for i in range(len(actions))])   # (A, 2)
        self.bicycle = bicycle

    def ttc(self, candidates: np.ndarray, context: RouteContext) -> np.ndarray:
        """(B,) TTC [s] of each candidate plan (B, K) to the context's tracks (inf: none)."""
        candidates = np.asarray(candidates, dtype=np.int64)
        if not len(context.tracks):
            return np.full(len(candidates), math.inf)
        dt = self.bicycle.dt
        x, y, yaw, v = kinematic_rollout(self.table, self.bicycle, candidates, context.pose,
                                         context.speed)                        # (B, K)
        batch, k_steps = candidates.shape
        t = np.arange(0.0, self.config.horizon + 1e-9, dt)                      # (T,)
        # after the plan: its mean acceleration carried on along its last heading
        accel = self.table[candidates, 0].mean(-1)                              # (B,)
        tail = np.maximum(t[None, :] - k_steps * dt, 0.0)                       # (B?, T)
        v_end = v[:, -1:]
        stop = np.where(accel[:, None] < 0, v_end / np.maximum(-accel[:, None], 1e-9), np.inf)
        run = np.minimum(tail, stop)
        speed = np.clip(v_end + accel[:, None] * run, 0.0, self.bicycle.max_speed)
        travelled = 0.5 * (v_end + speed) * run                                 # (B, T)
        in_plan = np.minimum(np.round(t / dt).astype(int), k_steps)             # 0..K
        px = np.concatenate([np.full((batch, 1), float(context.pose[0])), x], 1)
        py = np.concatenate([np.full((batch, 1), float(context.pose[1])), y], 1)
        pyaw = np.concatenate([np.full((batch, 1), float(context.pose[2])), yaw], 1)
        ex = px[:, in_plan] + travelled * np.cos(pyaw[:, -1:])
        ey = py[:, in_plan] + travelled * np.sin(pyaw[:, -1:])
        eyaw = pyaw[:, in_plan]
        first = first_contacts(ex, ey, eyaw, context.tracks, t, 0.0, self.geometry)  # (B, N)
        first = first.min(-1)
        return np.where(first < len(t), t[np.minimum(first, len(t) - 1)], math.inf)

    def cost(self, candidates: np.ndarray, context: RouteContext) -> np.ndarray:
        """(B,) cost of B candidate plans (B, K) of action indices; 0 without tracks."""
        ttc = self.ttc(candidates, context)
        return self.config.weight * np.maximum(self.config.ttc - ttc, 0.0)


def conflict_cost_or_none(config: ConflictConfig, geometry: MonitorConfig, actions: ActionSet,
                          bicycle: BicycleModel = BicycleModel()) -> Optional[ConflictCost]:
    """Return a ConflictCost, or None when its weight is 0 (the look-ahead without it)."""
    if config.weight == 0.0:
        return None
    return ConflictCost(config, geometry, actions, bicycle)

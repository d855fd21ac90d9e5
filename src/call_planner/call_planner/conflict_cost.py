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

Each eq. 3 candidate is a path and a speed profile: the path is its K actions integrated
with the kinematic bicycle model (`route_cost.kinematic_rollout`), continued straight; along
it the ego moves for `horizon` seconds with the candidate's first acceleration held. That is
what the planner can do: while its kept plan is charged, it re-plans every step
(`replanning.ReplanningPolicy`) and can keep choosing that first action. A candidate that
speeds up is also checked at its current speed against crossing vehicles (the smaller TTC
counts): speeding up to pass in front of a crossing vehicle is not a way out. Every track moves at
constant velocity. The candidate's TTC is its first disc contact with any
track (`ttc_monitor.contact_times`, the monitor's geometry: contacts that begin behind the
ego are left out), and it is charged

    cost = w * max(0, ttc_plan - TTC)

so with `ttc_plan` above the monitor's comfortable threshold the planner slows down for a
conflict before the monitor would override. A contact that begins behind the ego is the
monitor's to leave alone, since braking cannot avoid it, but not the planner's when its
candidate makes it: a lane change into the path of a faster car coming up in the next lane
(a gap that is not accepted). So contacts from behind are charged for the tracks with
which holding the lane at the current speed has no contact. Weight in reward units per second
(config/planner.yaml, `conflict_*`).
"""
from dataclasses import dataclass, replace
import math
from typing import Optional

from call_planner.route_cost import kinematic_rollout, RouteContext
from call_planner.ttc_monitor import contact_times, first_contacts, MonitorConfig
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
        """
        (B,) TTC [s] of each candidate plan (B, K) to the context's tracks (inf: none).

        A candidate that speeds up gets the smaller of its TTC with its acceleration held
        and at the speed it has now to the vehicles crossing the ego's heading: a plan that
        is clear only by beating a crossing vehicle to the conflict is not clear (speeding up
        into a gap of traffic going the ego's way, as at a merge, stays a way out). Next step
        the monitor predicts the ego at constant speed and would brake in the middle of the
        crossing, and the other vehicle's constant-velocity prediction is not exact enough to
        race it.
        """
        candidates = np.asarray(candidates, dtype=np.int64)
        if not len(context.tracks):
            return np.full(len(candidates), math.inf)
        ttc = self._ttc(candidates, context, None)
        faster = self.table[candidates[:, 0], 0] > 0.0
        crossing = crossing_tracks(context.tracks, float(context.pose[2]))
        if faster.any() and crossing:
            ttc[faster] = np.minimum(ttc[faster], self._ttc(
                candidates[faster], replace(context, tracks=crossing), 0.0))
        return ttc

    def _ttc(self, candidates: np.ndarray, context: RouteContext,
             accel_cap: Optional[float]) -> np.ndarray:
        """TTC of each candidate with its first acceleration held (at most `accel_cap`)."""
        ex, ey, eyaw, t = self.paths(candidates, context, accel_cap)
        geometry, tracks = self.geometry, context.tracks
        first, ahead = contact_times(ex, ey, eyaw, tracks, t, 0.0, geometry)     # (B, N)
        # gap acceptance: a contact from behind counts when the candidate's manoeuvre makes
        # it, i.e. when holding the lane at the current speed has none with that vehicle
        x0, y0, yaw0 = (float(v) for v in context.pose)
        v0 = max(float(context.speed), 0.0)
        held = first_contacts(x0 + v0 * t * math.cos(yaw0), y0 + v0 * t * math.sin(yaw0),
                              np.full(len(t), yaw0), tracks, t, 0.0, geometry, behind=True)
        first = np.where(ahead | (held == len(t)), first, len(t)).min(-1)
        return np.where(first < len(t), t[np.minimum(first, len(t) - 1)], math.inf)

    def paths(self, candidates: np.ndarray, context: RouteContext,
              accel_cap: Optional[float] = None) -> tuple:
        """
        Each candidate's predicted ego poses x, y, yaw (B, T) at the times t (T,).

        Path and speed apart, as planners decompose a trajectory: the path is the candidate's
        kinematic rollout, continued straight along its last heading; along it the ego moves
        with the first action's acceleration held (speed kept within [0, max_speed]), since
        while its kept plan conflicts the planner re-plans every step and can keep choosing it.
        """
        dt, bicycle = self.bicycle.dt, self.bicycle
        x, y, yaw, _ = kinematic_rollout(self.table, bicycle, candidates, context.pose,
                                         context.speed)                        # (B, K)
        batch = len(candidates)
        t = np.arange(0.0, self.config.horizon + 1e-9, dt)                      # (T,)
        x0, y0, yaw0 = (float(v) for v in context.pose)
        v0 = max(float(context.speed), 0.0)
        accel = self.table[candidates[:, 0], 0]                                 # (B,)
        if accel_cap is not None:
            accel = np.minimum(accel, accel_cap)
        limit = np.where(accel < 0, 0.0, bicycle.max_speed)
        reach = np.where(accel != 0, (limit - v0) / np.where(accel != 0, accel, 1.0), np.inf)
        run = np.minimum(t[None, :], np.maximum(reach, 0.0)[:, None])           # (B, T)
        travelled = v0 * run + 0.5 * accel[:, None] * run ** 2 \
            + np.where(accel[:, None] > 0, bicycle.max_speed, 0.0) * (t[None, :] - run) \
            * (accel[:, None] > 0)
        far = v0 * t[-1] + bicycle.max_speed * t[-1] + 1.0        # beyond any travel
        px = np.concatenate([np.full((batch, 1), x0), x, x[:, -1:] + far * np.cos(yaw[:, -1:])],
                            1)                                                  # (B, K+2)
        py = np.concatenate([np.full((batch, 1), y0), y, y[:, -1:] + far * np.sin(yaw[:, -1:])],
                            1)
        heading = np.concatenate([np.full((batch, 1), yaw0), yaw, yaw[:, -1:]], 1)
        arc = np.concatenate([np.zeros((batch, 1)),
                              np.cumsum(np.hypot(np.diff(px), np.diff(py)), 1)], 1)
        ex, ey, eyaw = (np.empty((batch, len(t))) for _ in range(3))
        for b in range(batch):
            ex[b] = np.interp(travelled[b], arc[b], px[b])
            ey[b] = np.interp(travelled[b], arc[b], py[b])
            segment = np.clip(np.searchsorted(arc[b], travelled[b], 'right'), 1,
                              len(arc[b]) - 1)
            eyaw[b] = heading[b, segment]
        return ex, ey, eyaw, t

    def cost(self, candidates: np.ndarray, context: RouteContext) -> np.ndarray:
        """(B,) cost of B candidate plans (B, K) of action indices; 0 without tracks."""
        ttc = self.ttc(candidates, context)
        return self.config.weight * np.maximum(self.config.ttc - ttc, 0.0)


def crossing_tracks(tracks, yaw: float) -> tuple:
    """Return the tracks heading across `yaw`: 45 to 135 degrees to it, either way."""
    return tuple(k for k in tracks
                 if math.pi / 4 < abs(math.remainder(k.yaw - yaw, math.tau)) < 3 * math.pi / 4)


def conflict_cost_or_none(config: ConflictConfig, geometry: MonitorConfig, actions: ActionSet,
                          bicycle: BicycleModel = BicycleModel()) -> Optional[ConflictCost]:
    """Return a ConflictCost, or None when its weight is 0 (the look-ahead without it)."""
    if config.weight == 0.0:
        return None
    return ConflictCost(config, geometry, actions, bicycle)

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
with the kinematic bicycle model (`route_cost.kinematic_rollout`), continued back onto the
route and along it (`on_route`; continued straight instead, the last heading of a candidate
that steers out of its lane leaves the road for the whole horizon, and leaving the lane reads
as a way out of any conflict in it); along it the ego moves for `horizon` seconds
with the candidate's first acceleration held. That is what the planner can do: while its
kept plan is charged, it re-plans every step (`replanning.ReplanningPolicy`) and can keep
choosing that first action. A candidate that speeds up is also checked at its current
speed against crossing vehicles (the smaller TTC counts): speeding up to pass in front of a
crossing vehicle is not a way out. Every track moves at constant velocity. The candidate's
TTC to a track is their first footprint contact (`ttc_monitor.contact_times`, the monitor's
geometry: contacts that begin behind the ego are left out), and the candidate is charged its
largest shortfall over the tracks

    cost = w * max_n max(0, ttc_plan_n - TTC_n)

so with `ttc_plan` above the monitor's comfortable threshold the planner slows down for a
conflict before the monitor would override. `ttc_plan_n` is `ttc` for a vehicle the ego sees
and `ttc_shared` for one known only through sharing (a neighbour's message, or the shared
channel with none of its pixels seen): such a vehicle is hidden from the ego's sensors or
beyond them, so it is known before the ego could see it (paper section 5: what is shared
makes the ego anticipate), and a longer threshold turns that lead into braking that starts
earlier; for seen vehicles the threshold stays where car following needs it. planner.yaml
sets both equal: a longer one stalled merging traffic (docs/results.md).

A contact that begins behind the ego is the monitor's to leave alone, since braking cannot
avoid it, but not the planner's when its candidate makes it: a lane change into the path of
a faster car coming up in the next lane (a gap that is not accepted). So contacts from behind
are charged for the tracks with which holding the lane at the current speed has no contact.
Weight in reward units per second (config/planner.yaml, `conflict_*`).
"""
from dataclasses import dataclass
import math
from typing import Optional

from call_planner.route_cost import kinematic_rollout, RouteContext
from call_planner.route_path import finite_points, projections, ROUTE_JOIN
from call_planner.ttc_monitor import contact_times, MonitorConfig
from call_planner.turn_assist import TurnAssist
from call_vehicle.actions import ActionSet
from call_vehicle.vehicle_model import BicycleModel
import numpy as np


@dataclass(frozen=True)
class ConflictConfig:
    """Weight and horizon of the conflict cost (config/planner.yaml, `conflict_*`)."""

    weight: float = 2.0      # reward units per second of TTC below ttc; 0 = off
    ttc: float = 4.5         # [s] the planner's own TTC threshold
    horizon: float = 6.0     # [s] prediction of ego candidates and tracks
    ttc_shared: Optional[float] = None   # [s] threshold for vehicles known only through
    #                                      sharing; None: `ttc`
    on_route: bool = True    # continue each rollout along the route, not its last heading

    def __post_init__(self):
        """Fail fast on a negative weight or a threshold beyond the horizon."""
        if not (math.isfinite(self.weight) and self.weight >= 0.0):
            raise ValueError(f'conflict_weight must be >= 0, got {self.weight}')
        if not (0.0 < self.ttc <= self.horizon and math.isfinite(self.horizon)):
            raise ValueError(f'conflict_ttc must be in (0, conflict_horizon], got {self.ttc}')
        if self.ttc_shared is not None and not 0.0 < self.ttc_shared <= self.horizon:
            raise ValueError('conflict_ttc_shared must be in (0, conflict_horizon], got '
                             f'{self.ttc_shared}')

    @property
    def shared_threshold(self) -> float:
        """[s] the TTC threshold for a vehicle known only through sharing."""
        return self.ttc if self.ttc_shared is None else self.ttc_shared


class ConflictCost:
    """Charges each candidate's kinematic rollout its TTC shortfall to the tracked vehicles."""

    def __init__(self, config: ConflictConfig, geometry: MonitorConfig, actions: ActionSet,
                 bicycle: BicycleModel = BicycleModel(), bends: Optional[TurnAssist] = None):
        """
        Bind the weights, the footprint geometry (the monitor's) and the vehicle model.

        With `bends`, where that turn assist steers (a bend tighter than the action set
        turns) and predicts the ego along the route (`TurnAssist.predicted_path`), every
        candidate's path is the route: the assist, not the candidate's steer, takes the
        vehicle through it.
        """
        self.config = config
        self.geometry = geometry
        self.table = np.array([actions.action(i) for i in range(len(actions))])   # (A, 2)
        self.bicycle = bicycle
        self.bends = bends

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
        return self.track_ttc(candidates, context).min(-1, initial=math.inf)

    def track_ttc(self, candidates: np.ndarray, context: RouteContext) -> np.ndarray:
        """(B, N) TTC [s] of each candidate plan to each of the context's N tracks (`ttc`)."""
        candidates = np.asarray(candidates, dtype=np.int64)
        if not len(context.tracks):
            return np.full((len(candidates), 0), math.inf)
        crossing = crossing_indices(context.tracks, float(context.pose[2]))
        rows = np.flatnonzero(self.table[candidates[:, 0], 0] > 0.0) if len(crossing) \
            else np.zeros(0, np.int64)
        # one pass: the candidates, then the faster ones again at their current speed (each
        # (path, track) pair's contact is computed on its own, so the crossing tracks' columns
        # of the extra rows are what a pass over the crossing tracks alone would give)
        ttc = self._ttc(candidates, context, rows)                       # (B + F, N)
        if len(rows):
            capped = ttc[len(candidates):]
            ttc = ttc[:len(candidates)]
            ttc[np.ix_(rows, crossing)] = np.minimum(ttc[np.ix_(rows, crossing)],
                                                     capped[:, crossing])
        return ttc

    def _ttc(self, candidates: np.ndarray, context: RouteContext,
             capped: np.ndarray) -> np.ndarray:
        """
        (B + F, N) TTC per track with each candidate's first acceleration held.

        Rows B.. are the candidates `capped` (F indices) again with that acceleration at
        most 0 (`paths`).
        """
        ex, ey, eyaw, t = self.paths(candidates, context, capped)
        # gap acceptance: a contact from behind counts when the candidate's manoeuvre makes
        # it, i.e. when holding the lane at the current speed has none with that vehicle;
        # that path is tested with the candidates' (one more row)
        x0, y0, yaw0 = (float(v) for v in context.pose)
        v0 = max(float(context.speed), 0.0)
        ex = np.vstack([ex, x0 + v0 * t * math.cos(yaw0)])
        ey = np.vstack([ey, y0 + v0 * t * math.sin(yaw0)])
        eyaw = np.vstack([eyaw, np.full(len(t), yaw0)])
        first, ahead = contact_times(ex, ey, eyaw, context.tracks, t, 0.0, self.geometry)
        held, first, ahead = first[-1], first[:-1], ahead[:-1]                  # (N,), (B, N)
        first = np.where(ahead | (held == len(t)), first, len(t))                  # (B, N)
        return np.where(first < len(t), t[np.minimum(first, len(t) - 1)], math.inf)

    def paths(self, candidates: np.ndarray, context: RouteContext,
              capped: Optional[np.ndarray] = None) -> tuple:
        """
        Each candidate's predicted ego poses x, y, yaw (B, T) at the times t (T,).

        Path and speed apart, as planners decompose a trajectory: the path is the candidate's
        kinematic rollout, continued along the route from its end (`on_route`:
        `_continued_on_route`), or straight along its last heading without it or without a
        route; in a bend the turn assist drives, the route (`bends`); along it the ego moves
        with the first action's acceleration held (speed kept within [0, max_speed]), since
        while its kept plan conflicts the planner re-plans every step and can keep choosing it.
        `capped` (F,) row indices: F more rows (B + F, T), those candidates' paths with the
        acceleration held at most 0 (at the speed the ego has now, when it would speed up).
        """
        dt, bicycle = self.bicycle.dt, self.bicycle
        x, y, yaw, _ = kinematic_rollout(self.table, bicycle, candidates, context.pose,
                                         context.speed)                        # (B, K)
        batch = len(candidates)
        t = np.arange(0.0, self.config.horizon + 1e-9, dt)                      # (T,)
        x0, y0, yaw0 = (float(v) for v in context.pose)
        v0 = max(float(context.speed), 0.0)
        accel = self.table[candidates[:, 0], 0]                                 # (B,)
        if capped is not None and len(capped):
            accel = np.concatenate([accel, np.minimum(accel[capped], 0.0)])
        limit = np.where(accel < 0, 0.0, bicycle.max_speed)
        reach = np.where(accel != 0, (limit - v0) / np.where(accel != 0, accel, 1.0), np.inf)
        run = np.minimum(t[None, :], np.maximum(reach, 0.0)[:, None])           # (B, T)
        travelled = v0 * run + 0.5 * accel[:, None] * run ** 2 \
            + np.where(accel[:, None] > 0, bicycle.max_speed, 0.0) * (t[None, :] - run) \
            * (accel[:, None] > 0)
        far = v0 * t[-1] + bicycle.max_speed * t[-1] + 1.0        # beyond any travel
        along = None if self.bends is None else self.bends.predicted_path(
            context.pose, v0, context.route, far)
        if along is not None:
            px, py, heading = (np.broadcast_to(v, (batch, len(v))) for v in along)
        elif self.config.on_route and len(route := finite_points(context.route)) >= 2:
            px, py, heading = _continued_on_route(x, y, yaw, context.pose, route, far)
        else:
            px = np.concatenate([np.full((batch, 1), x0), x,
                                 x[:, -1:] + far * np.cos(yaw[:, -1:])], 1)     # (B, K+2)
            py = np.concatenate([np.full((batch, 1), y0), y,
                                 y[:, -1:] + far * np.sin(yaw[:, -1:])], 1)
            heading = np.concatenate([np.full((batch, 1), yaw0), yaw, yaw[:, -1:]], 1)
        arc = np.concatenate([np.zeros((batch, 1)),
                              np.cumsum(np.hypot(np.diff(px), np.diff(py)), 1)], 1)
        if len(accel) > batch:      # the capped rows follow their candidates' polylines
            again = np.concatenate([np.arange(batch), capped])
            px, py, heading, arc = px[again], py[again], heading[again], arc[again]
        # each row's polyline at its travelled distances (np.interp of every row at once)
        segment = np.clip((arc[:, None, :] <= travelled[:, :, None]).sum(-1), 1,
                          arc.shape[1] - 1)                                    # (B, T)
        row = np.arange(len(arc))[:, None]
        start, end = segment - 1, segment
        a0 = arc[row, start]
        length = arc[row, end] - a0
        u = np.where(length > 0.0, (travelled - a0) / np.where(length > 0.0, length, 1.0), 0.0)
        u = np.clip(u, 0.0, 1.0)
        x0s, y0s = px[row, start], py[row, start]
        ex = x0s + u * (px[row, end] - x0s)
        ey = y0s + u * (py[row, end] - y0s)
        eyaw = heading[row, segment]
        return ex, ey, eyaw, t

    def cost(self, candidates: np.ndarray, context: RouteContext) -> np.ndarray:
        """
        (B,) cost of B candidate plans (B, K) of action indices; 0 without tracks.

        The largest shortfall over the tracks, each below its own threshold: `ttc`, or
        `ttc_shared` for a vehicle known only through sharing (its message or the shared
        channel; none of its pixels seen).
        """
        ttc = self.track_ttc(candidates, context)                                # (B, N)
        cfg = self.config
        threshold = np.array([cfg.shared_threshold if k.shared_only else cfg.ttc
                              for k in context.tracks])
        shortfall = np.maximum(threshold - ttc, 0.0).max(-1, initial=0.0)
        return cfg.weight * shortfall


def _continued_on_route(x: np.ndarray, y: np.ndarray, yaw: np.ndarray, pose: tuple,
                        route: np.ndarray, far: float) -> tuple:
    """
    Return polylines x, y, heading (B, M): each rollout (B, K), then the route from its end.

    After its K actions the planner re-plans, and the route cost keeps it on its route: the
    route is where the ego will drive, not the rollout's last heading held for the whole
    horizon, which leaves the road. Each rollout's end joins the route at its first vertex
    `ROUTE_JOIN` metres or more past the end's projection on it (about where the turn
    assist's pursuit aims), and the path runs on `far` metres along the route's last
    segment. Rows end in repeats of their last vertex (zero-length segments) to a common
    length.
    """
    batch, k = x.shape
    x0, y0, yaw0 = (float(v) for v in pose)
    length = np.hypot(*np.diff(route, axis=0).T)                               # (S,)
    arc = np.concatenate([[0.0], np.cumsum(length)])                           # (S + 1,)
    nearest, u = projections(route, np.stack([x[:, -1], y[:, -1]], 1))         # (B,), (B,)
    along = arc[nearest] + u * length[nearest]
    join = np.searchsorted(arc, along + ROUTE_JOIN)                            # (B,)
    last = len(route) - 1
    pick = np.minimum(join[:, None] + np.arange(len(route))[None], last)       # (B, M)
    past = (join > last)[:, None]      # no route vertex left ahead: on along the last heading
    direction = np.where(past[:, 0], yaw[:, -1],
                         math.atan2(*(route[-1] - route[-2])[::-1]))            # (B,)
    tail_x = np.where(past, x[:, -1:], route[pick, 0])
    tail_y = np.where(past, y[:, -1:], route[pick, 1])
    px = np.concatenate([np.full((batch, 1), x0), x, tail_x,
                         tail_x[:, -1:] + far * np.cos(direction)[:, None]], 1)
    py = np.concatenate([np.full((batch, 1), y0), y, tail_y,
                         tail_y[:, -1:] + far * np.sin(direction)[:, None]], 1)
    # each vertex's heading: the direction it is reached in; a repeated vertex keeps the
    # heading of the last one that moved (the rollout's end heading before any)
    dx, dy = np.diff(px[:, k:]), np.diff(py[:, k:])                            # (B, M + 1)
    step = np.concatenate([yaw[:, -1:], np.arctan2(dy, dx)], 1)
    moved = np.concatenate([np.ones((batch, 1), bool), np.hypot(dx, dy) > 1e-9], 1)
    carried = np.maximum.accumulate(np.where(moved, np.arange(step.shape[1]), 0), 1)
    heading = np.concatenate([np.full((batch, 1), yaw0), yaw,
                              np.take_along_axis(step, carried, 1)[:, 1:]], 1)
    return px, py, heading


def crossing_indices(tracks, yaw: float) -> np.ndarray:
    """Return the indices of the tracks heading across `yaw`: 45 to 135 degrees to it."""
    return np.array([i for i, k in enumerate(tracks)
                     if math.pi / 4 < abs(math.remainder(k.yaw - yaw, math.tau))
                     < 3 * math.pi / 4], np.int64)


def conflict_cost_or_none(config: ConflictConfig, geometry: MonitorConfig, actions: ActionSet,
                          bicycle: BicycleModel = BicycleModel(),
                          bends: Optional[TurnAssist] = None) -> Optional[ConflictCost]:
    """Return a ConflictCost, or None when its weight is 0 (the look-ahead without it)."""
    if config.weight == 0.0:
        return None
    return ConflictCost(config, geometry, actions, bicycle, bends)

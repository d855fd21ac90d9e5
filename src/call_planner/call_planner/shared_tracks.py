"""
Accepted neighbours as tracks: what a CALL message states about its sender, used as it is.

A CALL message carries the sender's state and intention (paper section 3.2, App. F: pose,
speed and planned waypoints next to the latent), so for a neighbour the ego knows position,
heading and speed at once, also outside its BEV, without the frames a BEV tracker needs to
estimate a velocity. The safety monitor and the look-ahead's conflict cost take these as
tracks in place of their blobs in the fused BEV (`ttc_monitor.TtcMonitor.share`); nothing
beyond what the message already carries is used (no object lists on the wire).

How a neighbour is predicted depends on `shared_turn_time`:

- 0: at constant velocity, as the BEV tracks are, along the direction of its declared path
  when it has one a few metres long (a turning sender points where it plans to go), else
  along its yaw;
- above 0: from its yaw, turning as its declared path turns (the path's mean curvature times
  its speed) for `shared_turn_time` seconds from the message's stamp, then straight; and, as a
  second hypothesis, straight on along its yaw (`ttc_monitor.contact_times` takes the earlier
  contact of the two). A path of K = 5 steps is 0.5 s (paper Table 5): its chord barely turns
  at the start of a lane change or a turn, so the chord's straight line meets the ego's lane
  seconds after the sender does. The turn held for a while is the constant-turn-rate model of
  tracking, cut short because a lane change turns back; the straight hypothesis keeps a
  leader whose plan steers a little in the ego's lane.

With `shared_decel`, a sender whose declared path brakes (its steps shorten: a plan, or the
safety monitor's override, that slows it) is predicted slowing at that rate until it stands
(`declared_braking`), not holding its stated speed: a crossing neighbour that brakes for the
ego is then predicted to stop in its way, and not to clear it at the speed it had. Without
`shared_decel_to_stop` it brakes only as long as its declared path does (K steps, unless the
path stands), then holds the speed reached: the path says nothing beyond its end.

Its position is moved on by the message's age along that prediction (the state is one or two
steps old when the ego plans). The footprint is the ego's: CALL vehicles share one vehicle
model (call_sim vehicle.yaml).

Bad input is dropped and counted, never raised: a non-finite field, or a message older than
`max_age` (a neighbour no longer heard is not kept moving on a guess).
"""
from dataclasses import dataclass, replace
import math
from typing import Iterable

from call_planner.ttc_monitor import MonitorConfig, predicted_motion, Track
from call_vehicle.vehicle_model import BicycleModel
import numpy as np

#: path chord used for the heading [m]: shorter than a vehicle it is noise
MIN_CHORD = 2.0
#: path length used for the curvature [m]; the waypoints are an exact bicycle-model rollout
#: (call_vehicle.intention), so a short path turns as the vehicle does
MIN_ARC = 0.5
#: [s] the declared path's step: the bicycle model's (call_vehicle.intention)
PATH_STEP = BicycleModel().dt
#: [m/s] a path whose first step's speed is this far from the stated speed was planned from
#: another state (an intention is renewed only with its plan): its braking is not used
FRESH_SPEED = 1.0
#: [m] ... and so was one that begins farther than this beyond one step from the stated pose
FRESH_GAP = 1.0


@dataclass(frozen=True)
class SharedState:
    """One accepted neighbour's message fields: map-frame pose, speed, stamp, intention."""

    x: float
    y: float
    yaw: float
    speed: float               # [m/s] longitudinal, as sent
    stamp: float               # [s] simulation time of the sender's state
    waypoints: np.ndarray      # (P, 2) declared plan, map frame; (0, 2) before the first


def shared_tracks(states: Iterable[SharedState], time: float,
                  config: MonitorConfig) -> tuple[tuple[Track, ...], int]:
    """
    Tracks of the neighbours at `time` [s], and how many messages were dropped.

    Called the same way by the planner node (from SharedInformation) and the fleet core.
    """
    tracks, dropped = [], 0
    for s in states:
        fields = (s.x, s.y, s.yaw, s.speed, s.stamp)
        age = time - s.stamp
        if not all(math.isfinite(float(v)) for v in fields) \
                or not -1e-6 <= age <= config.shared_max_age:
            dropped += 1
            continue
        speed, age = max(float(s.speed), 0.0), max(age, 0.0)
        if config.shared_turn_time:
            heading = float(s.yaw)
            rate, turn = path_curvature(s.waypoints) * speed, config.shared_turn_time
        else:
            heading = path_heading(s.x, s.y, s.waypoints, s.yaw)
            rate, turn = 0.0, 0.0
        decel, lasts = declared_braking(s.x, s.y, speed, s.waypoints) \
            if config.shared_decel else (0.0, math.inf)
        if config.shared_decel_to_stop:
            lasts = math.inf
        sent = Track(float(s.x), float(s.y), heading, config.ego_length, config.ego_width,
                     speed * math.cos(heading), speed * math.sin(heading), True, age, rate,
                     turn, decel, lasts)
        x, y, yaw, vx, vy = (float(a[0, 0]) for a in predicted_motion((sent,), np.array([age])))
        tracks.append(replace(sent, x=x, y=y, yaw=yaw, vx=vx, vy=vy,
                              turn_time=max(turn - age, 0.0), decel_time=max(lasts - age, 0.0)))
    return tuple(tracks), dropped


def declared_braking(x: float, y: float, speed: float,
                     waypoints: np.ndarray) -> tuple[float, float]:
    """
    Deceleration [m/s^2] of the declared path (0 if it does not slow), and for how long [s].

    The path's points are `PATH_STEP` apart: its steps' lengths are its speeds. It must be
    the plan of now or of the step before, the one a message carries next to its state: its
    first point within one step (and `FRESH_GAP`) of (x, y), and its first step at the
    stated `speed` (within `FRESH_SPEED`). An older plan says nothing about the braking
    now. A path that stands before its end counts the time it took to stop, and brakes
    until it stands (inf); one still moving at its end brakes over its length.
    """
    points = np.asarray(waypoints, dtype=np.float64).reshape(-1, 2)
    if len(points) < 3 or not np.isfinite(points).all() or not math.isfinite(speed):
        return 0.0, math.inf
    steps = np.diff(points, axis=0)
    speeds = np.hypot(steps[:, 0], steps[:, 1]) / PATH_STEP
    gap = math.hypot(points[0, 0] - float(x), points[0, 1] - float(y))
    if abs(speeds[0] - speed) > FRESH_SPEED or gap > speed * PATH_STEP + FRESH_GAP:
        return 0.0, math.inf
    moving = np.nonzero(speeds > 1e-3)[0]
    last = min(int(moving[-1]) + 1 if len(moving) else 1, len(speeds) - 1)
    decel = max(float(speeds[0] - speeds[last]) / (last * PATH_STEP), 0.0)
    return decel, (math.inf if speeds[last] <= 1e-3 else last * PATH_STEP)


def path_curvature(waypoints: np.ndarray) -> float:
    """
    Mean curvature [1/m] of the declared path: its turn over its length, left positive.

    The turn is from the direction of its first step to that of its last, the length between
    those steps' midpoints; 0 for fewer than three points, a step too short to have a
    direction, or a path shorter than `MIN_ARC` (a standing or stopping sender).
    """
    points = np.asarray(waypoints, dtype=np.float64).reshape(-1, 2)
    if len(points) < 3 or not np.isfinite(points).all():
        return 0.0
    steps = np.diff(points, axis=0)
    lengths = np.hypot(steps[:, 0], steps[:, 1])
    arc = lengths.sum() - 0.5 * (lengths[0] + lengths[-1])
    if lengths.min() < 1e-3 or arc < MIN_ARC:
        return 0.0
    headings = np.arctan2(steps[:, 1], steps[:, 0])
    turn = np.remainder(np.diff(headings) + np.pi, 2.0 * np.pi) - np.pi
    return float(turn.sum() / arc)


def path_heading(x: float, y: float, waypoints: np.ndarray, yaw: float) -> float:
    """Direction from (x, y) to the farthest declared waypoint, or `yaw` without a path."""
    points = np.asarray(waypoints, dtype=np.float64).reshape(-1, 2)
    if not len(points) or not np.isfinite(points).all():
        return float(yaw)
    dx, dy = points[-1, 0] - x, points[-1, 1] - y
    if math.hypot(dx, dy) < MIN_CHORD:
        return float(yaw)
    return math.atan2(dy, dx)

"""
Accepted neighbours as tracks: what a CALL message states about its sender, used as it is.

A CALL message carries the sender's state and intention (paper section 3.2, App. F: pose,
speed and planned waypoints next to the latent), so for a neighbour the ego knows position,
heading and speed at once, also outside its BEV, without the frames a BEV tracker needs to
estimate a velocity. The safety monitor and the look-ahead's conflict cost take these as
tracks in place of their blobs in the fused BEV (`ttc_monitor.TtcMonitor.share`); nothing
beyond what the message already carries is used (no object lists on the wire).

Each neighbour is predicted at constant velocity along its heading, as the BEV tracks are. Its
position is moved on by the message's age (the state is one or two steps old when the ego
plans). The heading is the direction of the sender's declared path when it has one a few
metres long (a turning sender points where it plans to go), else its yaw. The footprint is
the ego's: CALL vehicles share one vehicle model (call_sim vehicle.yaml).

Bad input is dropped and counted, never raised: a non-finite field, or a message older than
`max_age` (a neighbour no longer heard is not kept moving on a guess).
"""
from dataclasses import dataclass
import math
from typing import Iterable

from call_planner.ttc_monitor import MonitorConfig, Track
import numpy as np

#: path chord used for the heading [m]: shorter than a vehicle it is noise
MIN_CHORD = 2.0


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
        heading = path_heading(s.x, s.y, s.waypoints, s.yaw)
        speed = max(float(s.speed), 0.0)
        vx, vy = speed * math.cos(heading), speed * math.sin(heading)
        age = max(age, 0.0)
        tracks.append(Track(float(s.x) + vx * age, float(s.y) + vy * age, heading,
                            config.ego_length, config.ego_width, vx, vy, True, age))
    return tuple(tracks), dropped


def path_heading(x: float, y: float, waypoints: np.ndarray, yaw: float) -> float:
    """Direction from (x, y) to the farthest declared waypoint, or `yaw` without a path."""
    points = np.asarray(waypoints, dtype=np.float64).reshape(-1, 2)
    if not len(points) or not np.isfinite(points).all():
        return float(yaw)
    dx, dy = points[-1, 0] - x, points[-1, 1] - y
    if math.hypot(dx, dy) < MIN_CHORD:
        return float(yaw)
    return math.atan2(dy, dx)

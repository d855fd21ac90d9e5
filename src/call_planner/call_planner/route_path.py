"""
The ego's path along its route: where a vehicle the turn assist steers will drive.

Where the route bends more tightly than the action set turns, the turn assist (pure pursuit)
takes the vehicle along the route, not along a candidate's steer or the yaw rate it has now:
a vehicle half way through a turn, its heading's tangent (or a constant turn rate held for
seconds) pointing across the lanes it turns into or out of the road, would otherwise be
predicted into vehicles it will never reach. Predictions of where the ego will be (the
conflict cost's paths, the TTC monitor's) then follow this path instead.
"""
import math
from typing import Any

import numpy as np

#: [m] the path joins the route this far past the ego's projection on it (about where the
#: turn assist's pursuit aims at low speed)
ROUTE_JOIN = 3.0


def resample(line: np.ndarray, step: float) -> tuple:
    """Points every `step` m along a polyline (its end kept), and their arc lengths."""
    seg = np.hypot(*np.diff(line, axis=0).T)
    keep = np.concatenate([[True], seg > 1e-6])
    line = line[keep]
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(line, axis=0).T))])
    if arc[-1] <= 0.0:
        return line[:1], arc[:1]
    s = np.append(np.arange(0.0, arc[-1], step), arc[-1])
    return np.stack([np.interp(s, arc, line[:, 0]), np.interp(s, arc, line[:, 1])], 1), s


def finite_points(route: Any) -> np.ndarray:
    """Return the route's waypoints (M, 2) without the rows that are not finite."""
    route = np.asarray(route, dtype=np.float64).reshape(-1, 2)
    return route[np.isfinite(route).all(1)]


def projections(route: np.ndarray, points: np.ndarray) -> tuple:
    """
    Return where points (P, 2) project on the route (M >= 2): segment indices i, fractions t.

    i (P,) is each point's nearest segment, t (P,) in [0, 1] how far along it.
    """
    a, ab = route[:-1], np.diff(route, axis=0)                                 # (S, 2)
    rel = np.asarray(points, dtype=np.float64).reshape(-1, 1, 2) - a            # (P, S, 2)
    t = np.clip((rel * ab).sum(-1) / np.maximum((ab ** 2).sum(-1), 1e-12), 0.0, 1.0)
    off = rel - t[..., None] * ab
    i = np.argmin(np.hypot(off[..., 0], off[..., 1]), 1)
    return i, t[np.arange(len(i)), i]


def _projection(route: np.ndarray, point: tuple) -> tuple:
    """Return the segment index i and fraction t in [0, 1] of one point's projection."""
    i, t = projections(route, point)
    return int(i[0]), float(t[0])


def route_from(route: np.ndarray, point: tuple) -> np.ndarray:
    """
    Cut the route (M, 2) at the point's projection on it.

    The waypoint window starts where the simulator last re-planned, so its first points may
    lie behind the vehicle.
    """
    if len(route) < 2:
        return np.vstack([point, route])
    i, t = _projection(route, point)
    if i == 0 and t == 0.0:
        return np.vstack([point, route])        # behind the window's start
    return np.vstack([route[i] + t * (route[i + 1] - route[i]), route[i + 1:]])


def route_ahead(route: np.ndarray, point: tuple) -> tuple:
    """
    Return the route's own vertices from the point's segment on, and the point's offset [m].

    The vertices start at the segment the point projects on; the offset is how far along
    them the projection lies. This is what a bend test reads (`route_cost.route_curvature`):
    a cut at the point would add a short first step whose direction is off the lane's by
    the point's lateral offset, or whose length halves the next turn's arc, and either
    reads as a bend on a straight road.
    """
    if len(route) < 2:
        return route, 0.0
    i, t = _projection(route, point)
    return route[i:], t * float(np.hypot(*(route[i + 1] - route[i])))


def route_path(pose: tuple, route: np.ndarray, far: float) -> tuple:
    """
    Return the ego's path along its route: vertices x, y (M,) and their headings.

    The path runs from the ego to the route point `ROUTE_JOIN` metres past the ego's
    projection on it (about where the turn assist's pursuit aims), then along the route,
    continued `far` metres along its last segment. Each vertex's heading is the direction it
    is reached in (the ego's yaw at the first).
    """
    x0, y0, yaw0 = (float(v) for v in pose)
    ahead, arc = resample(route_from(route, (x0, y0)), 0.5)
    points = np.vstack([[x0, y0], ahead[arc >= min(ROUTE_JOIN, arc[-1])]])
    steps = np.diff(points, axis=0)
    points = np.vstack([points[:1], points[1:][np.hypot(steps[:, 0], steps[:, 1]) > 1e-6]])
    if len(points) < 2:
        points = np.vstack([points, [x0 + math.cos(yaw0), y0 + math.sin(yaw0)]])
    steps = np.diff(points, axis=0)
    heading = np.concatenate([[yaw0], np.arctan2(steps[:, 1], steps[:, 0])])
    last = float(heading[-1])
    x = np.append(points[:, 0], points[-1, 0] + far * math.cos(last))
    y = np.append(points[:, 1], points[-1, 1] + far * math.sin(last))
    return x, y, np.append(heading, last)


def poses_along(x: np.ndarray, y: np.ndarray, heading: np.ndarray, distance: np.ndarray
                ) -> tuple:
    """
    Poses at `distance` (T,) [m] along a path of vertices x, y, heading (M,): ex, ey, eyaw.

    Each pose's heading is that of the segment it lies on (the vertex it leads to).
    """
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
    d = np.clip(np.asarray(distance, dtype=np.float64), 0.0, arc[-1])
    segment = np.clip(np.searchsorted(arc, d, side='right'), 1, len(arc) - 1)
    return np.interp(d, arc, x), np.interp(d, arc, y), heading[segment]

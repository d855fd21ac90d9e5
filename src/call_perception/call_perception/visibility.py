"""
Partial observability: which vehicles the ego's own sensors could see.

A vehicle is seen when at least one of its sample points (four corners and centre) lies within
the sensor range and the straight segment from the ego's centre to that point crosses no other
vehicle's box. A car behind a truck therefore disappears while a car whose corner peeks out
beside the truck stays visible. All segment/box tests run as one vectorised slab test.
"""
from typing import Any, Sequence

from call_perception.bev_raster import corners_from_array
import numpy as np

# [m] boxes are shrunk by this for occlusion: a ray grazing a corner does not hide anything
MIN_BLOCKED_LENGTH = 0.05


def _boxes_array(boxes: Sequence[Any]) -> np.ndarray:
    """(N, 5) array of x, y, yaw, length, width."""
    if len(boxes) == 0:
        return np.zeros((0, 5))
    return np.array([(b.x, b.y, b.yaw, b.length, b.width) for b in boxes], dtype=np.float64)


def visible(ego: Any, others: Sequence[Any], sensor_range: float, occlusion: bool = True,
            full_observation: bool = False) -> np.ndarray:
    """
    Bool mask over others: True where the ego itself observes that vehicle.

    full_observation is the paper's baseline (every vehicle visible); occlusion=False keeps
    the range limit but ignores line of sight. Boxes with non-finite values are never seen.
    """
    arr = _boxes_array(others)
    finite = np.all(np.isfinite(arr), axis=1)
    if full_observation or len(arr) == 0:
        return finite
    ego_xy = np.array([ego.x, ego.y], dtype=np.float64)
    if not np.all(np.isfinite(ego_xy)):
        return np.zeros(len(arr), dtype=bool)
    arr = np.where(finite[:, None], arr, 0.0)
    # sample points: (N, 5, 2) corners + centre
    points = np.concatenate([corners_from_array(arr), arr[:, None, :2]], axis=1)
    dist2 = np.sum((points - ego_xy) ** 2, axis=2)
    in_range = (dist2 <= sensor_range * sensor_range) & finite[:, None]
    if not occlusion:
        return in_range.any(axis=1)
    targets = np.flatnonzero(in_range.any(axis=1))
    if len(targets) == 0:
        return np.zeros(len(arr), dtype=bool)
    # occluders must be nearer than the farthest in-range target point
    reach = sensor_range + 0.5 * np.hypot(arr[:, 3], arr[:, 4])
    centre_dist = np.hypot(arr[:, 0] - ego_xy[0], arr[:, 1] - ego_xy[1])
    occluders = np.flatnonzero(finite & (centre_dist <= reach))
    point_visible = in_range[targets] & ~_blocked(ego_xy, points[targets], targets,
                                                  arr[occluders], occluders)
    result = np.zeros(len(arr), dtype=bool)
    result[targets] = point_visible.any(axis=1)
    return result


def _blocked(origin: np.ndarray, points: np.ndarray, owners: np.ndarray, boxes: np.ndarray,
             box_ids: np.ndarray) -> np.ndarray:
    """
    (T, P) True where the segment origin -> point crosses a box other than its owner's.

    Separating-axis test of every (segment, box) pair at once (float32; centimetre accuracy
    is plenty): they overlap unless the box's length axis, its width axis or the segment's
    normal separates them. Boxes are shrunk by MIN_BLOCKED_LENGTH so a ray grazing a corner
    or an edge is not blocked.
    """
    t, p = points.shape[:2]
    rel_p = (points.reshape(-1, 2) - origin).astype(np.float32)  # segments (T*P, 2)
    rel_c = boxes[:, :2] - origin  # box centres seen from the sensor (K, 2)
    cos, sin = np.cos(boxes[:, 2]), np.sin(boxes[:, 2])
    half_l = np.maximum(boxes[:, 3] / 2.0 - MIN_BLOCKED_LENGTH, 0.0)
    half_w = np.maximum(boxes[:, 4] / 2.0 - MIN_BLOCKED_LENGTH, 0.0)
    # sensor position in each box frame; a box the sensor sits in (a collision) hides nothing
    ou = -(rel_c[:, 0] * cos + rel_c[:, 1] * sin)
    ov = rel_c[:, 0] * sin - rel_c[:, 1] * cos
    usable = (np.abs(ou) >= half_l) | (np.abs(ov) >= half_w)
    f32 = np.float32
    # all (segment, box) arrays are (T*P, K) float32 worked in place: allocation dominates
    du = rel_p @ np.stack([cos, sin]).astype(f32)  # segment extent along the box length
    dv = rel_p @ np.stack([-sin, cos]).astype(f32)  # ... along the box width
    cross = rel_p @ np.stack([rel_c[:, 1], -rel_c[:, 0]]).astype(f32)  # normal . centre
    abs_du, abs_dv = np.abs(du), np.abs(dv)
    # interval [ou, ou + du] overlaps (-half_l, half_l) <=> |2 ou + du| - |du| < 2 half_l
    du += (2.0 * ou).astype(f32)
    np.abs(du, out=du)
    du -= abs_du
    hit = du < (2.0 * half_l).astype(f32)
    dv += (2.0 * ov).astype(f32)
    np.abs(dv, out=dv)
    dv -= abs_dv
    hit &= dv < (2.0 * half_w).astype(f32)
    # the segment's normal separates them unless |n . c| < half_l |n . u| + half_w |n . v|
    np.abs(cross, out=cross)
    abs_dv *= half_l.astype(f32)
    abs_du *= half_w.astype(f32)
    abs_du += abs_dv
    hit &= cross < abs_du
    hit &= usable
    # a vehicle does not hide itself
    column = np.searchsorted(box_ids, owners)
    own = column < len(box_ids)
    own[own] = box_ids[column[own]] == owners[own]
    rows = np.arange(t * p).reshape(t, p)[own].ravel()
    hit[rows, np.repeat(column[own], p)] = False
    return hit.any(axis=1).reshape(t, p)

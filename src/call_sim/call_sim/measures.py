"""
Per-step safety/comfort measures: oriented-box collision, time to collision, jerk.

Vehicles are given as arrays with one row per vehicle: x, y, yaw, speed, length, width
(map frame, (x, y) = box centre). Everything is vectorised over the other vehicles.
"""
import math

import numpy as np

X, Y, YAW, SPEED, LENGTH, WIDTH = range(6)


def box_corners(x: float, y: float, yaw: float, length: float, width: float) -> np.ndarray:
    """(4, 2) corners of an oriented box, counter-clockwise."""
    c, s = math.cos(yaw), math.sin(yaw)
    half = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]]) * (0.5 * length, 0.5 * width)
    return half @ np.array([[c, s], [-s, c]]) + (x, y)


def boxes_overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Separating-axis test of two oriented boxes given as rows (x, y, yaw, _, length, width)."""
    corners_a = box_corners(a[X], a[Y], a[YAW], a[LENGTH], a[WIDTH])
    corners_b = box_corners(b[X], b[Y], b[YAW], b[LENGTH], b[WIDTH])
    for yaw in (a[YAW], b[YAW]):
        for axis in ((math.cos(yaw), math.sin(yaw)), (-math.sin(yaw), math.cos(yaw))):
            pa, pb = corners_a @ axis, corners_b @ axis
            if pa.max() < pb.min() or pb.max() < pa.min():
                return False
    return True


def collisions(ego: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Return the indices of the rows of `others` whose box overlaps the ego's box."""
    return collision_lists(ego[None, :], others, np.array([-1]))[0]


def collision_lists(egos: np.ndarray, rows: np.ndarray, self_index: np.ndarray
                    ) -> list[np.ndarray]:
    """
    Per ego (H, 6): indices into `rows` (N, 6) of overlapping boxes, skipping itself.

    A cheap circumscribed-circle test selects the few pairs that get the separating-axis test.
    """
    if len(rows) == 0:
        return [np.zeros(0, dtype=int) for _ in egos]
    dist = np.hypot(rows[None, :, X] - egos[:, None, X], rows[None, :, Y] - egos[:, None, Y])
    reach = 0.5 * (np.hypot(egos[:, LENGTH], egos[:, WIDTH])[:, None]
                   + np.hypot(rows[:, LENGTH], rows[:, WIDTH])[None, :])
    near = dist <= reach
    valid = self_index >= 0
    near[np.flatnonzero(valid), self_index[valid]] = False
    return [np.array([j for j in np.flatnonzero(near[h]) if boxes_overlap(egos[h], rows[j])],
                     dtype=int) for h in range(len(egos))]


def time_to_collision(ego: np.ndarray, others: np.ndarray,
                      lateral_margin: float = 0.5) -> tuple[float, float]:
    """
    (TTC in s to the nearest conflicting vehicle, bumper gap in m to the leader ahead).

    In the ego frame, another vehicle at (dx, dy) with relative velocity (dvx, dvy) conflicts
    when |dy| < (w_ego + w_other) / 2 + lateral_margin. Its bumper gap is
    |dx| - (l_ego + l_other) / 2 and its closing speed -dvx (ahead) or dvx (behind);
    TTC = gap / closing speed when closing (0 when the boxes already touch), else inf.
    """
    ttc, gap = ttc_matrix(ego[None, :], others, np.array([-1]), lateral_margin)
    return float(ttc[0]), float(gap[0])


def ttc_matrix(egos: np.ndarray, rows: np.ndarray, self_index: np.ndarray,
               lateral_margin: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """`time_to_collision` for H egos at once against N rows; row self_index[h] is the ego."""
    ttc, gap, _ = ttc_partners(egos, rows, self_index, lateral_margin)
    return ttc, gap


def ttc_partners(egos: np.ndarray, rows: np.ndarray, self_index: np.ndarray,
                 lateral_margin: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    `ttc_matrix` plus, per ego, the row its TTC is with (-1 when the TTC is inf).

    The partner lets a metric ask whether the ego's own sensors saw the vehicle of a conflict.
    """
    if len(rows) == 0:
        return (np.full(len(egos), math.inf), np.full(len(egos), math.inf),
                np.full(len(egos), -1, dtype=int))
    c, s = np.cos(egos[:, YAW])[:, None], np.sin(egos[:, YAW])[:, None]
    rel_x, rel_y = rows[None, :, X] - egos[:, None, X], rows[None, :, Y] - egos[:, None, Y]
    dx, dy = c * rel_x + s * rel_y, -s * rel_x + c * rel_y
    speed_e = egos[:, SPEED][:, None]
    vel_x = rows[None, :, SPEED] * np.cos(rows[None, :, YAW]) - speed_e * c
    vel_y = rows[None, :, SPEED] * np.sin(rows[None, :, YAW]) - speed_e * s
    dvx = c * vel_x + s * vel_y
    conflict = np.abs(dy) < 0.5 * (egos[:, WIDTH][:, None] + rows[None, :, WIDTH]) + lateral_margin
    valid = self_index >= 0
    conflict[np.flatnonzero(valid), self_index[valid]] = False
    gap = np.maximum(np.abs(dx) - 0.5 * (egos[:, LENGTH][:, None] + rows[None, :, LENGTH]), 0.0)
    closing = np.where(dx >= 0.0, -dvx, dvx)
    ttc = np.full(gap.shape, math.inf)
    approaching = conflict & (closing > 0.0)
    ttc[approaching] = gap[approaching] / closing[approaching]
    ttc[conflict & (gap <= 0.0)] = 0.0
    ahead_gap = np.where(conflict & (dx >= 0.0), gap, math.inf)
    nearest = ttc.argmin(axis=1)
    best = ttc[np.arange(len(egos)), nearest]
    return best, ahead_gap.min(axis=1), np.where(np.isfinite(best), nearest, -1)


def jerk(accel: float, previous_accel: float, dt: float) -> float:
    """Rate of change of acceleration in m/s^3, by finite difference of two steps."""
    return (accel - previous_accel) / dt

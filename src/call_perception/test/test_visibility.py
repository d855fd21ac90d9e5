"""Partial observability: sensor range and line-of-sight occlusion by other vehicles."""
import math
from types import SimpleNamespace

from call_perception.bev_raster import corners_from_array
from call_perception.visibility import MIN_BLOCKED_LENGTH, visible
import numpy as np


def box(x, y, yaw=0.0, length=4.6, width=2.0):
    return SimpleNamespace(x=x, y=y, yaw=yaw, length=length, width=width)


EGO = box(0.0, 0.0)
TRUCK = box(12.0, 0.0, length=12.0, width=2.6)


def test_car_behind_a_truck_is_hidden_and_a_car_beside_it_is_seen():
    behind = box(26.0, 0.0)
    beside = box(14.0, 3.5)
    result = visible(EGO, [TRUCK, behind, beside], sensor_range=32.0)
    assert result.tolist() == [True, False, True]


def test_occlusion_off_and_full_observation():
    behind = box(26.0, 0.0)
    far = box(60.0, 0.0)
    assert visible(EGO, [TRUCK, behind, far], 32.0, occlusion=False).tolist() == [
        True, True, False]
    assert visible(EGO, [TRUCK, behind, far], 32.0, full_observation=True).all()


def test_sensor_range_counts_the_nearest_corner():
    # centre at 33 m but the rear corners at 30.7 m: inside a 32 m range
    assert visible(EGO, [box(33.0, 0.0)], 32.0).tolist() == [True]
    assert visible(EGO, [box(35.0, 0.0)], 32.0).tolist() == [False]


def test_a_corner_peeking_out_keeps_a_car_visible():
    # the truck's shadow spans +-12.2 deg; of the car's corners and centre only the near
    # right corner (23.7, -5.8), at -13.8 deg, lies outside it
    peeking = box(26.0, -4.8)
    assert visible(EGO, [TRUCK, peeking], 32.0).tolist() == [True, True]
    assert visible(EGO, [TRUCK, box(26.0, -3.0)], 32.0).tolist() == [True, False]


def test_rotated_ego_does_not_matter_only_positions():
    ego = box(0.0, 0.0, yaw=2.0)  # sensing is all-round; heading is irrelevant
    assert visible(ego, [TRUCK, box(26.0, 0.0)], 32.0).tolist() == [True, False]


def test_empty_non_finite_and_collision_cases():
    assert visible(EGO, [], 32.0).shape == (0,)
    assert visible(EGO, [box(float('nan'), 0.0), box(5.0, 0.0)], 32.0).tolist() == [False, True]
    assert not visible(box(float('nan'), 0.0), [box(5.0, 0.0)], 32.0).any()
    # a box overlapping the ego (a collision) does not blind the ego
    assert visible(EGO, [box(1.0, 0.5), box(15.0, 0.0)], 32.0).tolist() == [True, True]


def _segment_crosses(origin, point, corners):
    """Clip the segment against the (shrunk) box with Liang-Barsky: the reference test."""
    centre = corners.mean(axis=0)
    u = corners[0] - corners[3]
    v = corners[0] - corners[1]
    half = np.array([np.linalg.norm(u) / 2, np.linalg.norm(v) / 2]) - MIN_BLOCKED_LENGTH
    u, v = u / np.linalg.norm(u), v / np.linalg.norm(v)
    o = np.array([np.dot(origin - centre, u), np.dot(origin - centre, v)])
    if abs(o[0]) < half[0] and abs(o[1]) < half[1]:
        return False
    d = np.array([np.dot(point - origin, u), np.dot(point - origin, v)])
    lo, hi = 0.0, 1.0
    for axis in range(2):
        if abs(d[axis]) < 1e-12:
            if abs(o[axis]) >= half[axis]:
                return False
            continue
        t1 = (-half[axis] - o[axis]) / d[axis]
        t2 = (half[axis] - o[axis]) / d[axis]
        lo, hi = max(lo, min(t1, t2)), min(hi, max(t1, t2))
    return hi - lo > 1e-9


def _reference_visible(ego, others, sensor_range):
    arr = np.array([(b.x, b.y, b.yaw, b.length, b.width) for b in others])
    corners = corners_from_array(arr)
    origin = np.array([ego.x, ego.y])
    out = []
    for j in range(len(others)):
        points = list(corners[j]) + [arr[j, :2]]
        seen = False
        for p in points:
            if np.linalg.norm(p - origin) > sensor_range:
                continue
            if not any(_segment_crosses(origin, p, corners[k])
                       for k in range(len(others)) if k != j):
                seen = True
                break
        out.append(seen)
    return np.array(out)


def test_matches_a_per_pair_reference_on_random_traffic():
    rng = np.random.default_rng(7)
    disagreements = 0
    for _ in range(15):
        others = [box(rng.uniform(-35, 35), rng.uniform(-10, 10), rng.uniform(-0.3, 0.3),
                      rng.choice([4.6, 12.0]), rng.choice([2.0, 2.6])) for _ in range(18)]
        ego = box(rng.uniform(-2, 2), rng.uniform(-2, 2), 0.0)
        fast = visible(ego, others, 32.0)
        slow = _reference_visible(ego, others, 32.0)
        disagreements += int(np.sum(fast != slow))
        # a scene worth comparing on: occlusion hides some vehicles in range, not all, and
        # nothing out of range is seen
        in_range = visible(ego, others, 32.0, occlusion=False)
        assert 0 < fast.sum() < in_range.sum()
        assert not (fast & ~in_range).any()
    # float32 vs float64 may flip a ray grazing a box within millimetres; nothing more
    assert disagreements <= 1


def test_hidden_fraction_grows_with_density():
    rng = np.random.default_rng(3)
    sparse = [box(rng.uniform(-30, 30), rng.uniform(-7, 7)) for _ in range(8)]
    dense = sparse + [box(rng.uniform(-30, 30), rng.uniform(-7, 7)) for _ in range(52)]
    assert visible(EGO, sparse, 32.0).mean() > visible(EGO, dense, 32.0).mean()
    assert math.isclose(visible(EGO, dense, 32.0, full_observation=True).mean(), 1.0)

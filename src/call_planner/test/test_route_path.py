"""The ego's path along its route: cut at the ego, joined a little ahead, sampled by distance."""
import math

from call_planner.route_path import (poses_along, resample, route_ahead, route_from, ROUTE_JOIN,
                                     route_path)
import numpy as np
import pytest


def test_the_route_is_cut_at_the_ego_s_projection_and_resampled():
    route = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]])
    assert route_from(route, (4.0, 1.0)).tolist() == [[4.0, 0.0], [10.0, 0.0], [10.0, 10.0]]
    # behind the window's start the ego itself leads in
    assert route_from(route, (-3.0, 0.0))[0].tolist() == [-3.0, 0.0]
    points, arc = resample(route, 4.0)
    assert arc.tolist() == [0.0, 4.0, 8.0, 12.0, 16.0, 20.0]
    assert points[3].tolist() == pytest.approx([10.0, 2.0])


def test_the_route_ahead_keeps_the_route_s_own_vertices_from_the_ego_s_segment():
    route = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [20.0, 10.0]])

    def ahead(point):
        vertices, start = route_ahead(route, point)
        return vertices.tolist(), start

    assert ahead((4.0, 1.0)) == (route.tolist(), pytest.approx(4.0))
    assert ahead((11.0, 3.0)) == (route[1:].tolist(), pytest.approx(3.0))
    assert ahead((-3.0, 0.0)) == (route.tolist(), 0.0)                    # behind its start


def test_the_path_joins_the_route_ahead_and_runs_on_past_its_end():
    route = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]])
    # the ego 1 m beside the route, heading along it: the path's second vertex is the
    # route point ROUTE_JOIN metres past its projection
    x, y, heading = route_path((2.0, 1.0, 0.0), route, 5.0)
    assert (x[1], y[1]) == pytest.approx((2.0 + ROUTE_JOIN, 0.0))
    assert heading[0] == 0.0 and heading[1] == pytest.approx(math.atan2(-1.0, ROUTE_JOIN))
    # the route's last segment continued 5 m, heading north
    assert (x[-1], y[-1]) == pytest.approx((10.0, 15.0)) and heading[-1] == pytest.approx(
        math.pi / 2)
    ex, ey, eyaw = poses_along(x, y, heading, np.array([0.0, 100.0]))
    assert (ex[0], ey[0]) == (2.0, 1.0) and (ex[1], ey[1]) == pytest.approx((10.0, 15.0))
    # 10 m along: 5 m on along y = 0 from (5, 0), at the corner; 12 m: 2 m up the turn
    ex, ey, eyaw = poses_along(x, y, heading, np.array([np.hypot(ROUTE_JOIN, 1.0) + 5.0,
                                                        np.hypot(ROUTE_JOIN, 1.0) + 7.0]))
    assert (ex[0], ey[0]) == pytest.approx((10.0, 0.0))
    assert (ex[1], ey[1]) == pytest.approx((10.0, 2.0)) and eyaw[1] == pytest.approx(
        math.pi / 2)

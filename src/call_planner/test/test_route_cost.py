"""The route cost charges a candidate's kinematic rollout its deviation from the route."""
import math

from call_planner.lookahead import Plan
from call_planner.route_cost import (distance_to_polyline, rescored, RouteConfig, RouteContext,
                                     RouteCost)
from call_vehicle.actions import ActionSet
import numpy as np
import pytest

ACTIONS = ActionSet()
STRAIGHT = ACTIONS.index(0.0, 0.0)
HARD_RIGHT = ACTIONS.index(0.0, -0.6)
HARD_LEFT = ACTIONS.index(0.0, 0.6)


def _straight_route(y=0.0):
    return np.stack([np.arange(0.0, 60.0, 2.0), np.full(30, y)], 1)


def test_distance_to_a_polyline_is_the_perpendicular_or_the_end_distance():
    line = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]])
    points = np.array([[5.0, 3.0], [12.0, 5.0], [-3.0, 4.0]])
    assert np.allclose(distance_to_polyline(points, line), [3.0, 2.0, 5.0])


def test_on_a_straight_route_keeping_straight_is_cheapest_and_steering_costs_more():
    cost = RouteCost(RouteConfig(weight=1.0), ACTIONS)
    context = RouteContext((0.0, 0.0, 0.0), 8.0, _straight_route())
    plans = np.array([[STRAIGHT] * 5, [HARD_RIGHT] * 5, [HARD_LEFT] * 5])
    straight, right, left = cost.cost(plans, context)
    assert straight == pytest.approx(0.0, abs=1e-9)
    assert right > 1.0 and left > 1.0
    assert right == pytest.approx(left, rel=1e-6)     # symmetric


def test_a_vehicle_beside_its_route_is_steered_back_towards_it():
    # the ego is 3.5 m right of its route (a lane change on the route), heading along it
    cost = RouteCost(RouteConfig(weight=1.0), ACTIONS)
    context = RouteContext((0.0, -3.5, 0.0), 8.0, _straight_route())
    plans = np.array([[a] * 5 for a in range(len(ACTIONS))])
    costs = cost.cost(plans, context)
    best_steer = ACTIONS.action(int(np.argmin(costs)))[1]
    assert best_steer > 0.0          # left, towards the route


def test_rescoring_picks_the_candidate_the_cost_favours_and_keeps_its_actions():
    candidates = np.array([[a] * 5 for a in range(len(ACTIONS))])
    scores = np.zeros(len(ACTIONS))
    scores[HARD_RIGHT] = 0.3          # the model alone prefers to veer off
    plan = Plan(HARD_RIGHT, (HARD_RIGHT,) * 5, scores, 0.3, candidates)
    cost = RouteCost(RouteConfig(weight=0.5), ACTIONS)
    context = RouteContext((0.0, 0.0, 0.0), 8.0, _straight_route())
    better = rescored(plan, cost.cost(candidates, context))
    assert better.first_action != HARD_RIGHT
    assert better.actions == tuple(candidates[better.first_action])
    assert ACTIONS.action(better.first_action)[1] == 0.0


def test_without_a_route_or_weight_nothing_is_charged():
    plans = np.array([[HARD_RIGHT] * 5])
    assert RouteCost(RouteConfig(weight=0.0), ACTIONS).cost(
        plans, RouteContext((0.0, 0.0, 0.0), 8.0, _straight_route()))[0] == 0.0
    assert RouteCost(RouteConfig(weight=1.0), ACTIONS).cost(
        plans, RouteContext((0.0, 0.0, 0.0), 8.0, np.zeros((1, 2))))[0] == 0.0


def test_a_slow_vehicle_is_charged_for_braking_and_paid_for_speeding_up_to_the_reference():
    # on the route, straight ahead, at 3 m/s: only the speed term tells the plans apart
    brake, keep, speed_up = (ACTIONS.index(a, 0.0) for a in (-2.0, 0.0, 2.0))
    plans = np.array([[brake] * 5, [keep] * 5, [speed_up] * 5])
    context = RouteContext((0.0, 0.0, 0.0), 3.0, _straight_route())
    costs = RouteCost(RouteConfig(weight=1.0, speed_weight=0.3, reference_speed=10.0),
                      ACTIONS).cost(plans, context)
    assert costs[0] > costs[1] > costs[2]
    assert costs[0] - costs[1] == pytest.approx(0.3 * 0.6, rel=0.05)   # mean 0.6 m/s slower
    # at the reference speed braking is not charged for speed (the monitor may want it)
    fast = RouteCost(RouteConfig(weight=1.0, speed_weight=0.3, reference_speed=10.0),
                     ACTIONS).cost(plans, RouteContext((0.0, 0.0, 0.0), 12.0, _straight_route()))
    assert fast[0] == pytest.approx(fast[1], abs=1e-6)
    # off by default: the plain route cost does not care for speed
    plain = RouteCost(RouteConfig(weight=1.0), ACTIONS).cost(plans, context)
    assert plain[0] == pytest.approx(plain[2], abs=1e-6)


@pytest.mark.parametrize('kwargs', [{'weight': -1.0}, {'lookahead': math.nan},
                                    {'speed_weight': -0.1}, {'reference_speed': math.inf}])
def test_bad_route_config_fails_fast(kwargs):
    with pytest.raises(ValueError):
        RouteConfig(**kwargs)


def test_before_a_turn_of_a_real_route_the_reference_is_the_curve_speed():
    # a route of the crossroad map (SUMO's junction shape) that turns left at the junction:
    # far before the junction the reference stays planner.yaml's, within braking distance of
    # the turn it is the curve speed, and at that distance a vehicle at 9 m/s is paid for
    # braking, not for keeping its speed (a turn at the straight road's speed leaves the road)
    from call_planner.plan_stage import planner_params, route_cost_from_params
    from call_sim.config import load_yaml
    from call_sim.env import MultiVehicleEnv
    params = planner_params()
    cost = route_cost_from_params(params)
    scenario = {**load_yaml('scenarios/crossroad.yaml'), 'num_controlled': 1,
                'num_background': 0}
    with MultiVehicleEnv.from_scenario(scenario) as env:
        turning = None
        rng = np.random.default_rng(0)
        for _ in range(200):
            route = env.planner.sample(rng, ('south_in', 0, 100.0))
            heading = np.arctan2(*np.diff(route.points[[-2, -1]], axis=0)[0][::-1])
            if route.edges[1] == 'west_out' and abs(heading - math.pi) < 0.2:
                turning = route.points
                break
    assert turning is not None
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(turning, axis=0).T))])
    window = float(load_yaml('sim.yaml')['route']['horizon'])

    def ahead(start):       # the waypoint window the simulator publishes from arc `start`
        return turning[(arc >= start) & (arc <= start + window)]
    v_ref = float(params['route_reference_speed'])
    assert cost.reference_speed(ahead(0.0)) == v_ref            # the turn is 80 m away
    near = ahead(70.0)          # the turn starts about 15 m ahead
    assert 2.0 < cost.reference_speed(near) < 0.7 * v_ref
    brake, keep = (ACTIONS.index(a, 0.0) for a in (-2.0, 0.0))
    pose = (float(near[0, 0]), float(near[0, 1]), math.pi / 2)
    costs = cost.cost(np.array([[brake] * 5, [keep] * 5]), RouteContext(pose, 9.0, near))
    assert costs[0] < costs[1]

"""
The conflict cost: each candidate's rollout charged its TTC shortfall to the tracked vehicles.

Geometry on a straight road heading +x, lanes 3.5 m apart (the simulator's maps); the tracks
are what the safety monitor would hand over (`ttc_monitor.Track`). The policy test plans with
a small real torch model whose learned score prefers keeping speed (`toy_models`), as the
shipped model did towards a slower vehicle ahead.
"""
import math

from call_planner.conflict_cost import (conflict_cost_or_none, ConflictConfig, ConflictCost)
from call_planner.replanning import LookaheadConfig, ReplanningPolicy
from call_planner.route_cost import RouteContext
from call_planner.ttc_monitor import contact_times, MonitorConfig, Track
from call_planner.turn_assist import TurnAssist, TurnAssistConfig
from call_vehicle.actions import ActionSet
from call_vehicle.vehicle_model import BicycleModel
import numpy as np
import pytest
import torch
from toy_models import FixedActorCritic, LastActionWorldModel, NUM_ACTIONS

ACTIONS = ActionSet()
KEEP = ACTIONS.index(0.0, 0.0)
BRAKE = ACTIONS.index(-2.0, 0.0)
SPEED_UP = ACTIONS.index(2.0, 0.0)
NO_ROUTE = np.zeros((0, 2))


def _cost(**kwargs):
    return ConflictCost(ConflictConfig(**kwargs), MonitorConfig(), ACTIONS)


def _context(*tracks, speed=10.0):
    return RouteContext((0.0, 0.0, 0.0), speed, NO_ROUTE, tuple(tracks))


def _vehicle(x, y=0.0, vx=0.0):
    return Track(x, y, 0.0, 4.8, 2.0, vx, 0.0, False)


def test_behind_a_slower_vehicle_braking_costs_less_than_keeping_and_speeding_up():
    plans = np.array([[SPEED_UP] + [KEEP] * 4, [KEEP] * 5, [BRAKE] + [KEEP] * 4])
    cost = _cost(weight=1.0)
    context = _context(_vehicle(25.0, vx=3.0))
    ttc = cost.ttc(plans, context)
    # keeping 10 m/s towards a 3 m/s car 25 m ahead: contact in about 2.8 s
    assert 2.0 < ttc[1] < ConflictConfig().ttc
    # the first action's acceleration is held: speeding up meets it sooner, braking stops
    # short of it
    assert ttc[0] < ttc[1] and math.isinf(ttc[2])
    charged = cost.cost(plans, context)
    assert charged[0] > charged[1] > charged[2] == 0.0


def test_speeding_up_to_pass_in_front_of_a_crossing_vehicle_is_no_way_out():
    # crossing from the right, it reaches the ego's path as the ego (10 m/s) gets there; at
    # +2 m/s^2 held the ego would be through first, at its speed it is not
    crossing = Track(30.0, -18.0, math.pi / 2, 4.8, 2.0, 0.0, 5.0, True)
    plans = np.array([[KEEP] * 5, [SPEED_UP] * 5, [BRAKE] * 5])
    cost = _cost()
    context = _context(crossing)
    x, y, yaw, t = cost.paths(plans[1:2], context)
    first, _ = contact_times(x, y, yaw, [crossing], t, 0.0, MonitorConfig())
    assert first[0, 0] == len(t)                    # racing it, held, would be clear
    ttc = cost.ttc(plans, context)
    assert math.isfinite(ttc[0]) and ttc[1] <= ttc[0] and math.isinf(ttc[2])
    charged = cost.cost(plans, context)
    assert charged[1] >= charged[0] > charged[2] == 0.0


def test_each_tracks_ttc_is_the_same_alone_as_among_the_others():
    # the faster candidates are also checked at their current speed, against crossing
    # vehicles only: with a crossing vehicle, one ahead and a faster one coming up in the next
    # lanes in one context, each column equals the context with that vehicle alone
    others = (Track(30.0, -18.0, math.pi / 2, 4.8, 2.0, 0.0, 5.0, True), _vehicle(40.0, vx=6.0),
              _vehicle(-12.0, 3.5, vx=16.0), _vehicle(-12.0, -3.5, vx=16.0))
    plans = np.array([[a] * 5 for a in range(len(ACTIONS))])
    cost = _cost()
    together = cost.track_ttc(plans, _context(*others))
    for n, other in enumerate(others):
        assert np.array_equal(together[:, n], cost.track_ttc(plans, _context(other))[:, 0])
    assert np.isfinite(together).any(0).all()       # every vehicle is in conflict somewhere


def test_the_path_is_the_rollout_and_the_speed_the_first_action_held():
    plans = np.array([[KEEP] * 5, [BRAKE] * 5, [SPEED_UP] + [KEEP] * 4])
    x, y, yaw, t = _cost(horizon=5.0).paths(plans, _context(speed=10.0))
    assert np.allclose(x[0], 10.0 * t) and np.allclose(y, 0.0) and np.allclose(yaw, 0.0)
    assert x[1, -1] == pytest.approx(10.0 ** 2 / (2 * 2.0))     # stopped after 25 m
    assert x[2, -1] == pytest.approx(10.0 * 5.0 + 0.5 * 2.0 * 5.0 ** 2)


def test_in_a_bend_the_assist_drives_the_path_is_the_route():
    # a right turn of the crossroad's radius, 5.75 m (north, then east along y = -4.25); the
    # ego stands half turned in it, its heading 57 degrees, pointing across the oncoming lane
    # of the road it turns into (y = -0.75)
    turn = np.linspace(math.pi, math.pi / 2, 20)
    bend = np.stack([5.75 + 5.75 * np.cos(turn), -10.0 + 5.75 * np.sin(turn)], 1)
    route = np.vstack([[0.0, -30.0], [0.0, -10.0], bend[1:], [30.0, -4.25]])
    oncoming = Track(14.0, -0.75, math.pi, 4.8, 2.0, -8.0, 0.0, False)
    standing = Track(14.0, -4.25, 0.0, 4.8, 2.0, 0.0, 0.0, False)   # on the ego's exit
    plans = np.array([[SPEED_UP] * 5, [KEEP] * 5])
    assist = TurnAssist(TurnAssistConfig(route_path=True), ACTIONS, BicycleModel())

    def charged(bends, track):       # the assist's path alone: rollouts continued straight
        cost = ConflictCost(ConflictConfig(on_route=False), MonitorConfig(), ACTIONS,
                            BicycleModel(), bends)
        return cost.cost(plans, RouteContext((1.5, -6.5, 1.0), 0.0, route, (track,)))

    # down the heading's tangent a start meets the oncoming car; along the route it does not
    assert charged(None, oncoming)[0] > 0.0 and np.all(charged(assist, oncoming) == 0.0)
    # along the route a start meets what stands on the exit; down the tangent it did not
    assert np.all(charged(None, standing) == 0.0) and charged(assist, standing)[0] > 0.0
    # the standing candidate is charged nothing either way
    assert charged(assist, standing)[1] == charged(assist, oncoming)[1] == 0.0
    # on a straight road the assist leaves every path the rollout
    x, y, _, _ = ConflictCost(ConflictConfig(), MonitorConfig(), ACTIONS, BicycleModel(),
                              assist).paths(plans, RouteContext((0.0, -60.0, math.pi / 2),
                                                                10.0, route[:2]))
    assert np.allclose(x, 0.0) and y[1, -1] == pytest.approx(-60.0 + 10.0 * 6.0)


def test_vehicles_beside_behind_or_far_ahead_cost_nothing():
    plans = np.array([[KEEP] * 5, [SPEED_UP] * 5])
    cost = _cost()
    beside = _vehicle(10.0, y=3.5, vx=3.0)          # the next lane, parallel
    behind = _vehicle(-12.0, vx=14.0)               # closing from behind: its business
    far = _vehicle(60.0, vx=3.0)                    # contact beyond the threshold
    for track in (beside, behind, far):
        assert np.all(cost.cost(plans, _context(track)) == 0.0)
    assert np.all(np.isinf(cost.ttc(plans, _context())))


def test_a_vehicle_crossing_ahead_is_charged():
    # crossing from the right towards the ego's path, 30 m ahead: they meet in about 3 s
    crossing = Track(30.0, -24.0, math.pi / 2, 4.8, 2.0, 0.0, 8.0, True)
    plans = np.array([[KEEP] * 5, [BRAKE] * 5])
    charged = _cost().cost(plans, _context(crossing))
    assert charged[0] > 0.0 and charged[1] < charged[0]


def test_the_look_ahead_brakes_for_a_slower_vehicle_its_learned_score_ignores():
    rewards = torch.zeros(NUM_ACTIONS)
    rewards[KEEP] = 0.2                 # the learned score prefers keeping speed
    model = LastActionWorldModel(rewards)
    config = LookaheadConfig(K=5, gamma=0.99)
    context = _context(_vehicle(25.0, vx=3.0))
    plain = ReplanningPolicy(model, FixedActorCritic(preferred=KEEP), NUM_ACTIONS, config)
    assert plain.step(model.initial_state(1), route=context).action == KEEP
    costed = ReplanningPolicy(model, FixedActorCritic(preferred=KEEP), NUM_ACTIONS, config,
                              conflict_cost=_cost(weight=2.0))
    assert ACTIONS.action(costed.step(model.initial_state(1), route=context).action)[0] < 0.0
    # while charged it re-plans every step; without a vehicle it keeps speed and commits
    assert costed.step(model.initial_state(1), route=context).replanned
    costed.reset()
    decisions = [costed.step(model.initial_state(1), route=_context()) for _ in range(3)]
    assert [d.action for d in decisions] == [KEEP] * 3
    assert [d.replanned for d in decisions] == [True, False, False]


@pytest.mark.parametrize('kwargs', [{'weight': -1.0}, {'ttc': 7.0}, {'ttc': 0.0},
                                    {'horizon': math.inf}, {'ttc_shared': 7.0},
                                    {'ttc_shared': 0.0}])
def test_bad_conflict_config_fails_fast(kwargs):
    with pytest.raises(ValueError):
        ConflictConfig(**kwargs)


def test_weight_zero_is_no_cost():
    assert conflict_cost_or_none(ConflictConfig(weight=0.0), MonitorConfig(), ACTIONS) is None


def test_a_vehicle_that_comes_up_mid_plan_is_answered_at_once():
    rewards = torch.zeros(NUM_ACTIONS)
    rewards[KEEP] = 0.2
    model = LastActionWorldModel(rewards)
    policy = ReplanningPolicy(model, FixedActorCritic(preferred=KEEP), NUM_ACTIONS,
                              LookaheadConfig(K=5, gamma=0.99), conflict_cost=_cost())
    first = policy.step(model.initial_state(1), route=_context())
    assert first.replanned and first.action == KEEP
    # the kept plan would keep speed into a slower car that came up: re-plan and brake
    decision = policy.step(model.initial_state(1), route=_context(_vehicle(25.0, vx=3.0)))
    assert decision.replanned and ACTIONS.action(decision.action)[0] < 0.0


def test_a_lane_change_in_front_of_a_faster_car_coming_up_is_charged():
    left = ACTIONS.index(0.0, 0.2)
    plans = np.array([[KEEP] * 5, [left] * 5])
    coming_up = _vehicle(-10.0, y=3.5, vx=14.0)     # the next lane to the left, faster
    ttc = _cost().ttc(plans, _context(coming_up, speed=8.0))
    assert math.isinf(ttc[0])                       # holding the lane: it passes by
    assert ttc[1] < ConflictConfig().ttc            # moving over: it runs into the ego
    # a car closing from behind in the ego's own lane stays the follower's business
    assert np.all(np.isinf(_cost().ttc(plans, _context(_vehicle(-12.0, vx=14.0)))))


def test_on_route_a_swerve_out_of_the_lane_is_no_way_out_of_a_conflict():
    swerve = ACTIONS.index(0.0, 0.6)
    plans = np.array([[KEEP] * 5, [swerve] * 5, [BRAKE] * 5])
    route = np.stack([np.arange(-10.0, 120.0, 2.0), np.zeros(65)], 1)     # the ego's lane
    standing = _vehicle(40.0)
    context = RouteContext((0.0, 0.0, 0.0), 10.0, route, (standing,))
    ahead = _cost(on_route=False).ttc(plans, context)
    on_route = _cost(on_route=True)
    back = on_route.ttc(plans, context)
    # held for the whole horizon, the swerve's heading takes it off the road past the car
    assert ahead[0] < ConflictConfig().ttc and math.isinf(ahead[1])
    # back on its route after the swerve, it meets the car about as soon as keeping its lane
    assert back[0] == pytest.approx(ahead[0]) and back[1] < ConflictConfig().ttc
    assert math.isinf(back[2])                                  # braking is the way out
    x, y, _, t = on_route.paths(plans, context)
    # the swerve's path goes no further out than its 0.5 s rollout took it (2 m), then back
    assert np.allclose(y[:, -1], 0.0) and np.abs(y[1]).max() < 2.5
    assert x[0] == pytest.approx(10.0 * t)                      # keeping: the rollout
    # without a route the paths are the rollouts continued on their last heading
    free = RouteContext((0.0, 0.0, 0.0), 10.0, NO_ROUTE, (standing,))
    assert np.array_equal(on_route.ttc(plans, free), _cost(on_route=False).ttc(plans, free))

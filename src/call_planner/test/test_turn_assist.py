"""
The turn assist: pure pursuit where the route bends more tightly than the action set turns.

Geometry on hand-made routes, then closed loop on SUMO's crossroad: a right turn that the
action set's steer alone cannot drive.
"""
import math

from call_planner.plan_stage import planner_params
from call_planner.route_cost import distance_to_polyline, route_curvature
from call_planner.turn_assist import (pursuit_steer, turn_assist_from_params, TurnAssist,
                                      TurnAssistConfig)
from call_sim.config import load_yaml
from call_sim.env import MultiVehicleEnv
from call_vehicle.actions import ActionSet
from call_vehicle.vehicle_control import ControlModel
from call_vehicle.vehicle_model import BicycleModel
import numpy as np
import pytest

BICYCLE = BicycleModel()


def right_turn(radius: float, straight: float = 4.0) -> np.ndarray:
    """Return a route from the origin heading +x: `straight` metres, then a right turn."""
    ahead = [(x, 0.0) for x in np.arange(0.0, straight, 0.5)]
    angles = np.linspace(0.0, math.pi / 2, 40)
    arc = [(straight + radius * math.sin(a), -radius * (1.0 - math.cos(a))) for a in angles]
    return np.array(ahead + arc)


def test_route_curvature_is_the_bends_and_only_within_reach():
    route = right_turn(5.75)
    assert route_curvature(route, 30.0) == pytest.approx(1 / 5.75, rel=0.05)
    assert route_curvature(route, 3.0) == pytest.approx(0.0, abs=1e-9)    # before the bend
    assert route_curvature(np.array([[0.0, 0.0], [5.0, 0.0], [9.0, 0.0]]), 30.0) == 0.0
    assert route_curvature(np.zeros((2, 2)), 30.0) == 0.0


def test_pure_pursuit_on_a_circle_steers_its_curvature():
    radius = 12.0
    angles = np.linspace(0.0, math.pi / 2, 60)
    circle = np.stack([radius * np.sin(angles), -radius * (1.0 - np.cos(angles))], -1)
    steer = pursuit_steer((0.0, 0.0, 0.0), circle, 5.0, BICYCLE)
    expected = -math.atan(BICYCLE.wheelbase / radius) / BICYCLE.max_steer_angle
    assert steer == pytest.approx(expected, rel=0.02)
    # a mirrored circle steers left as much
    mirrored = circle * np.array([1.0, -1.0])
    assert pursuit_steer((0.0, 0.0, 0.0), mirrored, 5.0, BICYCLE) == pytest.approx(
        -steer, rel=1e-9)


def test_the_assist_acts_only_in_bends_tighter_than_the_set_turns():
    assist = TurnAssist(TurnAssistConfig(), ActionSet(), BICYCLE)
    # the set's largest steer, 0.6 of 0.5 rad, turns on about 9.4 m
    assert 1 / assist.set_curvature == pytest.approx(9.4, abs=0.1)
    start = (0.0, 0.0, 0.0)
    # on the bend: the pursuit steers its curvature, beyond the set
    tight = assist.steer(start, 3.0, right_turn(5.75, straight=0.0), 0.0)
    assert tight is not None and tight < -0.6          # harder right than the set can
    assert assist.steer(start, 3.0, right_turn(20.0, straight=0.0), 0.0) is None  # the set can
    straight = np.array([[x, 0.0] for x in range(30)], dtype=float)
    assert assist.steer(start, 3.0, straight, 0.0) is None
    assert assist.steer(start, 3.0, right_turn(5.75, straight=30.0), 0.0) is None   # far
    # never softer than the planner: full lock already is left alone
    assert assist.steer(start, 3.0, right_turn(5.75, straight=0.0), -1.0) is None
    off = TurnAssist(TurnAssistConfig(enabled=False), ActionSet(), BICYCLE)
    assert off.steer(start, 3.0, right_turn(5.75), 0.0) is None


def test_the_ego_is_predicted_along_its_route_only_in_bends_the_set_cannot_turn():
    assist = TurnAssist(TurnAssistConfig(), ActionSet(), BICYCLE)
    assert assist.config.route_path                                       # the default
    # into a right turn tighter than the set turns: a path along the route
    path = assist.predicted_path((0.0, 0.0, 0.0), 3.0, right_turn(5.75, straight=0.0), 20.0)
    assert path is not None and path[1].min() < -5.0
    # a vehicle 5 cm off a straight lane's centre, just behind the waypoint window's start:
    # its short step onto the route is no bend (it read as one on the route cut at the ego)
    lane = np.array([[0.3 + 2.0 * i, 0.0] for i in range(15)])
    assert assist.predicted_path((0.0, -0.05, 0.0), 5.4, lane, 30.0) is None
    assert assist.predicted_path((1.2, 0.05, 0.0), 5.4, lane, 30.0) is None
    # read on the route's own vertices: a 12.5 m bend with the ego 0.1 m before a vertex
    # (the route cut at the ego read it as 6.6 m); a tight turn at the end of a 40 m segment
    # out of reach from its start, within reach 5 m before it
    heading = -0.16 * np.arange(8)                       # 2 m steps: a bend of 12.5 m
    gentle = np.vstack([[0.0, 0.0], np.cumsum(2.0 * np.stack([np.cos(heading),
                                                              np.sin(heading)], 1), 0)])
    assert assist.predicted_path((1.9, 0.0, 0.0), 3.0, gentle, 20.0) is None
    far = np.vstack([[0.0, 0.0], right_turn(5.75, straight=0.0) + [40.0, 0.0]])
    assert assist.predicted_path((20.0, 0.0, 0.0), 3.0, far, 20.0) is None
    assert assist.predicted_path((35.0, 0.0, 0.0), 3.0, far, 20.0) is not None
    off = TurnAssist(TurnAssistConfig(route_path=False), ActionSet(), BICYCLE)
    assert off.predicted_path((0.0, 0.0, 0.0), 3.0, right_turn(5.75, straight=0.0), 20.0) is None


def test_bad_assist_parameters_fail_fast_and_the_default_is_on():
    with pytest.raises(ValueError, match='turn_assist_reach'):
        TurnAssistConfig(reach=-1.0)
    with pytest.raises(ValueError, match='turn_assist_min_lookahead'):
        TurnAssistConfig(min_lookahead=0.0)
    assert turn_assist_from_params(planner_params()) is not None
    assert turn_assist_from_params(planner_params({'turn_assist_enabled': False})) is None


def drive_right_turn(assist, speed=3.4, steps=300, planner_steers=True):
    """
    Drive `south_in`'s right lane into the right turn to `east_out` on SUMO's crossroad.

    A stand-in for a planner bound to the action set: its steer is the route's pure pursuit
    quantised to the nearest of the set's steers (with `planner_steers` false it keeps
    straight, as the learned planner did in a turn it entered late), its acceleration holds
    the route cost's curve speed for a 5.75 m bend at 2 m/s^2 (about 3.4 m/s). Returns per
    step the distance [m] of the ego's centre to its route, whether the trip ended off the
    road, and the ego's last yaw [rad] (the exit road runs at 0).
    """
    actions, control = ActionSet(), ControlModel()
    scenario = {**load_yaml('scenarios/crossroad.yaml'), 'num_controlled': 1,
                'num_background': 0}
    start = {'edge': 'south_in', 'lane': 0, 'next': 'east_out', 'pos': 140.0, 'speed': speed}
    deviations, off_road = [], False
    with MultiVehicleEnv.from_scenario(scenario) as env:
        obs, _ = env.reset(seed=1, options={'starts': {'hero0': start}})
        route = np.array(env.heroes['hero0'].route.points, dtype=float)
        for _ in range(steps):
            ego, window = obs['hero0'].ego, np.asarray(obs['hero0'].route).reshape(-1, 2)
            pose = (ego.x, ego.y, ego.yaw)
            wanted = pursuit_steer(pose, window, max(3.0, 0.6 * ego.speed), BICYCLE)
            steer = min(actions.steers, key=lambda s: abs(s - wanted)) if planner_steers else 0.0
            if assist is not None:
                assisted = assist.steer(pose, ego.speed, window, steer)
                steer = steer if assisted is None else assisted
            accel = float(np.clip(speed - ego.speed, -2.0, 2.0))
            obs, _, terminated, _, infos = env.step(
                {'hero0': control.to_control(accel, steer, ego.speed)})
            deviations.append(float(distance_to_polyline(np.array([ego.x, ego.y]), route)))
            if terminated.get('hero0') or 'hero0' not in obs:
                off_road = bool(infos.get('hero0', {}).get('off_road'))
                break
    return deviations, off_road, ego.yaw


def test_a_right_turn_the_set_cannot_drive_is_driven_with_the_assist():
    assisted, off_with, _ = drive_right_turn(turn_assist_from_params(planner_params()))
    bound, off_without, _ = drive_right_turn(None)
    assert not off_with and not off_without
    # at the route cost's curve speed the set's steer alone swings out more than 1.5 m
    assert max(bound) > 1.5
    # with the assist the ego keeps within about half of that through the whole turn
    assert max(assisted) < 1.2
    assert max(assisted) < 0.7 * max(bound)


def test_a_turn_left_unfinished_is_finished_by_the_assist():
    assist = TurnAssist(TurnAssistConfig(), ActionSet(), BICYCLE)
    # the bend's vertices have left the waypoint window: the route ahead runs straight on
    lane = np.array([[1.0 + 2.0 * i, 0.0] for i in range(15)])
    assert not assist.in_bend(lane, 1.5)
    # the ego still points 50 degrees left of it (a right turn begun late)
    late = (0.0, -1.0, math.radians(50.0))
    assert assist.heads_off(late, 1.5, lane)
    steer = assist.steer(late, 1.5, lane, 0.0)
    assert steer is not None and steer < -0.6         # back to the route, harder than the set
    path = assist.predicted_path(late, 1.5, lane, 20.0)
    assert path is not None and abs(path[1][-1]) < 1e-6      # predicted along the route
    # lane keeping, a few degrees and decimetres off: nothing changes
    keeping = (0.0, 0.3, math.radians(5.0))
    assert not assist.heads_off(keeping, 8.0, lane)
    assert assist.steer(keeping, 8.0, lane, 0.0) is None
    assert assist.predicted_path(keeping, 8.0, lane, 20.0) is None
    # drifting off the route at a small heading counts once it is far enough off
    assert assist.heads_off((0.0, 2.5, math.radians(5.0)), 2.0, lane)
    # a lane change on the route (3.5 m over 30 m, smoothstep) followed at 3 m/s with the
    # route's heading: the set steers it
    s = np.arange(0.0, 60.0, 2.0)
    t = np.clip((s - 10.0) / 30.0, 0.0, 1.0)
    changing = np.stack([s, 3.5 * (3 * t ** 2 - 2 * t ** 3)], 1)
    heading = math.atan2(changing[13, 1] - changing[12, 1], 2.0)
    assert not assist.heads_off((25.0, 1.75, heading), 3.0, changing)
    # a swerve 25 degrees off the lane: at cruising speed a lane change the planner drives,
    # at a turn's speed a heading the assist takes back
    swerve = (0.0, 0.0, math.radians(25.0))
    assert not assist.heads_off(swerve, 8.0, lane) and assist.steer(swerve, 8.0, lane, 0.0) is None
    assert assist.heads_off(swerve, 3.0, lane)
    # on by default, and off with the switch; a threshold outside (0, pi] or a bound that is
    # not a speed fails fast
    off = TurnAssist(TurnAssistConfig(finish_turns=False), ActionSet(), BICYCLE)
    assert not off.heads_off(late, 1.5, lane) and off.steer(late, 1.5, lane, 0.0) is None
    assert off.predicted_path(late, 1.5, lane, 20.0) is None
    assert turn_assist_from_params(planner_params()).config.finish_turns
    with pytest.raises(ValueError, match='turn_assist_off_heading'):
        TurnAssistConfig(off_heading=0.0)
    for speed in (-1.0, math.nan):
        with pytest.raises(ValueError, match='turn_assist_finish_speed'):
            TurnAssistConfig(finish_speed=speed)
    # without the bound (.inf) the swerve is taken back at any speed
    unbounded = TurnAssist(TurnAssistConfig(finish_speed=math.inf), ActionSet(), BICYCLE)
    assert unbounded.heads_off(swerve, 8.0, lane)


def test_a_planner_that_keeps_straight_through_a_right_turn_is_taken_round_it():
    finished, off_with, yaw_with = drive_right_turn(
        turn_assist_from_params(planner_params()), steps=250, planner_steers=False)
    unfinished, off_without, yaw_without = drive_right_turn(
        turn_assist_from_params(planner_params({'turn_assist_finish_turns': False})),
        steps=250, planner_steers=False)
    # the bend test alone lets go half way round: the ego keeps its half-turned heading
    # across the lanes it turned into and leaves the road
    assert off_without and max(unfinished) > 10.0 and abs(yaw_without) > math.radians(35.0)
    # with finish_turns the assist takes it on round the turn and holds it near its route,
    # though this stand-in planner never steers
    assert not off_with and max(finished) < 1.5 and abs(yaw_with) < 0.35

"""
Accepted neighbours as tracks of the TTC monitor and the conflict cost.

Real simulator (SUMO) and call_perception: on the crossroad hero0 drives north and hero1
crosses from the east, both held at constant speed on a collision course (the scene of
test_ttc_monitor). hero0's BEV never draws hero1 as seen; hero1 reaches it either only as the
blob of the shared channel (the BEV tracker must first see it, then estimate its velocity)
or also as the state its CALL message states (pose, speed, planned path; `shared_tracks`).
With the message the planner's conflict cost prefers braking to keeping speed while hero1 is
still outside hero0's 64 m BEV, and the monitor warns no later than with the blob alone.
"""
from dataclasses import replace
import math

from call_perception.bev_raster import BevConfig, CHANNEL_INDEX
from call_planner.conflict_cost import ConflictConfig, ConflictCost
from call_planner.plan_stage import conflict_cost_from_params, planner_params
from call_planner.route_cost import RouteContext
from call_planner.shared_tracks import (declared_braking, path_curvature, path_heading,
                                        shared_tracks, SharedState)
from call_planner.ttc_monitor import (BevGeometry, contact_times, EMERGENCY, MonitorConfig,
                                      NONE, predicted_motion, Track, TtcMonitor)
from call_sim.env import MultiVehicleEnv
from call_vehicle.actions import ActionSet
from call_vehicle.intention import intention_waypoints
from call_vehicle.vehicle_control import ControlModel
from call_vehicle.vehicle_model import BicycleModel, BicycleState
from crossroad_scene import (first_index, message_of, raster_and_monitor, SCENARIO,
                             step_holding_speeds)
import numpy as np
import pytest

STARTS = {'hero0': {'edge': 'south_in', 'lane': 0, 'pos': 150.0, 'speed': 8.0},
          'hero1': {'edge': 'east_in', 'lane': 0, 'pos': 144.0, 'speed': 8.0}}
LATENCY = 2      # steps: the message a step's model state heard was sent two steps earlier
K = 5            # the look-ahead's plan length (planner.yaml)


def _drive(messages: bool, steps=40, cost=None):
    """
    Run the crossing at constant speeds; per step what hero0's planner and monitor make of it.

    Per step: whether the conflict cost charges keeping speed more than braking, the
    monitor's level and whether hero1 is inside hero0's BEV.
    """
    control, bev_cfg, config, actions = ControlModel(), BevConfig(), MonitorConfig(), \
        ActionSet()
    cost = cost or ConflictCost(ConflictConfig(horizon=5.0), config, actions)
    plans = np.array([[actions.index(0.0, 0.0)] * K, [actions.index(-2.0, 0.0)] * K])
    mpp, rows = bev_cfg.metres_per_pixel, bev_cfg.size
    log = {'brake_preferred': [], 'levels': [], 'in_bev': []}
    sent = []
    with MultiVehicleEnv.from_scenario(SCENARIO) as env:
        obs, _ = env.reset(seed=1, options={'starts': STARTS})
        raster, monitor = raster_and_monitor(env, bev_cfg, config)
        for k in range(steps):
            ego, other = obs['hero0'].ego, obs['hero1'].ego
            sent.append(message_of(other, env.time))
            bev = raster.render(ego, [], [other])
            monitor.observe(env.time, bev[CHANNEL_INDEX['seen_vehicles']] > 0,
                            bev[CHANNEL_INDEX['shared_vehicles']] > 0,
                            (ego.x, ego.y, ego.yaw))
            heard = [sent[k - LATENCY]] if messages and k >= LATENCY else []
            monitor.share(shared_tracks(heard, env.time, config)[0])
            pose = (ego.x, ego.y, ego.yaw)
            context = RouteContext(pose, ego.speed, np.zeros((0, 2)), monitor.moving_tracks())
            keep, brake = cost.cost(plans, context)
            log['brake_preferred'].append(keep > brake)
            log['levels'].append(monitor.assess(env.time, pose, ego.speed).level)
            dx, dy = other.x - ego.x, other.y - ego.y
            forward = math.cos(ego.yaw) * dx + math.sin(ego.yaw) * dy
            left = -math.sin(ego.yaw) * dx + math.cos(ego.yaw) * dy
            log['in_bev'].append(-(rows - bev_cfg.ego_row) * mpp < forward < bev_cfg.ego_row * mpp
                                 and -(rows - bev_cfg.ego_col) * mpp < left
                                 < bev_cfg.ego_col * mpp)
            obs = step_holding_speeds(env, control, obs)
    return log


def test_a_neighbour_known_by_its_message_is_braked_for_before_it_is_in_the_bev():
    stated, blob = _drive(True), _drive(False)
    first = first_index(stated['brake_preferred'])
    # the planner's conflict cost prefers braking while hero1 is outside hero0's BEV: only
    # the message can have told it
    assert math.isfinite(first) and not stated['in_bev'][first]
    # with the blob alone it does so only after hero1 entered the BEV and was tracked,
    # at least 0.5 s later
    assert first + 5 <= first_index(blob['brake_preferred'])
    assert first_index(blob['in_bev']) <= first_index(blob['brake_preferred'])
    # the monitor (its threshold below the planner's) warns no later with the message
    warned = [first_index([level != NONE for level in log['levels']]) for log in (stated, blob)]
    assert math.isfinite(warned[0]) and warned[0] <= warned[1]


def test_a_vehicle_known_only_through_sharing_is_braked_for_at_a_longer_ttc():
    # with conflict_ttc_shared above conflict_ttc the conflict cost plans for a vehicle that
    # only sharing tells of (hidden or beyond the ego's sensors) at the longer TTC: the lead
    # that sharing gives becomes braking that starts earlier (planner.yaml's other numbers)
    params = planner_params({'conflict_ttc_shared': 6.0})
    config = MonitorConfig.from_params(params)
    yaml_cost = conflict_cost_from_params(params)
    equal = ConflictCost(ConflictConfig(float(params['conflict_weight']),
                                        float(params['conflict_ttc']),
                                        float(params['conflict_horizon'])), config, ActionSet())
    early = first_index(_drive(True, 30, yaml_cost)['brake_preferred'])
    late = first_index(_drive(True, 30, equal)['brake_preferred'])
    assert math.isfinite(early) and early + 10 <= late       # at least 1 s earlier
    # a seen vehicle at the same TTC keeps conflict_ttc: a vehicle crossing 5 s ahead at
    # keeping speed costs nothing when seen, and braking is preferred when only shared
    actions = ActionSet()
    plans = np.array([[actions.index(0.0, 0.0)] * K, [actions.index(-2.0, 0.0)] * K])
    for shared_only, charged in ((False, False), (True, True)):
        crossing = Track(50.0, -42.0, math.pi / 2, 4.8, 2.0, 0.0, 8.0, shared_only)
        context = RouteContext((0.0, 0.0, 0.0), 10.0, np.zeros((0, 2)), (crossing,))
        keep, brake = yaml_cost.cost(plans, context)
        assert (keep > brake) == charged, (shared_only, keep, brake)


def test_a_message_becomes_a_track_moved_on_by_its_age():
    config = MonitorConfig()
    west = SharedState(50.0, 2.0, math.pi, 8.0, 1.0, np.array([[45.0, 2.0], [40.0, 2.0]]))
    (track,), dropped = shared_tracks([west], 1.2, config)
    assert dropped == 0 and track.known and track.shared_only
    assert math.isclose(track.x, 50.0 - 8.0 * 0.2) and math.isclose(track.vx, -8.0)
    assert abs(track.vy) < 1e-9 and math.isclose(track.age, 0.2)
    assert (track.length, track.width) == (config.ego_length, config.ego_width)


def test_the_declared_path_gives_the_heading_of_a_turning_neighbour():
    # yaw east, the plan turns north: predicted along the plan's chord
    heading = path_heading(0.0, 0.0, np.array([[2.0, 1.0], [3.0, 3.0]]), 0.0)
    assert math.isclose(heading, math.atan2(3.0, 3.0))
    # no plan, or one shorter than a vehicle: the yaw
    assert path_heading(0.0, 0.0, np.zeros((0, 2)), 0.3) == 0.3
    assert path_heading(0.0, 0.0, np.array([[0.5, 0.5]]), 0.3) == 0.3


def test_stale_and_non_finite_messages_are_dropped_and_counted():
    config = MonitorConfig()
    good = SharedState(0.0, 0.0, 0.0, 5.0, 10.0, np.zeros((0, 2)))
    bad = [SharedState(math.nan, 0.0, 0.0, 5.0, 10.0, np.zeros((0, 2))),
           SharedState(0.0, 0.0, 0.0, math.inf, 10.0, np.zeros((0, 2))),
           SharedState(0.0, 0.0, 0.0, 5.0, 10.0 - config.shared_max_age - 0.1,
                       np.zeros((0, 2))),
           SharedState(0.0, 0.0, 0.0, 5.0, 11.0, np.zeros((0, 2)))]     # from the future
    tracks, dropped = shared_tracks([good] + bad, 10.0, config)
    assert len(tracks) == 1 and dropped == len(bad)
    # non-finite waypoints only lose the path's heading
    odd = SharedState(0.0, 0.0, 0.2, 5.0, 10.0, np.array([[math.nan, 1.0]]))
    (track,), dropped = shared_tracks([odd], 10.0, config)
    assert dropped == 0 and track.yaw == 0.2


def test_the_message_replaces_the_neighbours_blob_and_a_seen_blob_keeps_it_seen():
    monitor = TtcMonitor(MonitorConfig(), BevGeometry(0.5, 80.0, 64.0))
    blob = np.zeros((128, 128), bool)
    blob[56:65, 62:66] = True          # 10 m ahead of the ego at the origin, heading +x
    empty = np.zeros((128, 128), bool)
    for seen in (False, True):
        monitor.reset()
        monitor.observe(0.0, blob if seen else empty, empty if seen else blob,
                        (0.0, 0.0, 0.0))
        message = SharedState(9.0, 0.0, 0.0, 4.0, 0.0, np.zeros((0, 2)))
        monitor.share(shared_tracks([message], 0.2, monitor.config)[0])
        (track,) = monitor.moving_tracks()       # assessed at once, no velocity estimate
        assert track.known and track.shared_only == (not seen)
        assert math.isclose(track.vx, 4.0)
    # without the neighbours the blob is back, and a first sighting is not assessed
    monitor.share(())
    assert monitor.moving_tracks() == () and len(monitor.tracks) == 1


def test_a_crossing_vehicle_that_would_strike_the_rear_quarter_counts_one_from_behind_not():
    config = MonitorConfig()
    t = np.arange(0.0, 5.0 + 1e-9, 0.1)
    ex, ey, eyaw = (8.0 * t)[None], np.zeros((1, len(t))), np.zeros((1, len(t)))
    # crossing from the right, reaching the ego's line as the ego's rear passes
    crossing = Track(10.5, -16.0, math.pi / 2, 4.8, 2.0, 0.0, 8.0, False)
    # a faster car in the ego's lane, 8 m behind
    rear = Track(-8.0, 0.0, 0.0, 4.8, 2.0, 12.0, 0.0, False)
    first, ahead = contact_times(ex, ey, eyaw, [crossing, rear], t, 0.0, config)
    assert (first < len(t)).all()
    assert ahead[0].tolist() == [True, False]


def test_two_vehicles_stopped_nose_to_tail_hold_the_one_behind_not_the_one_in_front():
    # a respawn or a hard stop can leave two vehicles standing within the monitor's margin of
    # each other: the one behind must keep holding, the one in front must be free to drive
    # away (had it held for the one behind too, both stood for good)
    config = MonitorConfig()
    t = np.arange(0.0, 5.0 + 1e-9, 0.1)
    standing = np.zeros((1, len(t)))
    behind = Track(-5.9, 0.0, 0.0, 4.8, 2.0, 0.0, 0.0, False, 0.0)
    in_front = Track(5.9, 0.0, 0.0, 4.8, 2.0, 0.0, 0.0, False, 0.0)
    first, ahead = contact_times(standing, standing, standing, [behind, in_front], t, 0.0,
                                 config)
    assert first[0].tolist() == [0, 0]           # both touch the ego's footprint now
    assert ahead[0].tolist() == [False, True]
    monitor = TtcMonitor(config, BevGeometry())
    monitor.share([behind])
    assert monitor.assess(0.0, (0.0, 0.0, 0.0), 0.0).level == NONE
    monitor = TtcMonitor(config, BevGeometry())
    monitor.share([in_front])
    assert monitor.assess(0.0, (0.0, 0.0, 0.0), 0.0).level != NONE


def _lane_change(steer: float = -0.1, speed: float = 6.0) -> tuple[SharedState, np.ndarray]:
    """Return a neighbour 20 m ahead in the lane left of the ego's, steering into it."""
    model = BicycleModel()
    rollout = model.rollout(BicycleState(20.0, 3.5, 0.0, speed), [(0.0, steer)] * K)
    return SharedState(20.0, 3.5, 0.0, speed, 0.0, rollout[:, :2]), rollout


def test_a_neighbour_turning_as_its_declared_path_does_is_predicted_through_that_path():
    message, rollout = _lane_change()
    # the bicycle model's yaw rate over the plan
    yaw_rate = (rollout[-1, 2] - rollout[0, 2]) / ((K - 1) * BicycleModel().dt)
    assert math.isclose(path_curvature(message.waypoints) * message.speed, yaw_rate,
                        rel_tol=1e-3)
    config = MonitorConfig(shared_turn_time=1.0)
    (track,), _ = shared_tracks([message], 0.2, config)     # 0.2 s old: moved on by it
    assert math.isclose(track.yaw_rate, yaw_rate, rel_tol=1e-3)
    assert math.isclose(track.turn_time, 0.8) and math.isclose(track.yaw, 0.2 * yaw_rate,
                                                               rel_tol=1e-3)
    # from the message's stamp the prediction runs along the declared waypoints (within the
    # side slip of the bicycle model's centre, which the yaw as the direction leaves out)
    dt = BicycleModel().dt
    times = np.arange(1, K + 1) * dt - 0.2
    x, y, _, _, _ = predicted_motion((track,), times)
    assert np.hypot(x[0] - rollout[:, 0], y[0] - rollout[:, 1]).max() < 0.1
    # after its turn time it holds its direction
    _, _, yaw, vx, vy = predicted_motion((track,), np.array([0.8, 2.0, 4.0]))
    assert np.allclose(yaw[0], yaw[0, 0]) and np.allclose(vx[0], vx[0, 0]) \
        and np.allclose(vy[0], vy[0, 0])
    assert math.isclose(math.hypot(vx[0, 0], vy[0, 0]), message.speed)
    # off (0): straight along the path's chord, as before
    (straight,), _ = shared_tracks([message], 0.2, MonitorConfig())
    assert straight.yaw_rate == 0.0 and straight.turn_time == 0.0
    assert math.isclose(straight.yaw, path_heading(20.0, 3.5, message.waypoints, 0.0))


def test_a_path_too_short_or_broken_to_turn_has_no_curvature():
    assert path_curvature(np.zeros((0, 2))) == 0.0
    assert path_curvature(np.array([[0.0, 0.0], [1.0, 0.1]])) == 0.0          # two points
    assert path_curvature(np.array([[0.0, 0.0], [0.1, 0.0], [0.2, 0.01]])) == 0.0   # stopping
    assert path_curvature(np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [2.0, 1.0]])) == 0.0
    assert path_curvature(np.array([[0.0, 0.0], [1.0, math.nan], [2.0, 1.0]])) == 0.0
    # a quarter circle of radius 10 m, turning right
    angle = np.linspace(0.0, math.pi / 2, 12)
    arc = np.stack([10.0 * np.sin(angle), 10.0 * (np.cos(angle) - 1.0)], 1)
    assert math.isclose(path_curvature(arc), -0.1, rel_tol=0.01)


def test_a_neighbour_starting_to_merge_is_anticipated_sooner_on_its_turn():
    # the ego at 10 m/s in its lane, the neighbour 20 m ahead at 6 m/s, steering towards it:
    # on its turn the first contact comes sooner than on the chord of its 0.5 s path
    message, _ = _lane_change()
    ttc = {}
    for turn_time in (0.0, 1.0, 2.0):
        config = MonitorConfig(anticipation_ttc=5.5, shared_turn_time=turn_time)
        monitor = TtcMonitor(config, BevGeometry())
        monitor.share(shared_tracks([message], 0.0, config)[0])
        verdict = monitor.assess(0.0, (0.0, 0.0, 0.0), 10.0)
        assert verdict.level != NONE and verdict.anticipated
        assert verdict.conflict.turn_time == turn_time    # the monitor kept the turn
        ttc[turn_time] = verdict.ttc
    assert ttc[0.0] - ttc[1.0] >= 0.3 and ttc[1.0] > ttc[2.0]


def test_a_leader_whose_plan_steers_away_is_still_braked_for_as_if_it_went_straight_on():
    # the leader 20 m ahead in the ego's lane at 4 m/s, its plan steering hard left: turned
    # for 1 s it leaves the lane before the ego reaches it, straight on it does not; both
    # are assessed and the earlier contact counts
    model = BicycleModel()
    rollout = model.rollout(BicycleState(20.0, 0.0, 0.0, 4.0), [(0.0, 0.6)] * K)
    leader = SharedState(20.0, 0.0, 0.0, 4.0, 0.0, rollout[:, :2])
    config = MonitorConfig(shared_turn_time=1.0)
    (track,), _ = shared_tracks([leader], 0.0, config)
    assert track.yaw_rate > 0.3
    t = np.arange(0.0, config.horizon + 1e-9, config.time_step)
    ego = ((10.0 * t)[None], np.zeros((1, len(t))), np.zeros((1, len(t))))
    turned, _ = contact_times(*ego, [track], t, 0.0, config)
    straight, _ = contact_times(*ego, [replace(track, yaw_rate=0.0, turn_time=0.0)], t, 0.0,
                                config)
    assert straight[0, 0] < len(t) and turned[0, 0] == straight[0, 0]
    monitor = TtcMonitor(config, BevGeometry())
    monitor.share([track])
    verdict = monitor.assess(0.0, (0.0, 0.0, 0.0), 10.0)
    assert verdict.level != NONE and math.isclose(verdict.ttc, t[straight[0, 0]])


@pytest.mark.parametrize('accel, speed, ahead, expected', [
    (-6.0, 10.0, 0.0, 6.0), (-1.0, 10.0, 0.0, 1.0), (0.0, 10.0, 0.0, 0.0),
    (1.0, 10.0, 0.0, 0.0),
    (-6.0, 10.0, 1.0, 6.0),     # the plan of the step before: it begins at the stated pose
    (-6.0, 10.0, 4.0, 0.0),     # ... of three steps before
    (-6.0, 5.0, 0.0, 0.0)])     # planned from 10 m/s, stated 5 m/s: another state's plan
def test_the_declared_braking_is_read_from_the_paths_steps(accel, speed, ahead, expected):
    # a plan made at (3, 4) heading 0.5 rad; the message states a pose `ahead` metres on
    waypoints = intention_waypoints(BicycleModel(), (3.0, 4.0, 0.5), 10.0,
                                    [(accel, 0.0)] * 5)
    x, y = 3.0 + ahead * math.cos(0.5), 4.0 + ahead * math.sin(0.5)
    assert declared_braking(x, y, speed, waypoints)[0] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize('shared_decel', [False, True])
def test_a_crossing_neighbour_that_declares_braking_is_predicted_to_stop_in_the_way(
        shared_decel):
    # a neighbour 15.6 m ahead and 7.6 m to the right crosses the ego's path at 10 m/s and
    # declares braking at 6 m/s^2 (its monitor's override): it stops 8.3 m on, in the ego's
    # lane. At its stated speed it would clear the lane before the ego (9.9 m/s) gets there
    config = MonitorConfig(shared_decel=shared_decel, shared_turn_time=1.0)
    pose = (15.6, -7.6, math.pi / 2)
    braking = intention_waypoints(BicycleModel(), pose, 10.0, [(-6.0, 0.0)] * 5)
    tracks, dropped = shared_tracks([SharedState(*pose, 10.0, 0.0, braking)], 0.0, config)
    assert dropped == 0
    assert tracks[0].decel == pytest.approx(6.0 if shared_decel else 0.0)
    monitor = TtcMonitor(config, BevGeometry(0.5, 80.0, 64.0))
    empty = np.zeros((128, 128), bool)
    monitor.observe(0.0, empty, empty, (0.0, 0.0, 0.0))
    monitor.share(tracks)
    verdict = monitor.assess(0.0, (0.0, 0.0, 0.0), 9.9)
    if shared_decel:
        assert verdict.level == EMERGENCY and verdict.conflict.known
    else:
        assert verdict.level == NONE
    # predicted to stand where it stops, 8.33 m on (v^2 / 2a), and no farther
    x, y, _, vx, vy = predicted_motion(tracks, np.array([1.0, 2.0, 4.0]))
    if shared_decel:
        assert np.allclose(y[0], -7.6 + np.array([7.0, 100.0 / 12.0, 100.0 / 12.0]))
        assert np.allclose(np.hypot(vx, vy)[0], [4.0, 0.0, 0.0], atol=1e-9)


@pytest.mark.parametrize('in_cost', [True, False])
def test_the_conflict_cost_sees_declared_braking_only_when_asked(in_cost):
    # the monitor brakes for the declared braking either way; the conflict cost's tracks
    # (`moving_tracks`) carry it only with shared_decel_cost
    config = MonitorConfig(shared_decel=True, shared_decel_cost=in_cost, shared_turn_time=1.0)
    pose = (15.6, -7.6, math.pi / 2)
    braking = intention_waypoints(BicycleModel(), pose, 10.0, [(-6.0, 0.0)] * 5)
    tracks, _ = shared_tracks([SharedState(*pose, 10.0, 0.0, braking)], 0.0, config)
    monitor = TtcMonitor(config, BevGeometry(0.5, 80.0, 64.0))
    empty = np.zeros((128, 128), bool)
    monitor.observe(0.0, empty, empty, (0.0, 0.0, 0.0))
    monitor.share(tracks)
    assert monitor.assess(0.0, (0.0, 0.0, 0.0), 9.9).level == EMERGENCY
    (track,) = monitor.moving_tracks()
    assert track.decel == pytest.approx(6.0 if in_cost else 0.0)
    assert (track.x, track.y, track.vy) == (tracks[0].x, tracks[0].y, tracks[0].vy)


@pytest.mark.parametrize('to_stop', [True, False])
def test_a_declared_brake_lasts_as_long_as_its_path_unless_held_to_a_stop(to_stop):
    # a neighbour straight ahead at 10 m/s declares 2 m/s^2 for its plan's K = 5 steps and
    # is still moving at its end: held to a stop it stands after 5 s and 25 m; otherwise it
    # brakes for the 0.3 s its path's step speeds span (first to last), then holds 9.4 m/s
    config = MonitorConfig(shared_decel=True, shared_decel_to_stop=to_stop)
    pose = (20.0, 0.0, 0.0)
    plan = intention_waypoints(BicycleModel(), pose, 10.0, [(-2.0, 0.0)] * 5)
    decel, lasts = declared_braking(*pose[:2], 10.0, plan)
    assert decel == pytest.approx(2.0) and lasts == pytest.approx(0.3)
    stopping = intention_waypoints(BicycleModel(), pose, 0.5, [(-6.0, 0.0)] * 5)
    assert declared_braking(*pose[:2], 0.5, stopping)[1] == math.inf   # the path stands
    (track,), _ = shared_tracks([SharedState(*pose, 10.0, 0.0, plan)], 0.0, config)
    assert track.decel_time == (math.inf if to_stop else pytest.approx(0.3))
    x, _, _, vx, _ = predicted_motion((track,), np.array([0.3, 1.0, 6.0]))
    if to_stop:
        assert np.allclose(x[0] - 20.0, [2.91, 9.0, 25.0])
        assert np.allclose(vx[0], [9.4, 8.0, 0.0])
    else:
        assert np.allclose(x[0] - 20.0, [2.91, 2.91 + 9.4 * 0.7, 2.91 + 9.4 * 5.7])
        assert np.allclose(vx[0], [9.4, 9.4, 9.4])

"""The simulator's own drivers scored by the CALL trip rule (`background_trips`)."""
import math
from types import SimpleNamespace

from call_experiments.background_trips import approach_gap, BackgroundTrips, junction_centre
from call_learning.teacher import teacher_action, TeacherConfig
from call_sim.config import load_yaml
from call_sim.env import MultiVehicleEnv
import pytest


def _car(actor_id, x, speed, y=0.0):
    return SimpleNamespace(actor_id=actor_id, x=x, y=y, speed=speed)


def test_a_trip_opens_on_the_way_in_and_ends_reached_timed_out_or_left():
    trips = BackgroundTrips((0.0, 0.0), timeout=10.0)
    trips.call_trip_started(-100.0, 0.0, 50.0)       # CALL trips: 100 m out, 50 m to drive
    assert trips.start_distance == 100.0 and trips.length == 50.0
    # 1 drives in fast (reaches), 2 crawls (times out), 3 leaves the simulation mid-trip,
    # 4 is first seen inside the start distance and 5 drives outwards: no trip for either
    x = {1: -105.0, 2: -101.0, 3: -101.0, 4: -90.0, 5: 100.0}
    speed = {1: 10.0, 2: 1.0, 3: 10.0, 4: 10.0, 5: 10.0}
    for step in range(200):
        now = 0.1 * step
        cars = [_car(k, x[k], speed[k]) for k in x if not (k == 3 and now > 2.0)]
        trips.observe(now, 0.1, cars)
        for k in x:
            x[k] += speed[k] * 0.1       # all towards +x: 1-4 inwards, 5 outwards
    summary = trips.summary()
    assert (trips.reached, trips.timeouts, trips.left) == (1, 1, 1)
    assert summary['background_success_rate'] == 0.5
    assert summary['background_trips_ended'] == 2.0


def test_each_trip_keeps_its_approach_and_the_gap_is_taken_road_by_road():
    # two roads in: on y = 0 both reach, on y = 5 one crawls (its trip times out)
    trips = BackgroundTrips((0.0, 0.0), timeout=10.0,
                            approach=lambda x, y: 'minor' if y > 2.0 else 'major')
    trips.call_trip_started(-100.0, 0.0, 50.0)
    x = {1: -101.0, 2: -103.0, 3: -100.5}
    speed = {1: 10.0, 2: 10.0, 3: 1.0}
    for step in range(150):
        trips.observe(0.1 * step, 0.1, [_car(k, x[k], speed[k], 5.0 if k == 3 else 0.0)
                                        for k in x])
        for k in x:
            x[k] += speed[k] * 0.1
    assert trips.by_approach == {'major': (2, 2), 'minor': (0, 1)}
    assert trips.summary()['background_success_rate'] == pytest.approx(2 / 3)
    # CALL: 1 of 4 on the major road, 1 of 1 on the minor; the cut short trip does not count,
    # nor an approach the background ended no trip on
    call = [('major', 'reached'), ('major', 'timeout'), ('major', 'collision'),
            ('major', 'off_road'), ('minor', 'reached'), ('minor', 'cut_short'),
            ('ramp', 'timeout')]
    # (4 x (1/4 - 1) + 1 x (1 - 0)) / 5
    assert approach_gap(call, trips.by_approach) == pytest.approx((4 * -0.75 + 1.0) / 5)
    assert math.isnan(approach_gap([('ramp', 'reached')], trips.by_approach))
    assert math.isnan(approach_gap([('major', 'cut_short')], trips.by_approach))


def test_bad_numbers_and_maps_without_a_junction_fail_or_give_no_reference():
    with pytest.raises(ValueError, match='time limit'):
        BackgroundTrips((0.0, 0.0), timeout=0.0)
    trips = BackgroundTrips((0.0, 0.0), timeout=60.0)
    trips.observe(0.0, 0.1, [_car(1, -200.0, 10.0)])
    trips.observe(0.1, 0.1, [_car(1, -50.0, 10.0)])     # no CALL trip yet: no start distance
    assert math.isnan(trips.summary()['background_success_rate'])
    assert junction_centre(None) is None
    with MultiVehicleEnv.from_scenario({**load_yaml('scenarios/four_lane_demo.yaml'),
                                        'num_background': 0}) as env:
        assert junction_centre(env.opendrive()) is None


def test_the_simulators_drivers_cross_the_real_crossroad_within_the_time_limit():
    scenario = {**load_yaml('scenarios/crossroad.yaml'), 'num_controlled': 1,
                'num_background': 16, 'episode_steps': 2000, 'respawn_done': True}
    config = TeacherConfig()
    with MultiVehicleEnv.from_scenario(scenario) as env:
        centre = junction_centre(env.opendrive())
        assert centre is not None and math.hypot(*centre) < 1.0    # the net's centre node
        obs, _ = env.reset(seed=5)
        # the CALL trip rule (60 s), and one no vehicle can meet (150 m in 3 s)
        trips, hurried = BackgroundTrips(centre, 60.0), BackgroundTrips(centre, 3.0)
        ego = obs['hero0'].ego
        for t in (trips, hurried):
            t.call_trip_started(ego.x, ego.y, env.heroes['hero0'].route.length)
        for _ in range(900):
            actions = {r: teacher_action(o, env.action_set, config) for r, o in obs.items()}
            obs, *_ = env.step(actions)
            background = [v for v in env.vehicle_states() if not v.role_name]
            for t in (trips, hurried):
                t.observe(env.time, env.dt, background)
    assert 100.0 < trips.start_distance < 200.0
    # SUMO's drivers at a crossroad with little traffic cross in time ...
    assert trips.reached >= 3 and trips.reached > trips.timeouts
    # ... and none can in 3 s: every trip that ends times out
    assert hurried.reached == 0 and hurried.timeouts > 0

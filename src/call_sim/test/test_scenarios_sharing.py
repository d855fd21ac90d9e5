"""Scenarios where sharing matters: long background vehicles, clustered CALL vehicles, merge."""
from call_sim.config import load_yaml
from call_sim.env import MultiVehicleEnv
from call_sim.types import VehicleControl
import numpy as np
import pytest

TYPES = [{'name': 'truck', 'length': 12.0, 'width': 2.6, 'share': 0.4, 'max_speed': 11.0},
         {'name': 'bus', 'length': 15.0, 'width': 2.5, 'share': 0.2, 'max_speed': 10.0}]


def test_background_vehicles_have_their_types_sizes(make_env):
    env = make_env({'map': 'four_lane', 'num_controlled': 1, 'num_background': 60,
                    'background': {'types': TYPES}})
    obs, _ = env.reset(seed=5)
    for _ in range(3):
        obs, *_ = env.step({'hero0': VehicleControl(throttle=0.1)})
    sizes = {(round(o.length, 2), round(o.width, 2)) for o in obs['hero0'].others}
    assert sizes == {(4.6, 1.9), (12.0, 2.6), (15.0, 2.5)}
    lengths = np.array([o.length for o in obs['hero0'].others])
    # 60 draws with shares 0.4 / 0.2 / 0.4: far from all-cars and from all-trucks
    assert 10 <= np.sum(lengths == 12.0) <= 40 and 3 <= np.sum(lengths == 15.0) <= 25


def test_types_are_drawn_from_the_episode_seed(make_env):
    scenario = {'map': 'four_lane', 'num_controlled': 1, 'num_background': 30,
                'background': {'types': TYPES}}

    def boxes(env, seed):
        obs, _ = env.reset(seed=seed)
        return sorted((round(o.x, 3), round(o.y, 3), o.length) for o in obs['hero0'].others)
    env = make_env(scenario)
    first, again, other = boxes(env, 7), boxes(env, 7), boxes(env, 8)
    assert first == again and first != other


@pytest.mark.parametrize('types, match', [
    ([{'name': 'truck', 'length': 12.0}], 'exactly the keys'),
    ([{**TYPES[0], 'length': -1.0}], 'positive sizes'),
    ([{**TYPES[0], 'share': 0.7}, {**TYPES[1], 'share': 0.7}], 'sum to more than 1'),
    ([TYPES[0], TYPES[0]], 'twice'),
])
def test_bad_vehicle_types_fail_fast(types, match):
    with pytest.raises(ValueError, match=match):
        MultiVehicleEnv.from_scenario({'background': {'types': types}})


@pytest.mark.parametrize('name, spread', [('four_lane_platoon', 100.0),
                                          ('highway_merge', 420.0),
                                          ('crossroad_occluded', 330.0)])
def test_sharing_scenarios_start_the_fleet_close_together(make_env, name, spread):
    scenario = load_yaml(f'scenarios/{name}.yaml')
    env = make_env(name)
    obs, _ = env.reset()
    assert len(obs) == scenario['num_controlled']
    xy = np.array([(o.ego.x, o.ego.y) for o in obs.values()])
    assert max(np.hypot(*(a - b)) for a in xy for b in xy) <= spread
    lengths = {round(o.length, 1) for o in next(iter(obs.values())).others}
    assert max(lengths) >= 12.0  # long occluders are in the traffic
    for _ in range(5):
        obs, *_ = env.step({role: VehicleControl(throttle=0.1) for role in obs})
    assert obs


def test_highway_merge_has_a_ramp_that_joins_the_main_road(make_env):
    env = make_env({'map': 'highway_merge', 'num_controlled': 1, 'num_background': 0,
                    'route': {'length': 300.0, 'max_lane_changes': 0}})
    obs, _ = env.reset(options={'starts': {'hero0': {'edge': 'ramp', 'lane': 0, 'pos': 40.0,
                                                     'speed': 8.0}}})
    route = obs['hero0'].route
    assert route[0][1] < -20.0  # starts on the ramp, south of the main road
    hero = env.heroes['hero0']
    assert hero.route.edges[0] == 'ramp' and 'accel_lane' in hero.route.edges

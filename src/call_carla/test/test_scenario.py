"""Scenario file -> Traffic Manager calls, route planning on a real carla.Map (offline)."""
import os
import random

from call_carla.routes import choose_section, plan_routes, same_direction_lanes, SectionConfig
from call_carla.scenario import ScenarioConfig
from call_carla.traffic_manager import TrafficManagerSettings
from call_perception.opendrive import parse_lanes
import numpy as np
import pytest
import yaml

CARLA_MISSING = ('the carla client (PyPI carla==0.9.16, requirements.txt) is not installed; '
                 'scripts/setup.sh installs it')

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, '..', 'config', 'town04.yaml')
HIGHWAY = os.path.join(HERE, 'data', 'four_lane_highway.xodr')


def _scenario_dict():
    with open(CONFIG, encoding='utf-8') as handle:
        return yaml.safe_load(handle)


def test_traffic_manager_calls_from_the_scenario_file():
    carla = pytest.importorskip('carla', reason=CARLA_MISSING)
    config = ScenarioConfig.from_file(CONFIG)
    tm = config.traffic_manager
    calls = dict(tm.global_calls())
    assert calls['set_global_distance_to_leading_vehicle'] == (2.5,)
    assert calls['global_percentage_speed_difference'] == (10.0,)
    assert calls['set_random_device_seed'] == (0,)
    assert calls['set_hybrid_physics_mode'] == (True,)
    assert calls['set_hybrid_physics_radius'] == (70.0,)
    assert dict(tm.vehicle_calls())['random_left_lanechange_percentage'] == (5.0,)
    for method, _ in tm.global_calls() + tm.vehicle_calls():
        assert callable(getattr(carla.TrafficManager, method)), method  # real API names
    assert config.background == 150 and config.roles == ['hero0', 'hero1', 'hero2', 'hero3']
    assert config.fixed_delta_seconds == 0.1 and config.town == 'Town04'


@pytest.mark.parametrize('change, reason', [
    ({'traffic_manager': {'global_distance_to_leading_vehicle': -1}}, 'leading'),
    ({'traffic_manager': {'random_left_lanechange_percentage': 150}}, '0, 100'),
    ({'traffic_manager': {'hybrid_physic': True}}, 'unknown keys'),
    ({'traffic_manager': {'auto_lane_change': 'yes'}}, 'true or false'),
    ({'traffic_manager': {'seed': 'abc'}}, 'cannot read'),
    ({'background': {'count': -5}}, '>= 0'),
    ({'call_vehicles': {'count': 0, 'role_prefix': 'hero', 'blueprint': 'x'}}, 'at least one'),
    ({'carla': {'host': 'h', 'port': 1, 'timeout_s': 1, 'town': 'T'}}, 'fixed_delta_seconds'),
    ({'section': {'length_m': 50.0}}, 'exceeds'),
])
def test_bad_scenario_fails_fast(change, reason):
    data = _scenario_dict()
    for key, value in change.items():
        if key in ('traffic_manager', 'background'):
            data[key].update(value)
        else:
            data[key] = {**data[key], **value} if key == 'section' else value
    with pytest.raises(ValueError, match=reason):
        ScenarioConfig.from_mapping(data)


def test_tm_settings_reject_non_finite():
    with pytest.raises(ValueError, match='non-finite'):
        TrafficManagerSettings(hybrid_physics_radius=float('nan'))


def _highway_map():
    carla = pytest.importorskip('carla', reason=CARLA_MISSING)
    with open(HIGHWAY, encoding='utf-8') as handle:
        text = handle.read()
    return carla.Map('highway', text), text


def _distance_to_lines(point, lines):
    best = np.inf
    for line in lines:
        a, b = line[:-1], line[1:]
        ab = b - a
        t = np.clip(np.einsum('ij,ij->i', point - a, ab) / np.einsum('ij,ij->i', ab, ab), 0, 1)
        best = min(best, float(np.min(np.linalg.norm(a + ab * t[:, None] - point, axis=1))))
    return best


def test_routes_on_a_four_lane_section():
    carla_map, text = _highway_map()
    config = SectionConfig()
    rng = random.Random(3)
    start = choose_section(carla_map, config, rng)
    assert len(same_direction_lanes(start)) == 4
    roles = ['hero0', 'hero1', 'hero2', 'hero3']
    routes = plan_routes(start, roles, config, rng)
    assert [r.role for r in routes] == roles
    centre_lines = [lane.centerline for lane in parse_lanes(text, step=0.5)]
    for route in routes:
        points = route.waypoints
        assert len(points) >= config.min_route_m / config.waypoint_step_m * 0.8
        spacing = np.linalg.norm(np.diff(points, axis=0), axis=1)
        assert spacing.max() <= config.lane_change_length_m + 0.5
        # every waypoint is a lane centre (CARLA's waypoints vs our OpenDRIVE parser)
        assert max(_distance_to_lines(p, centre_lines) for p in points) < 0.05
        assert np.hypot(*(points[0] - (route.spawn.x, route.spawn.y))) < 1e-3
        low, high = config.lane_changes
        assert len(route.lane_change_at_m) <= high
        route_length = spacing.sum()
        assert route_length <= config.length_m + 1.0
    spawns = [(r.spawn.x, r.spawn.y) for r in routes]
    gaps = [np.hypot(a[0] - b[0], a[1] - b[1]) for i, a in enumerate(spawns)
            for b in spawns[i + 1:]]
    assert min(gaps) >= 3.0  # different lanes (3.5 m) or >= spawn_gap_m apart


def test_lane_changes_happen_when_required():
    carla_map, _ = _highway_map()
    config = SectionConfig(lane_changes=(2, 2))
    rng = random.Random(1)
    routes = plan_routes(choose_section(carla_map, config, rng), ['hero0', 'hero1'], config,
                         rng)
    for route in routes:
        assert len(route.lane_change_at_m) == 2
        lateral = np.abs(np.diff(route.waypoints, axis=0))
        assert lateral.max() > 3.0  # a diagonal step across one 3.5 m lane


def test_map_without_four_lanes_is_rejected():
    carla_map, _ = _highway_map()
    with pytest.raises(ValueError, match='5 same-direction lanes'):
        choose_section(carla_map, SectionConfig(lanes=5), random.Random(0))

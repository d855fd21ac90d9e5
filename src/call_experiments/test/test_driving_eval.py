"""
The vehicle core's planner (look-ahead + TTC monitor) reacts to a vehicle it knows of.

Real torch (the shipped checkpoint), the real simulator (SUMO), the real pipeline: on the
crossroad, hero0 drives north and hero1 crosses from the east, held at constant speed, so
that left alone they meet in the junction. hero0's sensor range is cut to 4 m, so it can
know of hero1 only through sharing. With sharing (CALL, every vehicle sharing: c = 0) the
planner brakes for hero1; with local observation only it learns of hero1 too late and
collides (the control that makes the first assertion mean something).
"""
from dataclasses import replace
import math

from call_experiments.driving_eval import (build_fleet, load_policy_models, planner_settings,
                                           rows_for, SeedResult, shipped_checkpoint)
from call_experiments.evaluate import collect_settings
from call_perception.bev_raster import CHANNEL_INDEX
from call_sim import driving_metrics
from call_sim.config import load_yaml
from call_sim.env import MultiVehicleEnv
from call_vehicle.vehicle_control import ControlModel
import pytest

STARTS = {'hero0': {'edge': 'south_in', 'lane': 0, 'pos': 150.0, 'speed': 8.0},
          'hero1': {'edge': 'east_in', 'lane': 0, 'pos': 144.0, 'speed': 8.0}}


@pytest.fixture(scope='module')
def loaded():
    return load_policy_models(shipped_checkpoint())


def _cross(loaded, mode, steps=90):
    scenario = {**load_yaml('scenarios/crossroad.yaml'), 'num_controlled': 2,
                'num_background': 0}
    settings = replace(collect_settings(mode, 0.0), sensor_range=4.0)
    control = ControlModel()
    log = {'levels': [], 'shared_pixels': 0, 'collision': False, 'min_speed': math.inf,
           'stopped_after_warmup': 0, 'accels': []}
    with MultiVehicleEnv.from_scenario(scenario) as env:
        obs, _ = env.reset(seed=1, options={'starts': STARTS})
        fleet = build_fleet(loaded, settings, env, planner_settings(), seed=1)
        fleet.pipeline.reset(sorted(obs))
        fleet.reset(sorted(obs))
        for k in range(steps):
            decided = fleet.step(obs, env.time, env.dt)
            ego_bev = fleet.pipeline.steps[0].bev
            log['shared_pixels'] += int((ego_bev[CHANNEL_INDEX['shared_vehicles']] > 0).sum())
            control_0, level, stopped = decided['hero0']
            log['levels'].append(level)
            log['accels'].append(env.control_model.to_accel(control_0, obs['hero0'].ego.speed)[0])
            log['stopped_after_warmup'] += int(stopped and k > 20)
            hero1 = control.to_control(0.0, 0.0, obs['hero1'].ego.speed)
            obs, _, term, trunc, infos = env.step({'hero0': control_0, 'hero1': hero1})
            log['min_speed'] = min(log['min_speed'], obs['hero0'].ego.speed)
            if infos['hero0']['collision']:
                log['collision'] = True
            if term['hero0'] or trunc['hero0'] or term['hero1']:
                break
    return log


def test_a_crossing_vehicle_known_only_through_sharing_makes_the_planner_brake(loaded):
    shared = _cross(loaded, 'lsi')
    assert shared['shared_pixels'] > 0          # hero1 entered hero0's BEV by sharing
    assert shared['stopped_after_warmup'] == 0  # it was planning, not in the stop
    # it brakes (its look-ahead or the monitor beside it) and slows well down
    assert min(shared['accels']) <= -1.0
    assert shared['min_speed'] < 4.0
    assert not shared['collision']


def test_without_sharing_the_hidden_crossing_vehicle_is_braked_for_too_late(loaded):
    local = _cross(loaded, 'local')
    shared = _cross(loaded, 'lsi')
    assert local['shared_pixels'] == 0
    assert local['collision']
    first = [next((k for k, a in enumerate(log['accels']) if k > 20 and a <= -1.0), math.inf)
             for log in (shared, local)]
    assert first[0] < first[1]


def test_rows_hold_the_mean_and_interval_over_seeds():
    def seed(collided):
        steps = [driving_metrics.VehicleStep(('hero0', 0), 0.1 * k, math.inf,
                                             collided and k == 9, -2.0 if k > 5 else 0.0)
                 for k in range(10)]
        return SeedResult(steps, ['collision' if collided else 'reached', 'cut_short'],
                          [0.5, 0.1])
    rows = {r['metric']: r for r in rows_for('lsi', [seed(False), seed(True), seed(False)])}
    success = rows['success_rate']
    assert success['mean'] == pytest.approx(2 / 3)
    assert success['ci_low'] < success['mean'] < success['ci_high']
    assert success['seeds'] == 3 and success['routes'] == 3    # cut-short trips excluded
    assert rows['collision_rate']['mean'] == pytest.approx(0.1 / 3)

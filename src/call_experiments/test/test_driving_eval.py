"""
The driving evaluation: its planner reacts to a vehicle known only through sharing.

Also its per-seed figures and their intervals over seeds.

The crossing: real torch (the shipped checkpoint), the real simulator (SUMO), the vehicle
core's pipeline, look-ahead and TTC monitor. On the crossroad hero0 drives north and hero1
crosses from the east, held at constant speed, so that they meet in the junction. hero0's
sensor range is cut to 4 m: it can know of hero1 early only through sharing. With sharing
(c = 0: every vehicle shares) it brakes about 30 m before hero1 and they pass; with local
observation only it sees hero1 at 4 m, too late, and they collide (the control run).
"""
import csv
from dataclasses import replace
import json
import math

from call_experiments import manifest
from call_experiments.driving_eval import (build_fleet, conflict_partner, drive_seed,
                                           load_policy_models, main, override_cause,
                                           own_sensors_see, paired_rows, path_conflict,
                                           rows_for, SeedResult, shipped_checkpoint,
                                           told_ids, with_fault_counts)
from call_experiments.evaluate import collect_settings
from call_experiments.experiment_config import parse_sets
from call_perception.bev_raster import CHANNEL_INDEX
from call_planner.plan_stage import planner_params
from call_planner.ttc_monitor import (Assessment, COMFORTABLE, EMERGENCY, MonitorConfig,
                                      Track)
from call_sim import driving_metrics
from call_sim.config import load_yaml
from call_sim.env import MultiVehicleEnv
from call_sim.types import VehicleState
from call_vehicle.vehicle_control import ControlModel
import pytest

STARTS = {'hero0': {'edge': 'south_in', 'lane': 0, 'pos': 150.0, 'speed': 8.0},
          'hero1': {'edge': 'east_in', 'lane': 0, 'pos': 136.0, 'speed': 8.0}}


def _cross(loaded, mode, steps=100):
    """Drive the crossing; hero0's log: braking steps, shared pixels, collision."""
    scenario = {**load_yaml('scenarios/crossroad.yaml'), 'num_controlled': 2,
                'num_background': 0}
    settings = replace(collect_settings(mode, 0.0), sensor_range=4.0)
    control = ControlModel()
    log = {'accels': [], 'shared_pixels': 0, 'collision': False, 'levels': [],
           'partners': set(), 'sees_hero1': [], 'verdicts': []}
    with MultiVehicleEnv.from_scenario(scenario) as env:
        obs, _ = env.reset(seed=1, options={'starts': STARTS})
        fleet = build_fleet(loaded, settings, env, planner_params(), seed=1)
        fleet.pipeline.reset(sorted(obs))
        fleet.reset(sorted(obs))
        for _ in range(steps):
            decided = fleet.step(obs, env.time, env.dt)
            log['verdicts'].append(fleet.verdicts.get('hero0'))
            bev = fleet.pipeline.steps[0].bev
            log['shared_pixels'] += int((bev[CHANNEL_INDEX['shared_vehicles']] > 0).sum())
            command, level, stopped = decided['hero0']
            accel = env.control_model.to_accel(command, obs['hero0'].ego.speed)[0]
            log['accels'].append(None if stopped else accel)     # warm-up stops left out
            log['levels'].append(level)
            hero1 = control.to_control(0.0, 0.0, obs['hero1'].ego.speed)
            obs, _, term, trunc, infos = env.step({'hero0': command, 'hero1': hero1})
            # whom hero0's TTC is with, and whether its own sensors see hero1
            log['partners'].add(conflict_partner(infos['hero0']))
            log['hero1_id'] = obs['hero1'].ego.actor_id
            log['sees_hero1'].append(log['hero1_id']
                                     in own_sensors_see(fleet.pipeline, obs['hero0']))
            if infos['hero0']['collision']:
                log['collision'] = True
                break
            if term['hero0'] or trunc['hero0'] or term['hero1']:
                break
    log['first_brake'] = next((k for k, a in enumerate(log['accels'])
                               if a is not None and a <= -1.0), math.inf)
    return log


def test_a_crossing_vehicle_known_only_through_sharing_makes_the_planner_brake():
    loaded = load_policy_models(shipped_checkpoint())
    shared, local = _cross(loaded, 'lsi'), _cross(loaded, 'local')
    # control: without sharing hero0 learns of hero1 too late and they collide
    assert local['shared_pixels'] == 0 and local['collision']
    # hero1 is the partner of hero0's conflict; hero0's own 4 m sensors see it only at the end
    assert local['partners'] - {None} == {local['hero1_id']}
    assert local['sees_hero1'][-1] and not any(local['sees_hero1'][:10])
    # with sharing hero1 is in hero0's BEV, hero0 brakes earlier, and they pass
    assert shared['shared_pixels'] > 0
    assert math.isfinite(shared['first_brake'])
    assert shared['first_brake'] + 10 <= local['first_brake']      # >= 1 s earlier
    assert not shared['collision']
    # the first brake is the monitor's anticipation for hero1, known only through sharing,
    # before hero0 sees it (the look-ahead's own braking for such a vehicle, whose TTC
    # threshold is below the anticipation's: test_shared_tracks)
    first = shared['first_brake']
    verdict = shared['verdicts'][first]
    assert shared['levels'][first] == COMFORTABLE and verdict.anticipated
    assert verdict.conflict.shared_only and not shared['sees_hero1'][first]


def test_a_short_real_run_records_every_vehicle_step_and_the_warm_up_stops():
    loaded = load_policy_models(shipped_checkpoint())
    result = drive_seed(loaded, 'lsi', 'four_lane_demo', 3000, 20, planner_params(), 50.0,
                        60.0)
    assert len(result.steps) == 4 * 20              # 4 CALL vehicles, every step recorded
    summary = result.summary()
    # the world model needs K steps of E before a state is valid: the warm-up stops
    assert 0.0 < summary['stop_share'] < 1.0
    assert summary['trips'] == len(result.outcomes) >= 4
    # a road without a junction has no reference of the simulator's drivers
    assert 'background_success_rate' not in summary


def test_at_a_junction_the_simulators_drivers_are_scored_by_the_call_trip_rule():
    loaded = load_policy_models(shipped_checkpoint())
    result = drive_seed(loaded, 'lsi', 'crossroad_occluded', 3000, 30, planner_params(), 50.0,
                        60.0)
    summary = result.summary()
    # their trips begin as far out as the 8 CALL trips that began at the start (the
    # scenario's routes start about 125-155 m from the junction's centre) ...
    assert 100.0 < summary['background_trip_start_m'] < 200.0
    # ... and none ends in 3 s: a route's length takes longer, the time limit is 60 s
    assert summary['background_trips_ended'] == 0.0
    assert math.isnan(summary['background_success_rate'])
    assert math.isnan(summary['success_minus_background_by_approach'])
    # each trip keeps the road it began on: the crossroad's four roads in
    approaches = {t['approach'] for t in result.trips}
    assert approaches <= {'north_in', 'south_in', 'east_in', 'west_in'} and len(approaches) > 1
    # ... and the road its route ends on: one of the four roads out
    exits = {t['exit'] for t in result.trips}
    assert exits <= {'north_out', 'south_out', 'east_out', 'west_out'}


def test_a_threshold_sweep_counts_the_neighbours_and_bytes_each_ego_used(tmp_path):
    # paper Fig. 19/20: c = 0 shares with every vehicle in range, a higher c with fewer
    assert main(['--scenario', 'four_lane_demo', '--modes', 'lsi', '--seeds', '3000',
                 '--steps', '20', '--c', '0', '1e9', '--out', str(tmp_path)]) == 0
    with open(tmp_path / 'driving_four_lane_demo_c_sweep.csv', encoding='utf-8') as stream:
        rows = {(float(r['c']), r['metric']): float(r['mean']) for r in csv.DictReader(stream)}
    shared, gated = rows[(0.0, 'mean_neighbours')], rows[(1e9, 'mean_neighbours')]
    assert shared > gated >= 0.0
    # every neighbour used costs one signed LatentMessage: 64 B of signature and more
    per_message = rows[(0.0, 'call_bytes_per_ego_step')] / shared
    assert 64 < per_message < 2000
    assert (tmp_path / 'fig19_return_vs_c.png').is_file()
    assert (tmp_path / 'fig20_bandwidth_vs_c.png').is_file()
    # each per-seed summary names the model that drove (Table 6 has one per mode)
    summary = json.loads((tmp_path / 'driving_runs' / 'four_lane_demo_lsi_c0_3000.json')
                         .read_text(encoding='utf-8'))
    assert summary['model'] == {'checkpoint': 'call_small64g8c.pt',
                                'sha256': manifest.sha256(shipped_checkpoint())}


def test_planner_overrides_are_typed_and_unknown_names_fail():
    assert planner_params({'route_weight': '1'})['route_weight'] == 1.0
    with pytest.raises(ValueError):
        planner_params({'route_wieght': '1'})
    with pytest.raises(ValueError):
        planner_params({'K': 'five'})


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


def test_a_collision_counts_against_the_ego_unless_it_stood_or_was_struck_from_behind():
    def hit(ego_speed, ahead):
        return {'ego_speed': ego_speed, 'other_speed': 6.0, 'ahead_m': ahead, 'left_m': 0.0}
    trips = [{'outcome': 'collision', 'hit': [hit(0.0, -4.5)]},          # standing
             {'outcome': 'collision', 'hit': [hit(2.0, -4.5)]},          # from behind
             {'outcome': 'collision', 'hit': [hit(2.0, -4.5), hit(8.0, 4.5)]},   # and ahead
             {'outcome': 'reached'}]
    summary = {'vehicle_steps': 1000, 'collisions': 3.0}
    counted = with_fault_counts(summary, trips)
    assert counted['at_fault_collisions'] == 1.0
    assert counted['at_fault_collision_rate'] == pytest.approx(0.001)
    assert counted['vehicle_steps'] == 1000 and 'at_fault_collisions' not in summary
    # no geometry for a collision, or trips that are not the summary's: unknown, not zero
    for bad_trips in (trips + [{'outcome': 'collision'}], trips[:2]):
        assert math.isnan(with_fault_counts(summary, bad_trips)['at_fault_collisions'])


def test_scenario_overrides_are_dotted_yaml_and_unknown_keys_fail(tmp_path, capsys):
    assert parse_sets(['background.yield_to_controlled=true', 'background.yield_decel=3',
                       'trip_time_limit=30.5']) == {
        'background': {'yield_to_controlled': True, 'yield_decel': 3}, 'trip_time_limit': 30.5}
    with pytest.raises(ValueError):
        parse_sets(['background.yield_to_controlled'])
    # a typo fails before anything runs, with the known keys named
    assert main(['--scenario', 'crossroad_occluded', '--sim-set', 'background.yeild=1',
                 '--out', str(tmp_path)]) == 2
    assert 'yield_to_controlled' in capsys.readouterr().err


def test_paired_rows_compare_seed_by_seed_on_the_seeds_both_modes_ran():
    lsi = {1: {'success_rate': 1.0, 'collision_rate': 0.0},
           2: {'success_rate': 0.9, 'collision_rate': 0.0},
           3: {'success_rate': 0.8, 'collision_rate': 0.002},
           4: {'success_rate': 0.0, 'collision_rate': 0.5}}      # local did not run seed 4
    local = {1: {'success_rate': 0.9, 'collision_rate': 0.001},
             2: {'success_rate': 0.9, 'collision_rate': 0.001},
             3: {'success_rate': 0.6, 'collision_rate': 0.001}}
    rows = {r['metric']: r for r in paired_rows('lsi', {'lsi': lsi, 'local': local})}
    success = rows['success_rate']
    assert (success['mode'], success['reference'], success['seeds']) == ('local', 'lsi', 3)
    assert success['mean'] == pytest.approx(0.1)
    assert success['ci_low'] < 0.1 < success['ci_high']
    assert success['reference_better'] == 2                   # the tie on seed 2 is not
    collisions = rows['collision_rate']                       # lower is better
    assert collisions['mean'] == pytest.approx(-0.001 / 3)
    assert collisions['reference_better'] == 2
    assert rows['mean_trip_return']['seeds'] == 0             # a metric neither summary has


def test_override_causes_tell_holds_and_where_the_other_vehicle_is():
    config = MonitorConfig()
    ego = (10.0, 5.0, math.pi / 2)             # heading north (+y)

    def cause(level, ttc, x, y, shared=False):
        other = Track(x, y, 0.0, 4.8, 2.0, 0.0, 0.0, shared)
        return override_cause(Assessment(ttc, level, 1.0, other), ego, config)
    assert cause(COMFORTABLE, 3.5, 10.0, 20.0) == 'held'       # above its threshold
    assert cause(EMERGENCY, 2.0, 10.0, 20.0) == 'held'
    held_for = Track(20.0, 20.0, math.pi, 4.8, 2.0, 0.0, 0.0, False, age=0.0)
    assert override_cause(Assessment(math.inf, COMFORTABLE, 1.0, held_for, giving_way=True),
                          ego, config) == 'give_way'   # a neighbour's, through a clear step
    assert cause(EMERGENCY, 1.0, 10.5, 20.0) == 'same_lane'
    assert cause(COMFORTABLE, 2.0, 13.5, 12.0, shared=True) == 'next_lane_shared'
    assert cause(COMFORTABLE, 2.0, 6.5, 3.0) == 'behind'
    # the anticipation of a shared-only crossing vehicle, below its own threshold, or held
    early = replace(config, anticipation_ttc=5.5)
    crossing = Track(20.0, 30.0, math.pi, 4.8, 2.0, -8.0, 0.0, True)
    assert override_cause(Assessment(5.0, COMFORTABLE, 1.0, crossing, True), ego,
                          early) == 'anticipation_shared'
    assert override_cause(Assessment(5.6, COMFORTABLE, 1.0, crossing, True), ego,
                          early) == 'held'


@pytest.mark.parametrize('leader', [False, True])
def test_the_path_conflict_is_where_the_held_motions_meet(leader):
    # the crossing at constant speeds collides; path_conflict, from the simulator's states
    # at the start, names hero1 and about the time of that collision. A leader in hero0's
    # lane at hero0's speed never meets it: no path conflict
    starts = {'hero0': STARTS['hero0'],
              'hero1': {'edge': 'south_in', 'lane': 0, 'pos': 170.0, 'speed': 8.0}
              if leader else {**STARTS['hero1'], 'pos': 144.0}}
    scenario = {**load_yaml('scenarios/crossroad.yaml'), 'num_controlled': 2,
                'num_background': 0}
    control = ControlModel()
    with MultiVehicleEnv.from_scenario(scenario) as env:
        obs, _ = env.reset(seed=1, options={'starts': starts})
        start = env.time
        found = [path_conflict(obs['hero0'], env.dt)]
        collided = math.inf
        for _ in range(90):
            obs, _, term, _, infos = env.step({r: control.to_control(0.0, 0.0, o.ego.speed)
                                               for r, o in obs.items()})
            found.append(path_conflict(obs['hero0'], env.dt))
            if infos['hero0']['collision']:
                collided = env.time - start
                break
        hero1 = obs['hero1'].ego.actor_id
    if leader:
        assert not math.isfinite(collided)
        assert all(t == math.inf and partner is None for t, partner in found)
        return
    assert math.isfinite(collided)
    first = next(k for k, (t, _) in enumerate(found) if math.isfinite(t))
    ttc, partner = found[first]
    assert partner == hero1
    # it begins 6 s (the convention) before they touch, give or take the footprints' margin
    assert 5.0 <= collided - first * env.dt <= 6.5
    assert abs(first * env.dt + ttc - collided) <= 0.6


def test_told_ids_are_the_vehicles_a_shared_only_track_stands_on():
    others = [VehicleState(7, '', 10.0, 0.0, 0.0, 5.0, 4.8, 2.0, 0.0),
              VehicleState(8, '', 40.0, 0.0, 0.0, 5.0, 4.8, 2.0, 0.0)]
    shared = Track(11.0, 1.0, 0.0, 4.8, 2.0, 5.0, 0.0, True)
    seen = Track(40.0, 0.5, 0.0, 4.8, 2.0, 5.0, 0.0, False)
    assert told_ids([shared, seen], others, 3.0) == frozenset({7})
    assert told_ids([seen], others, 3.0) == frozenset()

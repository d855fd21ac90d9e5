"""MultiVehicleEnv on the real SUMO engine: determinism, collisions, TTC, lanes, routes."""
import math
import subprocess
import sys
import textwrap

from call_sim.config import load_yaml
from call_sim.env import MultiVehicleEnv
from call_sim.types import AgentObservation
from call_vehicle.actions import ActionSet
from call_vehicle.vehicle_control import VehicleControl
from call_vehicle.vehicle_model import BicycleModel, BicycleState
import numpy as np
import pytest

VEHICLE = load_yaml('vehicle.yaml')
STRAIGHT = {'map': 'four_lane', 'num_controlled': 2, 'num_background': 0, 'seed': 3,
            'route': {'max_lane_changes': 0}}


def _pattern(step, role):
    return (step * 7 + int(role[4:]) * 3) % 15


def _trajectory(env, seed, steps=60):
    obs, _ = env.reset(seed=seed)
    rows = []
    for t in range(steps):
        if not env.agents:
            break
        obs, *_ = env.step({a: _pattern(t, a) for a in env.agents})
        for role in sorted(obs):
            o = obs[role]
            rows.append([o.time, o.ego.x, o.ego.y, o.ego.yaw, o.ego.speed]
                        + [v for s in o.others for v in (s.actor_id, s.x, s.y, s.speed)])
    return rows


def test_same_seed_gives_identical_trajectories(make_env):
    env = make_env('four_lane_30')
    first = _trajectory(env, seed=5)
    second = _trajectory(env, seed=5)
    other = _trajectory(env, seed=6)
    assert len(first) > 0 and first == second
    assert first != other


def test_observation_contract(make_env):
    env = make_env('four_lane_demo')
    obs, infos = env.reset()
    assert env.agents == ['hero0', 'hero1', 'hero2', 'hero3']
    o = obs['hero0']
    assert isinstance(o, AgentObservation) and o.ego.role_name == 'hero0'
    assert o.route.ndim == 2 and o.route.shape[1] == 2 and len(o.route) >= 2
    assert all(s.actor_id != o.ego.actor_id for s in o.others)
    expected = {'collision', 'off_road', 'ttc', 'jerk', 'reached', 'reward_terms'}
    assert expected <= set(infos['hero0'])
    lanes = env.lanes()
    assert len(lanes) == 4 and all(lane.centerline.shape[1] == 2 for lane in lanes)
    assert env.opendrive().lstrip().startswith('<?xml') and '<OpenDRIVE' in env.opendrive()


def test_ttc_at_reset_matches_hand_computation_and_collision_is_recorded(make_env):
    env = make_env(STRAIGHT)
    starts = {'hero0': {'edge': 'main', 'lane': 1, 'pos': 100.0, 'speed': 10.0},
              'hero1': {'edge': 'main', 'lane': 1, 'pos': 130.0, 'speed': 0.0}}
    _, infos = env.reset(options={'starts': starts})
    # bumper gap 30 - 4.8 = 25.2 m closing at 10 m/s
    assert infos['hero0']['ttc'] == pytest.approx(2.52, abs=1e-6)
    assert infos['hero1']['ttc'] == pytest.approx(2.52, abs=1e-6)
    collided = None
    for _ in range(60):
        _, rewards, terminations, _, infos = env.step(
            {'hero0': VehicleControl(throttle=1.0), 'hero1': VehicleControl(brake=1.0)})
        if infos['hero0']['collision']:
            collided = infos
            break
    assert collided is not None, 'driving straight into a stopped vehicle must collide'
    assert collided['hero0']['collided_with'] == [2]
    assert collided['hero1']['collision'] and collided['hero0']['ttc'] == 0.0
    assert collided['hero0']['reward_terms']['safe'] == -1.0
    assert terminations == {'hero0': True, 'hero1': True} and env.agents == []


def test_lane_change_with_discrete_actions_in_env(make_env):
    env = make_env({**STRAIGHT, 'num_controlled': 1})
    actions = ActionSet.from_config(VEHICLE['actions'])
    model = BicycleModel.from_config(VEHICLE['bicycle'])
    # find the hold length of steer +0.2 that moves one lane at 7.5 m/s with the pure model
    plan = None
    for hold in range(1, 15):
        seq = [(0.0, 0.2)] * hold + [(0.0, 0.0)] * 12 + [(0.0, -0.2)] * hold + [(0.0, 0.0)] * 5
        rows = model.rollout(BicycleState(0.0, 0.0, 0.0, 7.5), seq)
        if abs(rows[-1, 1] - 3.5) < 0.6:
            plan = seq
            break
    assert plan is not None
    _, infos = env.reset(options={'starts': {'hero0': {'edge': 'main', 'lane': 1, 'pos': 100.0,
                                                       'speed': 7.5}}})
    assert infos['hero0']['lane_id'] == 'main_1'
    for accel, steer in plan:
        _, _, term, _, infos = env.step({'hero0': actions.index(accel, steer)})
        assert not infos['hero0']['off_road'] and not term['hero0']
    assert infos['hero0']['lane_id'] == 'main_2'


def test_off_road_is_detected(make_env):
    env = make_env({**STRAIGHT, 'num_controlled': 1})
    env.reset(options={'starts': {'hero0': {'edge': 'main', 'lane': 3, 'pos': 100.0,
                                            'speed': 8.0}}})
    for _ in range(80):
        _, _, term, _, infos = env.step({'hero0': VehicleControl(throttle=0.1, steer=0.6)})
        if infos['hero0']['off_road']:
            break
    assert infos['hero0']['off_road'] and term['hero0']


def test_malformed_commands_are_rejected_or_clamped(make_env):
    env = make_env({**STRAIGHT, 'num_controlled': 1})
    env.reset(options={'starts': {'hero0': {'edge': 'main', 'lane': 1, 'pos': 100.0,
                                            'speed': 5.0}}})
    env.step({'hero0': VehicleControl(throttle=0.5)})
    speed = env.step({'hero0': VehicleControl(throttle=float('nan'))})[0]['hero0'].ego.speed
    _, _, _, _, infos = env.step({'hero0': VehicleControl(throttle=float('inf'), brake=0.0)})
    assert 'rejected' in infos['hero0']['command_issues'][0]
    # the last valid command (throttle 0.5) is kept: speed keeps rising
    assert env.step({})[0]['hero0'].ego.speed > speed
    _, _, _, _, infos = env.step({'hero0': VehicleControl(throttle=3.0, steer=-7.0)})
    assert len(infos['hero0']['command_issues']) == 2
    assert env.command_issues == {'rejected': 2, 'clamped': 1}


def test_route_is_replanned_every_k_steps_and_destination_reached(make_env):
    env = make_env({**STRAIGHT, 'num_controlled': 1, 'K': 5,
                    'route': {'max_lane_changes': 0, 'length': 60.0}})
    obs, _ = env.reset(options={'starts': {'hero0': {'edge': 'main', 'lane': 2, 'pos': 50.0,
                                                     'speed': 8.0}}})
    route, replans = obs['hero0'].route, 0
    for t in range(1, 120):
        obs, _, term, _, infos = env.step({'hero0': VehicleControl(throttle=0.05)})
        if term['hero0']:
            break
        changed = not np.array_equal(obs['hero0'].route, route)
        assert not changed or t % 5 == 0, f'route changed between re-plans at step {t}'
        replans += changed
        route = obs['hero0'].route
    assert replans >= 10
    assert infos['hero0']['reached'] and term['hero0']
    assert infos['hero0']['reward_terms']['time'] > 0.0


@pytest.mark.parametrize('scenario', ['two_lane', 'crossroad'])
def test_generalisation_maps_follow_routes(make_env, scenario):
    """A pure-pursuit driver follows the published waypoints on the unseen maps."""
    env = make_env({**load_yaml(f'scenarios/{scenario}.yaml'), 'num_background': 10})
    obs, _ = env.reset()
    wheelbase, max_steer = VEHICLE['bicycle']['wheelbase'], VEHICLE['bicycle']['max_steer_angle']
    progress = dict.fromkeys(env.agents, 0.0)
    for _ in range(120):
        commands = {}
        for role, o in obs.items():
            if role not in env.agents:
                continue
            ahead = [p for p in o.route if math.hypot(p[0] - o.ego.x, p[1] - o.ego.y) > 6.0]
            target = ahead[0] if ahead else o.route[-1]
            alpha = math.atan2(target[1] - o.ego.y, target[0] - o.ego.x) - o.ego.yaw
            alpha = math.atan2(math.sin(alpha), math.cos(alpha))
            steer = math.atan(2 * wheelbase * math.sin(alpha) / 6.0) / max_steer
            commands[role] = VehicleControl(throttle=0.05, steer=max(-1.0, min(1.0, steer)))
        obs, _, term, _, infos = env.step(commands)
        for role, info in infos.items():
            assert not info['off_road'], f'{role} left the road on {scenario}'
            progress[role] = info['progress']
        if not env.agents:
            break
    assert min(progress.values()) > 30.0


def test_only_one_env_per_process(make_env):
    env = make_env(STRAIGHT)
    with pytest.raises(RuntimeError, match='one\\s+simulation per process'):
        MultiVehicleEnv.from_scenario(STRAIGHT)
    env.close()
    second = make_env(STRAIGHT)
    second.reset()
    assert second.agents == ['hero0', 'hero1']


def test_bad_scenarios_fail_fast():
    with pytest.raises(ValueError, match='unknown config key'):
        MultiVehicleEnv.from_scenario({'mapp': 'four_lane'})
    with pytest.raises(ValueError, match='num_background'):
        MultiVehicleEnv.from_scenario({'num_background': 1000})
    with pytest.raises(FileNotFoundError, match='unknown map'):
        MultiVehicleEnv.from_scenario({'map': 'atlantis'})
    with pytest.raises(FileNotFoundError):
        MultiVehicleEnv.from_scenario('no_such_scenario')


def test_respawn_keeps_the_agent_with_a_new_route(make_env):
    env = make_env({**STRAIGHT, 'num_controlled': 1, 'num_background': 5, 'respawn_done': True,
                    'route': {'max_lane_changes': 0, 'length': 40.0}})
    env.reset(options={'starts': {'hero0': {'edge': 'main', 'lane': 0, 'pos': 50.0,
                                            'speed': 10.0}}})
    for _ in range(100):
        obs, _, term, _, infos = env.step({'hero0': VehicleControl(throttle=0.05)})
        if term['hero0']:
            break
    assert infos['hero0']['reached'] and infos['hero0']['respawned']
    assert env.agents == ['hero0']
    after, *_ = env.step({})
    assert math.hypot(after['hero0'].ego.x - obs['hero0'].ego.x,
                      after['hero0'].ego.y - obs['hero0'].ego.y) > 5.0
    assert after['hero0'].route.shape[1] == 2


def test_a_trip_past_the_time_limit_ends_as_a_time_out_and_respawns(make_env):
    env = make_env({**STRAIGHT, 'num_controlled': 1, 'num_background': 5, 'respawn_done': True,
                    'trip_time_limit': 1.0, 'route': {'max_lane_changes': 0}})
    env.reset(options={'starts': {'hero0': {'edge': 'main', 'lane': 0, 'pos': 50.0,
                                            'speed': 0.0}}})
    ends = []
    for k in range(25):         # standing still: it cannot arrive
        _, _, term, _, infos = env.step({'hero0': VehicleControl(brake=1.0)})
        if term['hero0']:
            ends.append((k, infos['hero0']['timeout'], infos['hero0']['respawned']))
    # every 1 s of simulation time (10 steps), a time out with a respawn; never before
    assert ends == [(9, True, True), (19, True, True)]
    assert env.agents == ['hero0']


def test_reset_right_after_a_respawn(make_env):
    # a training collector ends its episode on the step that respawned a vehicle: the
    # respawn's pending moveToXY used to crash SUMO's first step after load() (SIGSEGV; it
    # took traffic around: 40 background vehicles here)
    env = make_env({**STRAIGHT, 'num_controlled': 1, 'num_background': 40, 'respawn_done': True,
                    'route': {'max_lane_changes': 0, 'length': 40.0}})
    env.reset(options={'starts': {'hero0': {'edge': 'main', 'lane': 0, 'pos': 50.0,
                                            'speed': 10.0}}})
    for _ in range(100):
        _, _, term, _, infos = env.step({'hero0': VehicleControl(throttle=0.05)})
        if term['hero0']:
            break
    assert infos['hero0']['respawned']
    obs, _ = env.reset(seed=4)
    after, *_ = env.step({})
    assert env.step_count == 1 and after['hero0'].ego.speed > 0.0


def test_start_window_keeps_the_fleet_on_one_stretch(make_env):
    env = make_env({**STRAIGHT, 'num_controlled': 6, 'num_background': 10,
                    'route': {'start_window': [100.0, 180.0]}})
    obs, _ = env.reset(seed=3)
    starts = [o.route[0] for o in obs.values()]
    spread = max(np.hypot(*(a - b)) for a in starts for b in starts)
    assert spread <= 80.0 + 8.0  # window length + lane offsets
    with pytest.raises(ValueError, match='start_window'):
        MultiVehicleEnv.from_scenario({**STRAIGHT, 'route': {'start_window': [5.0, 1.0]}})


def test_a_respawn_may_leave_a_full_start_window_but_a_reset_may_not(make_env):
    # the fallback of a respawn in dense traffic: a draw outside the window, on a source edge
    env = make_env({**STRAIGHT, 'route': {'start_window': [100.0, 101.0]}})
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    inside = [env.planner.sample(rng).start_pos for _ in range(20)]
    anywhere = [env.planner.sample(rng, in_window=False).start_pos for _ in range(20)]
    assert all(100.0 <= s <= 101.0 for s in inside)
    assert any(not 100.0 <= s <= 101.0 for s in anywhere)


def test_a_respawn_without_a_free_start_waits_outside_and_enters_when_one_frees(make_env):
    # every start is taken by a standing CALL vehicle (7 m apart on all four lanes of the
    # 40 m start range): hero0 arrives, finds no free start, and waits instead of ending the
    # run; once the others drive off it enters on a start of that range
    import libsumo
    route = {'max_lane_changes': 0, 'length': 40.0, 'start_margin': 1900.0}
    blockers = [(lane, pos) for lane in range(4) for pos in np.arange(1896.0, 1946.0, 7.0)]
    env = make_env({**STRAIGHT, 'num_controlled': 1 + len(blockers), 'num_background': 0,
                    'respawn_done': True, 'route': route})
    starts = {'hero0': {'edge': 'main', 'lane': 0, 'pos': 1000.0, 'speed': 10.0}}
    starts.update({f'hero{i + 1}': {'edge': 'main', 'lane': lane, 'pos': float(pos),
                                    'speed': 0.0} for i, (lane, pos) in enumerate(blockers)})
    env.reset(options={'starts': starts})
    stand = {role: VehicleControl(brake=1.0) for role in starts if role != 'hero0'}
    waited = 0
    for _ in range(80):
        _, _, term, _, infos = env.step({'hero0': VehicleControl(throttle=0.05), **stand})
        if infos['hero0']['waiting']:
            waited += 1
            assert not term['hero0'] and 'hero0' not in libsumo.vehicle.getIDList()
    assert waited >= 30 and infos['hero0']['waiting']      # it arrived, then kept waiting
    go = {role: VehicleControl(throttle=1.0) for role in stand}
    for _ in range(100):
        obs, _, term, _, infos = env.step({'hero0': VehicleControl(brake=1.0), **go})
        if not infos['hero0']['waiting']:
            break
    assert infos['hero0']['respawned'] and not term['hero0']
    assert 'hero0' in libsumo.vehicle.getIDList()
    assert 1890.0 <= obs['hero0'].ego.x - env.road.net.getEdge('main').getFromNode() \
        .getCoord()[0] <= 1950.0
    after, *_ = env.step({'hero0': VehicleControl(brake=1.0), **go})
    assert not infos['hero0']['waiting'] and env.agents[0] == 'hero0'


def test_a_respawn_keeps_its_clearance_from_a_truck_s_rear():
    # every background vehicle a 12 m truck: a respawned CALL vehicle starts clear of each
    # truck's whole length, not only of its centre (a truck's centre 8 m away put its rear
    # on the new vehicle, a collision at the respawn)
    scenario = {**STRAIGHT, 'num_controlled': 1, 'num_background': 60, 'respawn_done': True,
                'trip_time_limit': 0.2,
                'route': {'max_lane_changes': 0, 'start_window': [100.0, 200.0],
                          'spawn_clearance': 8.0},
                'background': {'types': [{'name': 'truck', 'length': 12.0, 'width': 2.6,
                                          'share': 1.0, 'max_speed': 11.0}]}}
    env = MultiVehicleEnv.from_scenario(scenario)
    try:
        env.reset(seed=5)
        need = env.vehicle_length + 3.0
        nearest = []
        for _ in range(80):
            _, _, term, _, infos = env.step({'hero0': VehicleControl(brake=1.0)})
            if infos['hero0']['respawned']:
                obs = env.observe('hero0')
                ego = obs.ego
                gaps = [math.hypot(o.x - ego.x, o.y - ego.y) - 0.5 * (o.length - ego.length)
                        for o in obs.others]
                nearest.append(min(gaps))
        assert len(nearest) >= 30
        assert min(nearest) >= need - 1e-6
    finally:
        env.close()


def test_a_new_simulation_after_closing_one_that_just_respawned_a_vehicle_runs():
    # a respawn places its vehicle with moveToXY, which libsumo keeps pending (with a raw
    # pointer) until the next step; closing before that step once crashed the next
    # simulation's first step (a segfault: run apart, so it fails this test, not the session)
    script = textwrap.dedent("""
        from call_sim.env import MultiVehicleEnv
        from call_vehicle.vehicle_control import VehicleControl
        scenario = {'map': 'four_lane', 'num_controlled': 1, 'num_background': 20, 'seed': 3,
                    'respawn_done': True, 'trip_time_limit': 0.2}
        for episode in range(2):
            env = MultiVehicleEnv.from_scenario(scenario)
            env.reset(seed=5)
            for _ in range(10):      # a time out and its respawn every 0.2 s, also last
                env.step({'hero0': VehicleControl(brake=1.0)})
            env.close()
        print('both simulations ran')
        """)
    done = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert 'both simulations ran' in done.stdout


def test_a_parked_vehicle_stands_still_is_observed_and_a_start_can_fix_its_next_edge(make_env):
    """Mutation: no setSpeed(0) for parked vehicles (they drive off), or `next` ignored."""
    env = make_env({'map': 'crossroad', 'num_controlled': 1, 'num_background': 0, 'seed': 3})
    parked = [{'edge': 'south_in', 'lane': 0, 'pos': 188.5, 'length': 12.0, 'width': 2.6}]
    for turn in ('north_out', 'west_out', 'north_out', 'west_out'):   # the draw would vary
        obs, _ = env.reset(seed=3, options={
            'starts': {'hero0': {'edge': 'south_in', 'lane': 1, 'pos': 120.0, 'speed': 5.0,
                                 'next': turn}}, 'parked': parked})
        assert env.heroes['hero0'].route.edges == ('south_in', turn)
    for _ in range(30):
        obs, *_ = env.step({'hero0': VehicleControl(throttle=0.3)})
    truck = [o for o in obs['hero0'].others if not o.role_name]
    assert len(truck) == 1 and truck[0].length == 12.0 and truck[0].width == 2.6
    # its front at 188.5 m along the edge that starts at y = -200, heading north
    assert truck[0].speed == 0.0 and math.isclose(truck[0].y, -200.0 + 188.5 - 6.0,
                                                  abs_tol=0.05)
    with pytest.raises(ValueError, match='does not lead to'):
        env.reset(seed=3, options={'starts': {'hero0': {'edge': 'south_in', 'lane': 1,
                                                        'pos': 120.0, 'speed': 5.0,
                                                        'next': 'south_out'}}})
    with pytest.raises(ValueError, match='length and width'):
        env.reset(seed=3, options={'parked': [dict(parked[0], length=0.0)]})


def test_a_held_vehicle_keeps_its_speed_along_its_route_and_a_start_can_fix_its_lane_changes(
        make_env):
    """Mutation: held vehicles added at speed 0, or a start's `lane_changes` ignored: fails."""
    env = make_env({'map': 'highway_merge', 'num_controlled': 1, 'num_background': 0,
                    'seed': 3, 'route': {'max_lane_changes': 0}})
    held = [{'route': ['main_in', 'accel_lane'], 'lane': 0, 'pos': 230.0, 'speed': 8.0,
             'length': 12.0, 'width': 2.6}]
    start = {'edge': 'accel_lane', 'lane': 0, 'pos': 20.0, 'speed': 6.0,
             'lane_changes': {'accel_lane': [(40.0, 2)]}}
    obs, _ = env.reset(seed=3, options={'starts': {'hero0': start}, 'held': held})
    route = env.heroes['hero0'].route

    # lane 0 (y = -8.75) up to the change at x = 249.17 + 40, lane 2 (y = -1.75) after it
    def y_at(x):
        return float(np.interp(x, route.points[:, 0], route.points[:, 1]))
    assert math.isclose(y_at(249.17 + 38.0), -8.75, abs_tol=0.01)
    assert math.isclose(y_at(249.17 + 74.0), -1.75, abs_tol=0.01)
    for _ in range(30):
        obs, *_ = env.step({'hero0': VehicleControl()})
    truck = [o for o in obs['hero0'].others if not o.role_name]
    assert len(truck) == 1 and truck[0].length == 12.0
    # 3 s at 8 m/s from its front at 230 m along main_in: over the junction, on the main
    # road's right lane of accel_lane (lane 1, y = -5.25), centre half a length behind
    assert truck[0].speed == 8.0
    assert math.isclose(truck[0].x, 230.0 + 24.0 - 6.0, abs_tol=0.3)
    assert math.isclose(truck[0].y, -5.25, abs_tol=0.05)
    with pytest.raises(ValueError, match='no lane 3'):
        env.reset(seed=3, options={'starts': {'hero0': dict(
            start, lane_changes={'accel_lane': [(40.0, 3)]})}})
    with pytest.raises(ValueError, match='speed must be'):
        env.reset(seed=3, options={'held': [dict(held[0], speed=-1.0)]})


def test_the_monitors_comfortable_stop_counts_as_a_first_deceleration(make_env):
    # the monitor's comfortable stop commands exactly the metric's threshold (Autoware's
    # comfortable stop): the simulator's acceleration of it must count as braking
    from call_sim.driving_metrics import first_deceleration, MetricConventions, VehicleStep
    from call_vehicle.vehicle_control import ControlModel
    env = make_env({**STRAIGHT, 'num_controlled': 1})
    conventions = MetricConventions()
    control = ControlModel.from_config(VEHICLE['control'])
    obs, _ = env.reset(options={'starts': {'hero0': {'edge': 'main', 'lane': 1, 'pos': 100.0,
                                                     'speed': 10.0}}})
    steps = []
    for _ in range(5):
        speed = obs['hero0'].ego.speed
        obs, _, _, _, infos = env.step(
            {'hero0': control.to_control(-conventions.decel_threshold, 0.0, speed)})
        steps.append(VehicleStep('hero0', env.time, math.inf, False, infos['hero0']['accel'],
                                 'comfortable'))
    assert all(s.accel == pytest.approx(-conventions.decel_threshold) for s in steps)
    assert first_deceleration(steps, steps[0].time, steps[-1].time, conventions) == 0.0


@pytest.mark.parametrize('yield_to_controlled', [False, True])
def test_background_brakes_for_a_call_vehicle_across_its_lane_only_when_told(
        make_env, yield_to_controlled):
    # hero0 stands on lane 0, 1 m off its centre and turned 40 deg away from lane 1: its
    # rear reaches into lane 1, but SUMO places it by its front, on lane 0. A car comes along
    # lane 1 at 10 m/s: SUMO's lane following does not see hero0 and runs into it; with
    # `yield_to_controlled` the car stops short of it (call_sim.background_yield)
    import libsumo
    env = make_env({**STRAIGHT, 'num_controlled': 1,
                    'background': {'yield_to_controlled': yield_to_controlled}})
    start = {'edge': 'main', 'lane': 0, 'pos': 300.0, 'speed': 0.0}
    env.reset(options={'starts': {'hero0': start}})
    (x0, y0), (x1, y1) = (libsumo.lane.getShape(f'main_{k}')[0] for k in (0, 1))
    side = math.copysign(1.0, y1 - y0)
    ego = env.heroes['hero0'].state
    env.heroes['hero0'].state = BicycleState(ego.x, ego.y + 1.0 * side,
                                             ego.yaw - side * math.radians(40.0), 0.0)
    libsumo.vehicle.add('bg_probe', 'path0', typeID='background', departLane='1',
                        departPos='200', departSpeed='10')
    libsumo.vehicle.setLaneChangeMode('bg_probe', 0)      # it keeps to lane 1
    hit = False
    for _ in range(150):
        _, _, term, _, infos = env.step({'hero0': VehicleControl(brake=1.0)})
        hit |= infos['hero0']['collision']
        if term['hero0']:
            break
    assert hit != yield_to_controlled
    if yield_to_controlled:      # it stood behind hero0 instead, still in its lane
        assert libsumo.vehicle.getSpeed('bg_probe') < 0.1
        assert libsumo.vehicle.getLaneID('bg_probe') == 'main_1'

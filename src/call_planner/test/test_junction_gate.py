"""
The junction gate on the crossroad, in closed loop.

SUMO's map and motion, the BEV of call_perception, the TTC monitor's tracks and
planner.yaml's numbers.

The ego drives north on `south_in` towards the junction wanting to go on (a stand-in for the
look-ahead that always asks for +1 m/s^2 up to 6 m/s); only the gate can hold it. The map's
junction comes from the simulator's OpenDRIVE (what /carla/world_info carries), the vehicles
from the BEV the monitor tracks, the route from the simulator's waypoint window.
"""
import math

from call_perception.bev_raster import BevConfig, BevRasterizer, CHANNEL_INDEX
from call_perception.road_map import RoadMap
from call_planner.junction_gate import (gate_from_params, gate_override, JunctionConfig,
                                        JunctionMap)
from call_planner.plan_stage import planner_params
from call_planner.ttc_monitor import BevGeometry, MonitorConfig, TtcMonitor
from call_sim.config import load_yaml
from call_sim.env import MultiVehicleEnv
from call_vehicle.vehicle_control import ControlModel
import numpy as np
import pytest

#: the crossroad's arms end 11 m from the centre: the junction's edge on `south_in`
JUNCTION_EDGE_Y = -11.0
EGO = {'edge': 'south_in', 'lane': 1, 'next': 'north_out', 'pos': 160.0, 'speed': 5.0}
#: a car standing just past the junction on each lane of the ego's exit (front 7 m along it)
EXIT_BLOCKERS = [{'edge': 'north_out', 'lane': lane, 'pos': 7.0, 'length': 4.8, 'width': 2.0}
                 for lane in (0, 1)]


def drive(parked=(), crosser=None, steps=140, params=None):
    """
    Drive the ego with the gate; per step (ego front y, ego speed, crosser x or None, held).

    `crosser`: a second CALL vehicle's start, driven at its speed (its own stack is not
    under test).
    """
    params = params or planner_params({'junction_enabled': True})
    roles = 2 if crosser else 1
    scenario = {**load_yaml('scenarios/crossroad.yaml'), 'num_controlled': roles,
                'num_background': 0}
    bev_cfg = BevConfig()
    control = ControlModel()
    starts = {'hero0': EGO, **({'hero1': crosser} if crosser else {})}
    trace = []
    with MultiVehicleEnv.from_scenario(scenario) as env:
        obs, _ = env.reset(seed=1, options={'starts': starts, 'parked': list(parked)})
        gate = gate_from_params(params, env.opendrive())
        raster = BevRasterizer(bev_cfg, RoadMap.from_lanes(env.lanes()))
        monitor = TtcMonitor(MonitorConfig.from_params(params), BevGeometry(
            bev_cfg.metres_per_pixel, bev_cfg.ego_row, bev_cfg.ego_col))
        for k in range(steps):
            ego = obs['hero0'].ego
            pose = (ego.x, ego.y, ego.yaw)
            bev = raster.render(ego, obs['hero0'].others)
            monitor.observe(k * env.dt, bev[CHANNEL_INDEX['seen_vehicles']] > 127,
                            bev[CHANNEL_INDEX['shared_vehicles']] > 127, pose)
            wanted = 1.0 if ego.speed < 6.0 else 0.0
            held = gate_override(gate.assess(pose, ego.speed, obs['hero0'].route,
                                             monitor.moving_tracks()), wanted)
            accel = wanted if held is None else held
            front = ego.y + 0.5 * ego.length * math.sin(ego.yaw)
            other = obs['hero1'].ego.x if crosser and 'hero1' in obs else None
            trace.append((front, ego.speed, other, held is not None))
            commands = {'hero0': control.to_control(accel, 0.0, ego.speed)}
            if crosser and 'hero1' in obs:
                commands['hero1'] = control.to_control(0.0, 0.0, obs['hero1'].ego.speed)
            obs, _, terminated, _, _ = env.step(commands)
            if terminated.get('hero0'):
                break
    return trace


def test_the_crossroad_s_junction_comes_from_its_opendrive():
    scenario = {**load_yaml('scenarios/crossroad.yaml'), 'num_controlled': 1,
                'num_background': 0}
    with MultiVehicleEnv.from_scenario(scenario) as env:
        junctions = JunctionMap.from_opendrive(env.opendrive())
    # the box (its edge 11 m from the centre), then the approach just before the edge (the
    # junction lanes' width must not spill over it), far on an arm, and the exit
    inside = junctions.inside(np.array([[0.0, 0.0], [5.0, -5.0], [-5.0, 8.0], [1.75, -10.6],
                                        [1.75, -11.6], [1.75, -20.0], [30.0, 1.75],
                                        [1.75, 14.0]]))
    assert inside.tolist() == [True, True, True, True, False, False, False, False]
    with pytest.raises(ValueError):
        JunctionMap.from_opendrive('<notOpenDRIVE/>')


def test_a_car_standing_in_the_exit_holds_the_ego_before_the_junction_and_without_it_enters():
    # a vehicle that stops inside the junction blocks the crossing flows (gridlock): with
    # its exit taken the ego stops before the junction; with the exit free it drives in
    blocked = drive(parked=EXIT_BLOCKERS)
    assert max(front for front, *_ in blocked) < JUNCTION_EDGE_Y
    assert blocked[-1][1] < 0.1             # it stands, waiting for room
    assert blocked[-1][0] > JUNCTION_EDGE_Y - 4.0   # close to the junction, not far back
    free = drive()
    assert max(front for front, *_ in free) > JUNCTION_EDGE_Y + 10.0
    assert not any(held for *_, held in free)


def test_a_crossing_car_predicted_in_the_junction_holds_the_ego_until_the_gap_is_enough():
    # hero1 crosses from the east (inner lane, y = 1.75, straight on to the west) and would
    # reach the ego's path while the ego crosses it: the ego waits before the junction and
    # enters when it will reach hero1's lane after hero1's rear has left its own (x = 1.75,
    # 1 m each side), with the gap's time to spare
    crosser = {'edge': 'east_in', 'lane': 1, 'next': 'west_out', 'pos': 160.0,
               'speed': 6.0}
    trace = drive(crosser=crosser, steps=160)
    entered = next(k for k, (front, *_) in enumerate(trace) if front > JUNCTION_EDGE_Y)
    assert any(held for *_, held in trace[:entered])
    # it does not wait for hero1 to pass before it enters: the gap is taken, not the box
    assert trace[entered][2] is not None and trace[entered][2] > 1.75
    reached = next(k for k, (front, *_) in enumerate(trace) if front > 1.75 - 1.0)
    other = trace[reached][2]
    assert other is None or other + 2.4 < 1.75 - 1.0 - 6.0 * 0.5    # half a second clear
    # the same start without the gate's margins would have gone on: the gate held it
    off = drive(crosser=crosser, steps=160,
                params={**planner_params(), 'junction_enabled': True,
                        'junction_time_gap': 0.0, 'junction_follow_angle': 180.0})
    entered_off = next(k for k, (front, *_) in enumerate(off) if front > JUNCTION_EDGE_Y)
    assert entered_off < entered


def test_the_gap_is_the_time_to_cover_the_path_speeding_up():
    # from a standstill at 1.5 m/s^2 up to 6 m/s: 12 m take 4 s, then 6 m each second
    gate = gate_from_params(planner_params({'junction_enabled': True}), None)
    assert gate.arrival(np.array([0.0, 3.0, 12.0, 18.0]), 0.0) == pytest.approx(
        [0.0, 2.0, 4.0, 5.0])
    # faster than the crossing speed, the ego is not assumed to slow down
    assert gate.arrival(np.array([16.0]), 8.0) == pytest.approx([2.0])


@pytest.mark.parametrize('kwargs', [{'decel': 0.0}, {'max_decel': 1.0}, {'exit_room': -1.0},
                                    {'go_accel': math.nan}, {'cross_speed': 0.0}])
def test_bad_junction_config_fails_fast(kwargs):
    with pytest.raises(ValueError):
        JunctionConfig(**kwargs)

"""
The monitor's anticipation of a crossing vehicle known only through sharing, on the real simulator.

Real simulator (SUMO) on the crossroad map, both vehicles held at constant speed. hero0's BEV
never draws hero1: hero0 knows it only from hero1's CALL messages (`shared_tracks`), as when
hero1 is hidden from hero0's sensors. With planner.yaml's `monitor_anticipation_ttc` the
monitor decelerates comfortably for hero1 when it crosses hero0's path, at least 1 s before
the monitor without it does; when hero1 is a slower leader in hero0's lane it changes nothing
(following is the comfortable and emergency thresholds' business), and so it does for the
crossing hero1 once hero0's own sensors show it.
"""
import math

from call_perception.bev_raster import BevConfig, CHANNEL_INDEX
from call_planner.plan_stage import planner_params
from call_planner.shared_tracks import shared_tracks
from call_planner.ttc_monitor import COMFORTABLE, MonitorConfig, NONE
from call_sim.env import MultiVehicleEnv
from call_vehicle.vehicle_control import ControlModel
from crossroad_scene import (first_index, message_of, raster_and_monitor, SCENARIO,
                             step_holding_speeds)

CROSSING = {'hero0': {'edge': 'south_in', 'lane': 0, 'pos': 150.0, 'speed': 8.0},
            'hero1': {'edge': 'east_in', 'lane': 0, 'pos': 144.0, 'speed': 8.0}}
LEADER = {'hero0': {'edge': 'south_in', 'lane': 0, 'pos': 110.0, 'speed': 8.0},
          'hero1': {'edge': 'south_in', 'lane': 0, 'pos': 150.0, 'speed': 2.0}}
LATENCY = 2      # steps: the message a step's monitor heard was sent two steps earlier


def _config(anticipation: bool) -> MonitorConfig:
    """planner.yaml's monitor, with its anticipation or with it off."""
    params = planner_params(None if anticipation else {'monitor_anticipation_ttc': 0.0})
    return MonitorConfig.from_params(params)


def _drive(starts, config: MonitorConfig, steps: int, seen: bool = False):
    """
    Hold both vehicles' speeds; per step hero0's monitor level and whether it anticipated.

    `seen`: hero1 is also drawn in hero0's BEV as seen (its own sensors show it).
    """
    control, bev_cfg = ControlModel(), BevConfig()
    log = {'levels': [], 'anticipated': [], 'drawn': []}
    sent = []
    with MultiVehicleEnv.from_scenario(SCENARIO) as env:
        obs, _ = env.reset(seed=1, options={'starts': starts})
        raster, monitor = raster_and_monitor(env, bev_cfg, config)
        for k in range(steps):
            ego, other = obs['hero0'].ego, obs['hero1'].ego
            sent.append(message_of(other, env.time))
            # hero1 is not in hero0's BEV at all, or seen
            bev = raster.render(ego, [other] if seen else [], [])
            monitor.observe(env.time, bev[CHANNEL_INDEX['seen_vehicles']] > 0,
                            bev[CHANNEL_INDEX['shared_vehicles']] > 0,
                            (ego.x, ego.y, ego.yaw))
            heard = [sent[k - LATENCY]] if k >= LATENCY else []
            monitor.share(shared_tracks(heard, env.time, config)[0])
            verdict = monitor.assess(env.time, (ego.x, ego.y, ego.yaw), ego.speed)
            log['levels'].append(verdict.level)
            log['anticipated'].append(verdict.anticipated)
            log['drawn'].append(bool(bev[CHANNEL_INDEX['seen_vehicles']].any()))
            obs = step_holding_speeds(env, control, obs)
    return log


def test_a_crossing_vehicle_known_only_through_sharing_is_anticipated_1_s_earlier():
    config = _config(True)
    assert config.anticipation_ttc > config.comfortable_ttc + 1.0     # the yaml turns it on
    early, late = _drive(CROSSING, config, 40), _drive(CROSSING, _config(False), 40)
    first = first_index(level != NONE for level in early['levels'])
    # the first override is the anticipation's comfortable deceleration, for the shared vehicle
    assert math.isfinite(first) and early['anticipated'][first]
    assert early['levels'][first] == COMFORTABLE
    # without anticipation the monitor warns only at its comfortable TTC, at least 1 s later
    assert first + 10 <= first_index(level != NONE for level in late['levels'])
    assert not any(late['anticipated'])
    # once hero0's own sensors show it, the same vehicle is left to the ordinary thresholds
    seen = _drive(CROSSING, config, 40, seen=True)
    drawn = first_index(seen['drawn'])
    # (it is drawn well before its TTC falls to the comfortable threshold)
    assert drawn + 5 <= first_index(level != NONE for level in late['levels'])
    assert not any(seen['anticipated'][drawn:])


def test_a_slower_leader_known_only_through_sharing_is_not_anticipated():
    on, off = _drive(LEADER, _config(True), 60), _drive(LEADER, _config(False), 60)
    # the scene is a conflict: the monitor brakes for the leader in the end
    assert COMFORTABLE in off['levels']
    # anticipation leaves a leader in the ego's lane to the ordinary thresholds
    assert not any(on['anticipated'])
    assert on['levels'] == off['levels']

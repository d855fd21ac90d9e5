"""
Why CALL vehicles stall at a junction: each stalled trip of a `driving_eval` run, classified.

A diagnostic, not a metric: it reads the simulator's own lane of every vehicle (privileged;
the planner never sees it) to say where a vehicle stood and what stood around it. One seed
is driven exactly as `driving_eval.drive_seed` drives it (same fleet, same planner.yaml);
a probe records per CALL vehicle and step its lane, speed, the monitor's override and the
nearest vehicle ahead in its corridor. A trip *stalled* if it timed out, or was cut short
by the run's end, after standing (speed below `STAND_SPEED`) for at least `STALL_S` of its
last `WINDOW_S` seconds. Its cause, from the steps it stood in that window:

- ``in_junction``: it stood inside the junction (SUMO's internal lanes, ``:`` ids), where
  it is a foe the background drivers wait for;
- ``queued``: it stood before or after the junction with a standing vehicle within
  `QUEUE_GAP` ahead in its lane (``queued_box_blocked`` when vehicles stood inside the
  junction at the same time: a queue behind a blocked box);
- ``monitor_hold``: it stood with no vehicle close ahead and the TTC monitor overriding;
- ``planner_stop``: it stood with no vehicle close ahead and no override (the look-ahead
  chose to stand or crawl on free road).

    python src/call_experiments/call_experiments/stall_diagnosis.py --seeds 10 11 \
        --steps 700 --c 50 --mode lsi
"""
from collections import Counter
import json
import math
from typing import Any, Dict, List, Optional

from call_experiments import driving_eval
from call_experiments.diagnosis_cli import drive_seeds
from call_sim.road_network import RoadNetwork
import numpy as np

STAND_SPEED = 0.3     # [m/s]
WINDOW_S = 20.0       # [s] the end of a trip looked at
STALL_S = 10.0        # [s] standing within that window that makes a stall
QUEUE_GAP = 12.0      # [m] bumper gap to a standing vehicle ahead that makes a queue
CORRIDOR = 2.0        # [m] half width of the ego's corridor ahead
NEAR = 25.0           # [m] from the crossroad's centre: the vehicles of the snapshots


def ahead_in_corridor(ego: Any, others: List[Any], reach: float = 40.0) -> List[tuple]:
    """(gap [m], vehicle) of the vehicles ahead within the ego's corridor, nearest first."""
    cos, sin = math.cos(ego.yaw), math.sin(ego.yaw)
    found = []
    for other in others:
        dx, dy = other.x - ego.x, other.y - ego.y
        ahead, left = cos * dx + sin * dy, -sin * dx + cos * dy
        if 0.0 < ahead < reach and abs(left) < CORRIDOR:
            found.append((ahead - 0.5 * (ego.length + other.length), other))
    return sorted(found, key=lambda item: item[0])


def classify(records: List[Dict[str, Any]]) -> Optional[str]:
    """Return the cause of a trip's stall from its per-step records (None: no stall)."""
    end = records[-1]['t']
    window = [r for r in records if r['t'] > end - WINDOW_S]
    standing = [r for r in window if r['speed'] < STAND_SPEED]
    if len(standing) * 0.1 < STALL_S:
        return None
    causes = Counter()
    for r in standing:
        if r['lane'].startswith(':'):
            causes['in_junction'] += 1
        elif r['gap'] is not None and r['gap'] < QUEUE_GAP and r['lead_speed'] < 1.0:
            causes['queued_box_blocked' if r['box_standing'] else 'queued'] += 1
        elif r['override']:
            causes['monitor_hold'] += 1
        else:
            causes['planner_stop'] += 1
    return causes.most_common(1)[0][0]


def queue_head(ego: Any, others: List[Any]) -> Any:
    """Return the first vehicle of the standing queue ahead of the ego (the ego if none)."""
    current = ego
    for _ in range(12):
        ahead = [item for item in ahead_in_corridor(current, others, 25.0)
                 if item[0] < QUEUE_GAP and item[1].speed < 1.0]
        if not ahead:
            return current
        current = ahead[0][1]
    return current


def diagnose(loaded: Any, mode: str, scenario: str, seed: int, steps: int,
             planner: Dict[str, Any], c: float, log=print) -> Dict[str, Any]:
    """Drive one seed and classify its stalled trips."""
    from call_sim.scenario import load_scenario
    road = RoadNetwork(load_scenario(scenario)['map'])
    traces: Dict[tuple, List[Dict[str, Any]]] = {}
    snapshots: Dict[float, list] = {}
    levels: Dict[str, str] = {}
    original = driving_eval.MonitoredFleet.step

    def step(fleet, observations, now, dt):
        out = original(fleet, observations, now, dt)
        levels.update({role: decided[1] for role, decided in out.items()})
        return out

    def probe(now, observations, trip, fleet):
        if observations and int(round(now * 10)) % 5 == 0:     # every 0.5 s
            obs = next(iter(observations.values()))
            everyone = [obs.ego] + list(obs.others)
            # every vehicle within NEAR of the junction's centre (the crossroad's: the origin)
            snapshots[round(now, 2)] = [
                (o.role_name or o.actor_id, road.locate(o.x, o.y).lane_id, round(o.x, 1),
                 round(o.y, 1), round(o.speed, 2), levels.get(o.role_name, '') or '')
                for o in everyone if math.hypot(o.x, o.y) < NEAR]
        for role, obs in observations.items():
            ego = obs.ego
            ahead = ahead_in_corridor(ego, obs.others)
            gap, lead = ahead[0] if ahead else (None, None)
            head = queue_head(ego, obs.others)
            traces.setdefault((role, trip[role]), []).append({
                't': round(now, 2), 'x': round(ego.x, 1), 'y': round(ego.y, 1),
                'speed': round(ego.speed, 2),
                'lane': road.locate(ego.x, ego.y).lane_id,
                'override': levels.get(role, driving_eval.NONE) != driving_eval.NONE,
                'gap': None if gap is None else round(gap, 1),
                'lead_speed': None if lead is None else round(lead.speed, 2),
                'lead_call': None if lead is None else bool(lead.role_name),
                'lead_lane': None if lead is None else road.locate(lead.x, lead.y).lane_id,
                'head_lane': road.locate(head.x, head.y).lane_id,
                'head_call': bool(head.role_name),
                # vehicles standing inside the junction (a blocked box), and the CALL ones
                'box_standing': sum(1 for o in [ego] + list(obs.others)
                                    if o.speed < STAND_SPEED
                                    and road.locate(o.x, o.y).lane_id.startswith(':')),
                'box_standing_call': sum(1 for o in [ego] + list(obs.others)
                                         if o.role_name and o.speed < STAND_SPEED
                                         and road.locate(o.x, o.y).lane_id.startswith(':')),
            })

    driving_eval.MonitoredFleet.step = step
    try:
        result = driving_eval.drive_seed(loaded, mode, scenario, seed, steps, planner, c, 60.0,
                                         probe=probe)
    finally:
        driving_eval.MonitoredFleet.step = original
    ends = {}
    counters = Counter()
    for record in result.trips:
        key = (record['role'], sum(1 for r in result.trips[:result.trips.index(record)]
                                   if r['role'] == record['role']))
        ends[key] = record['outcome']
    stalls = []
    for key, records in traces.items():
        outcome = ends.get(key)
        if outcome not in ('timeout', 'cut_short'):
            continue
        cause = classify(records)
        if cause is None:
            counters[(outcome, 'not_stalled')] += 1
            continue
        counters[(outcome, cause)] += 1
        last = records[-1]
        stalls.append({'role': key[0], 'trip': key[1], 'outcome': outcome, 'cause': cause,
                       'end_t': last['t'], 'lane': last['lane'], 'x': last['x'],
                       'y': last['y'], 'gap': last['gap'], 'lead_lane': last['lead_lane'],
                       'lead_call': last['lead_call'], 'head_lane': last['head_lane'],
                       'head_call': last['head_call'],
                       'box_standing_share': round(float(np.mean(
                           [r['box_standing'] > 0 for r in records[-200:]])), 2),
                       'box_call_share': round(float(np.mean(
                           [r['box_standing_call'] > 0 for r in records[-200:]])), 2),
                       'first_stand_t': next((r['t'] for r in records
                                              if r['speed'] < STAND_SPEED
                                              and r['t'] > records[0]['t'] + 2.0), None)})
        log(json.dumps(stalls[-1]))
        stalls[-1]['trace'] = records[::5]      # every 0.5 s, for a closer look
    outcomes = Counter(record['outcome'] for record in result.trips)
    return {'seed': seed, 'mode': mode, 'outcomes': dict(outcomes),
            'causes': {f'{o}/{c}': n for (o, c), n in sorted(counters.items())},
            'stalls': stalls, 'junction_snapshots': snapshots}


def main(argv=None) -> int:
    """Classify the stalled trips of the given seeds and print the counts."""
    _, results = drive_seeds(__doc__.split('\n\n')[0], diagnose, argv, seeds=[10, 11])
    total = Counter()
    for result in results:
        print(json.dumps({k: result[k] for k in ('seed', 'mode', 'outcomes', 'causes')}))
        total.update(result['causes'])
    print('total', json.dumps(dict(sorted(total.items()))))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

"""
What the safety monitor overrode for, held against the simulator's ground truth.

A diagnostic, not a metric: it reads every vehicle's true pose and speed (privileged; the
planner never sees them). One seed is driven exactly as `driving_eval.drive_seed` drives it
(same fleet, same planner.yaml). At each step a CALL vehicle's monitor overrides, its
conflict (the monitor's track: a blob of the fused BEV with a velocity estimated from its
centre's displacement, or a neighbour's message) is matched to the nearest real vehicle and
classified:

- ``kind``: how the track moves relative to the ego, from its estimated velocity:
  ``standing`` (below `STANDING_SPEED`), ``oncoming`` (heading more than `ONCOMING_DEG` away
  from the ego's), ``following`` (within `FOLLOWING_DEG`), else ``crossing``;
- ``phantom``: the track moves at `PHANTOM_SPEED` or more, but the real vehicle within
  `MATCH_M` of it moves less than half as fast in that direction: a velocity the vehicle
  does not have (its blob's centre jumped between frames);
- ``unmatched``: no real vehicle within `MATCH_M` of the track.

By default `crossroad_occluded`, 700 steps, c = 50:

    python -m call_experiments.override_diagnosis --seeds 10 11 --mode lsi
"""
from collections import Counter
import json
import math
from typing import Any, Dict, Sequence

from call_experiments import driving_eval
from call_experiments.diagnosis_cli import drive_seeds

STANDING_SPEED = 0.5      # [m/s] a track slower than this stands
ONCOMING_DEG = 150.0      # [deg] a track heading further than this from the ego's comes at it
FOLLOWING_DEG = 30.0      # [deg] ... within this, it goes the ego's way
PHANTOM_SPEED = 2.0       # [m/s] an estimated speed that a standing vehicle cannot hide in
MATCH_M = 3.0             # [m] a track and the real vehicle it stands for


def classify(track: Any, ego: Any, others: Sequence[Any]) -> Dict[str, Any]:
    """
    One override's conflict track against the ego and the real vehicles (`VehicleState`s).

    `track` needs x, y, vx, vy and shared_only (`ttc_monitor.Track`).
    """
    cos, sin = math.cos(ego.yaw), math.sin(ego.yaw)
    dx, dy = track.x - ego.x, track.y - ego.y
    speed = math.hypot(track.vx, track.vy)
    relative = math.degrees(math.remainder(math.atan2(track.vy, track.vx) - ego.yaw, math.tau))
    kind = ('standing' if speed < STANDING_SPEED else
            'oncoming' if abs(relative) > ONCOMING_DEG else
            'following' if abs(relative) < FOLLOWING_DEG else 'crossing')
    distance, nearest = min(((math.hypot(o.x - track.x, o.y - track.y), o) for o in others),
                            key=lambda pair: pair[0], default=(math.inf, None))
    matched = distance < MATCH_M
    # the real vehicle's speed along the track's estimated direction
    phantom = matched and speed >= PHANTOM_SPEED and nearest.speed * (
        math.cos(nearest.yaw) * track.vx + math.sin(nearest.yaw) * track.vy) / speed < 0.5 * speed
    return {'kind': kind, 'ahead_m': round(cos * dx + sin * dy, 1),
            'left_m': round(-sin * dx + cos * dy, 1), 'speed': round(speed, 2),
            'shared_only': bool(track.shared_only), 'matched': matched,
            'phantom': bool(phantom)}


def diagnose(loaded: Any, mode: str, scenario: str, seed: int, steps: int,
             planner: Dict[str, Any], c: float) -> Dict[str, Any]:
    """Drive one seed and classify every override step's conflict."""
    records = []

    def probe(now, observations, trip, fleet):
        for role, obs in observations.items():
            verdict = fleet.verdicts.get(role)
            if verdict is None or verdict.level == driving_eval.NONE \
                    or verdict.conflict is None:
                continue
            records.append({'t': round(now, 1), 'role': role, 'level': verdict.level,
                            'ego_speed': round(obs.ego.speed, 2),
                            **classify(verdict.conflict, obs.ego, obs.others)})

    result = driving_eval.drive_seed(loaded, mode, scenario, seed, steps, planner, c, 60.0,
                                     probe=probe)
    phantoms = [r for r in records if r['phantom']]
    return {'seed': seed, 'mode': mode, 'scenario': scenario, 'override_steps': len(records),
            'outcomes': dict(Counter(t['outcome'] for t in result.trips)),
            'by_kind': dict(Counter(r['kind'] for r in records)),
            'unmatched': sum(not r['matched'] for r in records),
            'phantom': len(phantoms),
            'phantom_shared_only': sum(r['shared_only'] for r in phantoms),
            'phantom_ego_standing': sum(r['ego_speed'] < STANDING_SPEED for r in phantoms),
            'phantom_by_kind': dict(Counter(r['kind'] for r in phantoms)),
            'records': records}


def main(argv=None) -> int:
    """Classify the override steps of the given seeds and print the counts."""
    _, results = drive_seeds(__doc__.split('\n\n')[0], diagnose, argv, seeds=[10])
    for result in results:
        print(json.dumps({k: v for k, v in result.items() if k != 'records'}))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

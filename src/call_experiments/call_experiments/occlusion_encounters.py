"""
`call_occlusion_encounters`: does sharing make the ego brake earlier for a hidden vehicle.

The scripted occluded encounters of `call_experiments.encounter_script` (`--script`: the
crossing, an ego and a crosser from its right with a parked truck that hides one from the
other; or the merge, an ego on the main road and a merger from the on-ramp with a truck
held at speed between them; both CALL vehicles, no background traffic), each driven
through the same vehicle core and fleet as `call_experiments.driving_eval` (`build_fleet`:
`call_learning.pipeline.VehiclePipeline`, the planner's look-ahead with its costs and the
TTC monitor, every number from `call_planner/config/planner.yaml`), once per mode on the
identical script.

Ground truth and reference time, one for every mode. Every encounter's times are relative
to its scripted **nominal conflict time** `t_conflict`: when the ego, held at its initial
speed, would reach the point where the two lanes cross (a number of the script, fixed before
any mode drives). Per encounter and mode (the ego is `hero0`; the other vehicle, named
the crosser in the records of both scripts, drives with the same stack and its own first
deceleration is recorded beside):

- `collision`: the ego touched the crosser (the simulator's footprints) at some step;
  `collision_any`: it touched any vehicle (the truck included);
- `first_decel_s`: the ego's first step with acceleration at most -1 m/s^2 from 5 s before
  `t_conflict` to the encounter's end (`call_sim.driving_metrics.first_deceleration`, the
  driving metrics' convention: threshold `decel_threshold`, look-back `decel_lookback`),
  minus `t_conflict` (None: it never braked that hard); `first_decel_censored_s` counts an
  encounter without such a step as braking at its end;
- `first_seen_s`: the ego's own sensors first saw the crosser (`driving_eval.
  own_sensors_see`), `first_heard_s`: the crosser was first among the ego's accepted
  senders, `first_told_s`: the ego's monitor first held it only through sharing with a
  velocity (`driving_eval.told_ids`); all minus `t_conflict`;
- `min_ttc_s`: the simulator's lane-band TTC's minimum over the encounter (None: never
  finite); `min_path_ttc_s`: the minimum of the ground-truth path contact time with the
  crosser (`driving_eval.path_conflict`: both held at their simulator velocities);
- the script's own figures (`encounter_script.Encounter.record`), among them when the
  ego's sensors would first see the crosser on the nominal motion, with and without truck.

Until a vehicle's model state is first valid (its first steps, the same number in every
mode) the stack would make its controlled stop; the script holds the vehicle at its initial
speed instead (the world model hears that action, as after a monitor override), so that the
script's nominal motion is the motion until the stack drives (`scripted_steps`). An
encounter ends `AFTER_CONFLICT` seconds after `t_conflict`, or when a CALL vehicle's trip
ends (a collision, off road). Per seed the encounters' mean of each figure (first
decelerations over the encounters that had one); the CSV gives per mode the mean over seeds
and its Student-t 95 % interval (`mean_interval`: the seeds are the independent units), and
the paired rows CALL (`lsi`) minus local observation, encounter by encounter (same seed and
index: the same script), averaged per seed, then over seeds.

    python -m call_experiments.occlusion_encounters --seeds 3000 3001 3002 --encounters 20

writes results/occlusion_encounters/occlusion_encounters[_c<c>].csv, ..._paired.csv and per
seed and mode encounter_runs/<mode>[_c<c>]_<seed>.json (`--script merge`: the same under
results/occlusion_encounters_merge/; `--merger committed`, the merger's command replaced by
`committed_merger`'s scripted driver: results/occlusion_encounters_merge_committed/)
(`--combine` takes a mode that does
not share at another c from its run at the default c). Use seeds other than the held-out ones (10,
11) to look or tune.
"""
import argparse
from collections import Counter
import json
import math
from pathlib import Path
import sys
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from call_experiments import encounter_script as script, manifest
from call_experiments.committed_merger import commit, CommittedDriver
from call_experiments.driving_eval import (build_fleet, c_tag, DEFAULT_C,
                                           load_policy_models, own_sensors_see, path_conflict,
                                           shipped_checkpoint, write_csv)
from call_experiments.experiment_config import parse_sets
from call_experiments.rollout import scenario_with
from call_learning.pipeline import MODES, SHARING_MODES
from call_planner.plan_stage import planner_params
from call_planner.ttc_monitor import NONE
from call_sim import driving_metrics
from call_world_model import checkpoint
from call_world_model.prediction_metrics import mean_interval
import numpy as np
import torch

AFTER_CONFLICT = 3.0       # [s] an encounter runs this long past its nominal conflict time
CONVENTIONS = driving_metrics.MetricConventions()
#: the crossroad with the two CALL vehicles of the script and nothing else
SCENARIO = ('crossroad', {'num_controlled': 2, 'num_background': 0, 'respawn_done': False,
                          'episode_steps': 100000, 'trip_time_limit': 0.0})
#: per script (`encounter_script.LAYOUTS`) its map; the merge's routes change lane only as
#: scripted, with the script's blend length
SCENARIOS = {'crossing': SCENARIO,
             'merge': ('highway_merge', dict(SCENARIO[1], route={
                 'max_lane_changes': 0, 'lane_change_length': script.MERGE_CHANGE_LENGTH}))}
#: where each script's results go unless --out says otherwise
OUT = {'crossing': 'results/occlusion_encounters', 'merge': 'results/occlusion_encounters_merge'}
#: ... with the committed merger (`--merger committed`)
OUT_COMMITTED = 'results/occlusion_encounters_merge_committed'
#: who drives the merge's merger: its own stack, or the committed driver in its place
MERGERS = ('stack', 'committed')
CSV_COLUMNS = ('mode', 'metric', 'mean', 'ci_low', 'ci_high', 'seeds', 'encounters', 'c')
PAIRED_COLUMNS = ('mode', 'reference', 'metric', 'mean', 'ci_low', 'ci_high', 'seeds',
                  'encounters', 'c')
#: per-seed figures: name -> (record key, statistic over the seed's encounters)
SEED_METRICS = {
    'collision_rate': ('collision', 'rate'),
    'collision_any_rate': ('collision_any', 'rate'),
    'first_decel_mean_s': ('first_decel_s', 'mean'),
    'first_decel_censored_mean_s': ('first_decel_censored_s', 'mean'),
    'without_decel_share': ('first_decel_s', 'missing'),
    'first_seen_mean_s': ('first_seen_s', 'mean'),
    'told_share': ('first_told_s', 'present'),
    'first_told_mean_s': ('first_told_s', 'mean'),
    'heard_share': ('first_heard_s', 'present'),
    'first_heard_mean_s': ('first_heard_s', 'mean'),
    'first_known_mean_s': ('first_known_s', 'mean'),
    'decel_before_known_share': ('decel_before_known', 'rate'),
    'min_ttc_mean_s': ('min_ttc_s', 'mean'),
    'min_path_ttc_mean_s': ('min_path_ttc_s', 'mean'),
    'min_distance_mean_m': ('min_distance_m', 'mean'),
    'override_steps_mean': ('ego_override_steps', 'mean'),
    'anticipation_steps_mean': ('anticipation_steps', 'mean'),
    'crosser_first_decel_mean_s': ('crosser_first_decel_s', 'mean'),
    'crosser_collision_any_rate': ('crosser_collision_any', 'rate'),
    'nominal_visible_mean_s': ('visible_s', 'mean'),
    'nominal_hidden_mean_s': ('hidden_s', 'mean'),
}
#: figures compared encounter by encounter (CALL minus local)
PAIRED_KEYS = {'collision': 'collision', 'first_decel_s': 'first_decel_s',
               'first_decel_censored_s': 'first_decel_censored_s',
               'min_path_ttc_s': 'min_path_ttc_s', 'min_distance_m': 'min_distance_m'}


def _rel(value: Optional[float], reference: float) -> Optional[float]:
    return None if value is None or not math.isfinite(value) else round(value - reference, 2)


def run_encounter(fleet: Any, env: Any, encounter: script.Encounter,
                  committed: bool = False) -> Dict[str, Any]:
    """
    Drive one scripted encounter with the fleet; the ego's record (module doc).

    `committed`: the other vehicle's command is the committed driver's
    (`committed_merger`) at its scripted speed, from the first step; the record adds what
    it did (`committed_record`).
    """
    pipeline = fleet.pipeline
    merger = CommittedDriver(encounter.crosser_speed) if committed else None
    # the committed merger per step: (speed, declared intention) before it, position after
    declared: List[Tuple[float, np.ndarray]] = []
    positions: List[Tuple[float, float]] = []
    obs, _ = env.reset(seed=encounter.env_seed, options=encounter.options())
    roles = sorted(obs)
    torch.manual_seed(encounter.env_seed)
    pipeline.reset(roles)
    fleet.reset(roles)
    fleet.policy.restart(encounter.index)
    causes_before = Counter(fleet.override_causes)
    ids = {o.role_name: o.actor_id for o in obs[script.EGO].others if o.role_name}
    ids[script.EGO] = obs[script.EGO].ego.actor_id
    crosser = ids[script.CROSSER]
    ego_index = pipeline.roles.index(script.EGO)
    steps: Dict[str, List[driving_metrics.VehicleStep]] = {r: [] for r in roles}
    collided: Dict[str, set] = {r: set() for r in roles}
    first = {'seen': None, 'heard': None, 'told': None}
    min_path, min_distance, override_steps, scripted = math.inf, math.inf, 0, 0
    driving = dict.fromkeys(roles, False)
    end = encounter.t_conflict + AFTER_CONFLICT
    while env.time < end - 1e-9:
        decided = fleet.step(obs, env.time, env.dt)
        controls = hold_until_valid(pipeline, obs, decided, driving)
        if merger is not None:
            controls[script.CROSSER] = commit(fleet, script.CROSSER, obs[script.CROSSER],
                                              merger)
            decided[script.CROSSER] = (controls[script.CROSSER], NONE, False)
            declared.append((obs[script.CROSSER].ego.speed,
                             pipeline.plans[pipeline.roles.index(script.CROSSER)].copy()))
        scripted += int(not driving[script.EGO])
        heard = script.CROSSER in pipeline.steps[ego_index].neighbours
        told = crosser in fleet.told.get(script.EGO, frozenset())
        obs, _, terminations, _, infos = env.step(controls)
        now = env.time
        for role, info in infos.items():
            collided[role].update(info['collided_with'])
            level = decided[role][1]
            steps[role].append(driving_metrics.VehicleStep(
                role, now, float(info['ttc']), bool(info['collision']), float(info['accel']),
                '' if level == NONE else level))
        override_steps += int(decided[script.EGO][1] != NONE)
        if first['heard'] is None and heard:
            first['heard'] = now
        if first['told'] is None and told:
            first['told'] = now
        if script.EGO in obs and script.CROSSER in obs:
            ego_obs = obs[script.EGO]
            if first['seen'] is None and crosser in own_sensors_see(pipeline, ego_obs):
                first['seen'] = now
            t_path, partner = path_conflict(ego_obs, env.dt)
            if partner == crosser:
                min_path = min(min_path, t_path)
            other = next(o for o in ego_obs.others if o.actor_id == crosser)
            min_distance = min(min_distance, math.hypot(other.x - ego_obs.ego.x,
                                                        other.y - ego_obs.ego.y))
        if merger is not None and script.CROSSER in obs:
            positions.append((obs[script.CROSSER].ego.x, obs[script.CROSSER].ego.y))
        if any(terminations.values()):
            end = now
            break
    end = min(end, env.time)
    t_c = encounter.t_conflict
    record = encounter.record()
    ego_steps = steps[script.EGO]
    decel = driving_metrics.first_deceleration(ego_steps, t_c, end, CONVENTIONS)
    crosser_decel = driving_metrics.first_deceleration(steps[script.CROSSER], t_c, end,
                                                       CONVENTIONS)
    ttcs = [s.ttc for s in ego_steps if math.isfinite(s.ttc)]
    causes = Counter(fleet.override_causes) - causes_before
    record.update({
        'reference_s': round(t_c, 3),   # the time every other time is relative to
        'visible_s': _rel(encounter.visible_s, t_c),
        'visible_free_s': _rel(encounter.visible_free_s, t_c),
        'collision': crosser in collided[script.EGO],
        'collision_any': bool(collided[script.EGO]),
        'crosser_collision_any': bool(collided[script.CROSSER]),
        'end_s': round(end - t_c, 2),
        'first_decel_s': None if math.isnan(decel) else round(decel, 2),
        'first_decel_censored_s': round(end - t_c if math.isnan(decel) else decel, 2),
        'crosser_first_decel_s': None if math.isnan(crosser_decel) else round(crosser_decel, 2),
        'first_seen_s': _rel(first['seen'], t_c),
        'first_heard_s': _rel(first['heard'], t_c),
        'first_told_s': _rel(first['told'], t_c),
        'min_ttc_s': round(min(ttcs), 3) if ttcs else None,
        'min_path_ttc_s': round(min_path, 2) if math.isfinite(min_path) else None,
        'min_distance_m': round(min_distance, 2) if math.isfinite(min_distance) else None,
        'ego_override_steps': override_steps,
        'scripted_steps': scripted,
        'anticipation_steps': int(causes.get('anticipation_shared', 0)),
    })
    if merger is not None:
        record.update(committed_record(declared, positions))
    return record


def committed_record(declared: Sequence[Tuple[float, np.ndarray]],
                     positions: Sequence[Tuple[float, float]]) -> Dict[str, Any]:
    """
    Return what the committed merger did: speeds, where it ended, how true its intention was.

    `declared`: per step its speed and the intention it declared before the step;
    `positions`: per step its position after the step.
    `crosser_intention_error_m`: the largest distance, over every declared intention and
    its K waypoints, between waypoint k and where the merger was k steps later.
    `crosser_end_lateral_m`: its centre's offset from the ego's lane centre at the end.
    """
    speeds = [v for v, _ in declared]
    worst = 0.0
    for t, (_, plan) in enumerate(declared):
        later = np.asarray(positions[t:t + len(plan)])
        if len(later):
            worst = max(worst, float(np.hypot(*(plan[:len(later)] - later).T).max()))
    return {'crosser_speed_min': round(min(speeds), 3),
            'crosser_speed_max': round(max(speeds), 3),
            'crosser_end_lateral_m': round(positions[-1][1] - script.MERGE_LANES[2], 3),
            'crosser_intention_error_m': round(worst, 3)}


def hold_until_valid(pipeline: Any, observations: Dict[str, Any], decided: Dict[str, tuple],
                     driving: Dict[str, bool]) -> Dict[str, Any]:
    """
    Each vehicle's control: the stack's once its state was first valid, before that the hold.

    `driving[role]` turns True at the vehicle's first valid step and stays so. Before it the
    vehicle keeps its speed, straight on, and its world model hears that action.
    """
    driver = pipeline.driver
    keep = driver.actions.index(0.0, 0.0)
    accel, steer = driver.actions.action(keep)
    controls = {}
    for role, (control, _, stopped) in decided.items():
        driving[role] = driving[role] or not stopped
        if driving[role]:
            controls[role] = control
            continue
        speed = max(float(observations[role].ego.speed), 0.0)
        controls[role] = driver.control_model.to_control(accel, steer, speed)
        pipeline.models[pipeline.roles.index(role)].action = keep
    return controls


def seed_encounters(loaded: Any, mode: str, seed: int, encounters: int,
                    planner: Dict[str, Any], c: float, layout: str = 'crossing'
                    ) -> Iterator[Tuple[Any, Any, script.Encounter]]:
    """
    Yield (fleet, env, encounter) for each encounter of one seed in one mode.

    One simulator and one fleet for the seed (`run_encounter` resets them per encounter);
    the simulator is closed when the iteration ends or is abandoned.
    """
    from call_experiments.evaluate import collect_settings
    from call_sim.env import MultiVehicleEnv
    name, overrides = SCENARIOS[layout]
    env = MultiVehicleEnv.from_scenario(scenario_with(name, dict(overrides, seed=seed)))
    try:
        fleet = build_fleet(loaded, collect_settings(mode, c), env, planner, seed)
        for index in range(encounters):
            yield fleet, env, script.draw(seed, index,
                                          sensor_range=fleet.pipeline.settings.sensor_range,
                                          layout=layout)
    finally:
        env.close()


def run_seed(loaded: Any, mode: str, seed: int, encounters: int, planner: Dict[str, Any],
             c: float, log=None, layout: str = 'crossing', committed: bool = False
             ) -> List[Dict[str, Any]]:
    """
    Every encounter of one seed in one mode (one simulator, one fleet, reset per encounter).

    `committed`: the other vehicle is the committed merger (`run_encounter`).
    """
    records = []
    for fleet, env, encounter in seed_encounters(loaded, mode, seed, encounters, planner, c,
                                                 layout):
        records.append(dict(run_encounter(fleet, env, encounter, committed), mode=mode, c=c))
        if log:
            r = records[-1]
            log(f'{mode} c={c:g} seed {seed} #{encounter.index}: collision {r["collision"]}, '
                f'decel {r["first_decel_s"]}, seen {r["first_seen_s"]}, told '
                f'{r["first_told_s"]}, offset {r["offset_s"]}')
    return records


def known(record: Dict[str, Any]) -> Dict[str, Any]:
    """
    When the ego first held the crosser at all, and whether it braked before that.

    `first_known_s`: the earlier of its own first sighting and the crosser's first message
    among its accepted senders (None: neither); `decel_before_known`: its first deceleration
    came before that (or it never knew of the crosser and braked): a brake that what the ego
    knew of the crosser cannot explain, e.g. the learned planner easing off after the start.
    """
    times = [t for t in (record.get('first_seen_s'), record.get('first_heard_s'))
             if t is not None]
    first = min(times) if times else None
    decel = record.get('first_decel_s')
    return {'first_known_s': first,
            'decel_before_known': decel is not None and (first is None or decel < first)}


def seed_summary(records: Sequence[Dict[str, Any]]) -> Dict[str, float]:
    """Per-seed figures (`SEED_METRICS`) over one seed's encounter records."""
    out = {}
    records = [dict(r, **known(r)) for r in records]
    for metric, (key, stat) in SEED_METRICS.items():
        values = [r.get(key) for r in records]
        if stat == 'rate':
            out[metric] = float(np.mean([bool(v) for v in values])) if values else math.nan
        elif stat in ('missing', 'present'):
            missing = float(np.mean([v is None for v in values])) if values else math.nan
            out[metric] = missing if stat == 'missing' else 1.0 - missing
        else:
            finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
            out[metric] = float(np.mean(finite)) if finite else math.nan
    out['encounters'] = len(records)
    return out


def mode_rows(mode: str, c: float, by_seed: Dict[int, List[Dict[str, Any]]]
              ) -> List[Dict[str, Any]]:
    """Mean over seeds and Student-t 95 % interval of every per-seed figure."""
    summaries = [seed_summary(records) for records in by_seed.values()]
    total = sum(len(records) for records in by_seed.values())
    rows = []
    for metric in SEED_METRICS:
        mean, low, high, n = mean_interval([s[metric] for s in summaries])
        rows.append({'mode': mode, 'metric': metric, 'mean': mean, 'ci_low': low,
                     'ci_high': high, 'seeds': n, 'encounters': total, 'c': c})
    return rows


def paired_rows(reference: str, other: str, c: float,
                runs: Dict[str, Dict[int, List[Dict[str, Any]]]]) -> List[Dict[str, Any]]:
    """
    Return reference minus other, encounter by encounter (same seed and index), per seed.

    An encounter counts for a figure when both modes have it (a first deceleration: both
    braked); per seed the mean difference, then mean and interval over the seeds.
    """
    seeds = sorted(set(runs.get(reference, {})) & set(runs.get(other, {})))
    rows = []
    for metric, key in PAIRED_KEYS.items():
        per_seed, count = [], 0
        for seed in seeds:
            ours = {r['encounter']: r for r in runs[reference][seed]}
            theirs = {r['encounter']: r for r in runs[other][seed]}
            diffs = []
            for index in sorted(set(ours) & set(theirs)):
                a, b = ours[index].get(key), theirs[index].get(key)
                if a is None or b is None:
                    continue
                diffs.append(float(a) - float(b))
            count += len(diffs)
            per_seed.append(float(np.mean(diffs)) if diffs else math.nan)
        mean, low, high, n = mean_interval(per_seed)
        rows.append({'mode': other, 'reference': reference, 'metric': metric, 'mean': mean,
                     'ci_low': low, 'ci_high': high, 'seeds': n, 'encounters': count, 'c': c})
    return rows


def run_name(mode: str, seed: int, c: float) -> str:
    """File name of one seed's records; c is named only when it is not the default."""
    return f'{mode}{c_tag(c)}_{seed}.json'


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags."""
    parser = argparse.ArgumentParser(prog='call_occlusion_encounters',
                                     description=__doc__.strip().splitlines()[0])
    parser.add_argument('--checkpoint', default=None,
                        help='world model + actor-critic (default: the shipped one)')
    parser.add_argument('--modes', nargs='+', default=['lsi', 'local'], choices=MODES)
    parser.add_argument('--seeds', nargs='+', type=int, default=[3000, 3001, 3002])
    parser.add_argument('--encounters', type=int, default=20, help='encounters per seed')
    parser.add_argument('--c', type=float, default=DEFAULT_C,
                        help='threshold c of the range gate (comm.yaml default 50)')
    parser.add_argument('--combine', action='store_true',
                        help='run nothing: build the CSVs from OUT/encounter_runs')
    parser.add_argument('--script', default='crossing', choices=sorted(script.LAYOUTS),
                        help='the scripted encounter (encounter_script.LAYOUTS)')
    parser.add_argument('--merger', default='stack', choices=MERGERS,
                        help="the merge's merger: driven by its stack, or committed (its "
                             'command replaced by a scripted driver that holds its speed and '
                             'cuts in; call_experiments.committed_merger)')
    parser.add_argument('--out', default=None,
                        help='results directory (default: results/occlusion_encounters, '
                             'for the merge results/occlusion_encounters_merge, with '
                             f'--merger committed {OUT_COMMITTED})')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--set', dest='sets', action='append', default=[],
                        metavar='PARAM=VALUE', help='override a planner.yaml parameter')
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point: run every mode and seed, write the CSVs and the per-seed records."""
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.encounters < 1:
        print('call_occlusion_encounters: error: --encounters must be >= 1', file=sys.stderr)
        return 2
    committed = args.merger == 'committed'
    if committed and args.script != 'merge':
        print('call_occlusion_encounters: error: --merger committed needs --script merge',
              file=sys.stderr)
        return 2
    try:
        planner = planner_params(parse_sets(args.sets))
        checkpoint_path = args.checkpoint or shipped_checkpoint()
        loaded = None if args.combine else load_policy_models(checkpoint_path)
    except (ValueError, FileNotFoundError, checkpoint.CheckpointError) as exc:
        print(f'call_occlusion_encounters: error: {exc}', file=sys.stderr)
        return 2

    def log(line: str) -> None:
        print(f'call_occlusion_encounters: {line}', flush=True)

    out = Path(args.out or (OUT_COMMITTED if committed else OUT[args.script]))
    runs_dir = out / 'encounter_runs'
    runs: Dict[str, Dict[int, List[Dict[str, Any]]]] = {}
    for seed in args.seeds:
        for mode in args.modes:
            path = runs_dir / run_name(mode, seed, args.c)
            if args.combine:
                if not path.is_file() and mode not in SHARING_MODES:
                    # no range gate: c changes nothing, the default run's records stand
                    path = runs_dir / run_name(mode, seed, DEFAULT_C)
                if not path.is_file():
                    log(f'no records {path}: left out')
                    continue
                runs.setdefault(mode, {})[seed] = json.loads(path.read_text())['encounters']
                continue
            started = time.time()
            records = run_seed(loaded, mode, seed, args.encounters, planner, args.c, log,
                               args.script, committed)
            runs.setdefault(mode, {})[seed] = records
            runs_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({
                'script': args.script, **({'merger': args.merger} if committed else {}),
                'mode': mode, 'seed': seed, 'c': args.c,
                'encounters_asked': args.encounters, 'planner_overrides': args.sets,
                'model': {'checkpoint': Path(checkpoint_path).name,
                          'sha256': manifest.sha256(checkpoint_path)},
                'wall_s': round(time.time() - started, 1),
                'summary': seed_summary(records), 'encounters': records}, indent=1))
            log(f'wrote {path} ({time.time() - started:.0f} s)')
    tag = c_tag(args.c)
    rows = [row for mode in args.modes if mode in runs
            for row in mode_rows(mode, args.c, runs[mode])]
    write_csv(out / f'occlusion_encounters{tag}.csv', rows, CSV_COLUMNS)
    paired: List[Dict[str, Any]] = []
    if 'lsi' in runs:
        paired = [row for mode in args.modes if mode != 'lsi' and mode in runs
                  for row in paired_rows('lsi', mode, args.c, runs)]
        if paired:
            write_csv(out / f'occlusion_encounters{tag}_paired.csv', paired, PAIRED_COLUMNS)
    for row in rows + paired:
        log(', '.join(f'{k} {v:.3g}' if isinstance(v, float) else f'{k} {v}'
                      for k, v in row.items()))
    return 0


if __name__ == '__main__':
    sys.exit(main())

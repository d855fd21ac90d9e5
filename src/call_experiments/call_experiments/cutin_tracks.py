"""
`call_cutin_tracks`: what the ego's monitor predicted of the committed merger, step by step.

A diagnostic of `occlusion_encounters --script merge --merger committed`: the same
encounters, driven the same way (`run_encounter`), with the ego's monitor read at every step
(nothing of the driving changes). Per step: the monitor's track of the merger (the track
nearest the merger's simulator position within `match_radius`; its source: `shared` a
neighbour's message, no pixel seen; `shared_seen` a message whose vehicle the ego also sees;
`blob` the BEV's own track), the lateral offset of its heading from the lane, when its
prediction (the monitor's, `predicted_motion`, over `horizon`) brings its footprint laterally
into the ego's footprint's band (`|y - y_ego| < width + margin`), and the monitor's verdict
(the plain TTC and the anticipation TTC apart). Per encounter (times relative to the nominal
conflict time, as `occlusion_encounters`' records):

- `told_s`, `seen_s`: first held through sharing alone / first seen by the ego's sensors;
- `true_lane_change_s`: the merger's lateral speed first above 0.2 m/s;
  `true_band_s`: its footprint first laterally in the ego's band;
- `pred_band_s`: the first step at which the prediction of its track enters that band within
  the horizon; `pred_conflict_s`: the first step with a finite TTC (monitor horizon) to it;
  `anticipation_s`: first anticipation TTC to it below `anticipation_ttc`;
  `override_s`: first override; `first_decel_s`: the record's;
- `dropouts`: steps without override between the first override and the last, and on them
  how often the merger's track was absent, unassessed, or its plain TTC infinite.

    python -m call_experiments.cutin_tracks --seeds 10 11 --c 50 --modes lsi local \
        --out /tmp/cutin

writes OUT/cutin_tracks_<mode>[_c<c>]_<seed>.json (per encounter the summary and the steps).
Tuning seeds only (10, 11).
"""
import json
import math
from pathlib import Path
import sys
from typing import Any, Dict, List, Optional

from call_experiments import encounter_script as script
from call_experiments import occlusion_encounters as oe
from call_experiments.experiment_config import parse_sets
from call_experiments.first_brakes import run_all, tuning_parser
from call_planner.plan_stage import planner_params
from call_planner.ttc_monitor import MonitorConfig, NONE, predicted_motion
import numpy as np

TUNING_SEEDS = (10, 11)


def band_width(config: MonitorConfig) -> float:
    """
    [m] The lateral band of the ego's footprint.

    The footprints' half widths summed (ego and merger share the vehicle model) plus the
    monitor's margin.
    """
    return config.ego_width + config.margin


def source(track: Any) -> str:
    """Where a monitor track comes from (module doc)."""
    if not track.known:
        return 'blob'
    return 'shared' if track.shared_only else 'shared_seen'


def band_entry(track: Any, ego_y: float, horizon: float, step: float, band: float
               ) -> Optional[float]:
    """First time [s] within `horizon` the track's predicted centre is within `band` of ego_y."""
    t = np.arange(0.0, horizon + 1e-9, step)
    inside = np.abs(predicted_motion((track,), t)[1][0] - ego_y) < band
    return float(t[inside.argmax()]) if inside.any() else None


def read_step(fleet: Any, observations: Dict[str, Any], now: float
              ) -> Optional[Dict[str, Any]]:
    """Return the ego's monitor's view of the merger this step (call after `fleet.step`)."""
    monitor = fleet.monitors.get(script.EGO)
    if monitor is None or script.EGO not in observations:
        return None
    ego = observations[script.EGO].ego
    merger = next((o for o in observations[script.EGO].others
                   if o.role_name == script.CROSSER), None)
    if merger is None:
        return None
    cfg = monitor.config
    row: Dict[str, Any] = {'t': round(now, 2), 'ego_x': round(ego.x, 2),
                           'ego_speed': round(ego.speed, 2), 'm_x': round(merger.x, 2),
                           'm_y': round(merger.y, 2)}
    best, best_d, tracked = None, cfg.match_radius, False
    for k, on in zip(monitor.tracks, monitor._tracked):
        d = math.hypot(k.x - merger.x, k.y - merger.y)
        if d <= best_d:
            best, best_d, tracked = k, d, bool(on)
    if best is not None:
        row.update(src=source(best), assessed=tracked, err=round(best_d, 2),
                   heading_deg=round(math.degrees(math.atan2(best.vy, best.vx)), 1),
                   vy=round(best.vy, 2),
                   band=band_entry(best, ego.y, cfg.horizon, cfg.time_step,
                                   band_width(cfg)))
    yaw_rate = fleet.yaw_rates.get(script.EGO, 0.0)
    pose = (ego.x, ego.y, ego.yaw)
    lag = 0.0 if monitor.frame_time is None else max(now - monitor.frame_time, 0.0)
    plain = monitor._conflict(pose, (ego.speed, yaw_rate, None), lag)
    row['ttc'] = plain.ttc if plain.conflict is best and best is not None else math.inf
    row['who'] = None if plain.conflict is None else \
        'merger' if plain.conflict is best else 'other'
    if cfg.anticipation_ttc:
        early = monitor._anticipation(pose, (ego.speed, yaw_rate, None), lag)
        row['ant_ttc'] = early.ttc if early.conflict is best and best is not None \
            else math.inf
    return row


def merger_overrides(rows: List[Dict[str, Any]], levels: List[str], anticipation: float
                     ) -> List[int]:
    """Return the steps overridden while the merger is the conflict (or anticipated)."""
    return [i for i, (r, lv) in enumerate(zip(rows, levels))
            if lv != NONE and (r.get('who') == 'merger'
                               or r.get('ant_ttc', math.inf) < anticipation)]


def summarise(rows: List[Dict[str, Any]], levels: List[str], record: Dict[str, Any],
              ego_y: float, band: float, anticipation: float) -> Dict[str, Any]:
    """Per-encounter times (module doc), relative to the record's reference time."""
    t_c = record['reference_s']

    def first(pred) -> Optional[float]:
        hit = next((r['t'] for r, lv in zip(rows, levels) if pred(r, lv)), None)
        return None if hit is None else round(hit - t_c, 2)
    vy = [0.0] + [(b['m_y'] - a['m_y']) / max(b['t'] - a['t'], 1e-6)
                  for a, b in zip(rows, rows[1:])]
    for r, v in zip(rows, vy):
        r['m_vy'] = round(v, 2)
    overrides = merger_overrides(rows, levels, anticipation)
    drops = {'steps': 0, 'absent': 0, 'unassessed': 0, 'ttc_inf': 0, 'sources': []}
    if overrides:
        span = slice(overrides[0], overrides[-1] + 1)
        for r, lv in zip(rows[span], levels[span]):
            if r.get('src') and (not drops['sources'] or drops['sources'][-1] != r['src']):
                drops['sources'].append(r['src'])
            if lv != NONE:
                continue
            drops['steps'] += 1
            drops['absent'] += int('src' not in r)
            drops['unassessed'] += int('src' in r and not r['assessed'])
            drops['ttc_inf'] += int(not math.isfinite(r['ttc']))
    return {
        'encounter': record['encounter'], 'collision': record['collision'],
        'told_s': record['first_told_s'], 'seen_s': record['first_seen_s'],
        'true_lane_change_s': first(lambda r, lv: r['m_vy'] > 0.2),
        'true_band_s': first(lambda r, lv: abs(r['m_y'] - ego_y) < band),
        'track_s': first(lambda r, lv: 'src' in r),
        'pred_band_s': first(lambda r, lv: r.get('band') is not None),
        'pred_conflict_s': first(lambda r, lv: math.isfinite(r['ttc'])),
        'anticipation_s': first(lambda r, lv: r.get('ant_ttc', math.inf) < anticipation),
        'override_s': first(lambda r, lv: lv != NONE),
        'merger_override_s': None if not overrides else round(rows[overrides[0]]['t'] - t_c, 2),
        'other_override_steps': sum(lv != NONE and r.get('who') == 'other'
                                    for r, lv in zip(rows, levels)),
        'first_decel_s': record['first_decel_s'], 'dropouts': drops}


def run_seed(loaded: Any, mode: str, seed: int, encounters: int, planner: Dict[str, Any],
             c: float) -> List[Dict[str, Any]]:
    """Every committed merge of one seed in one mode, with the ego's monitor read per step."""
    out = []
    for fleet, env, encounter in oe.seed_encounters(loaded, mode, seed, encounters, planner, c,
                                                    'merge'):
        rows: List[Dict[str, Any]] = []
        levels: List[str] = []
        original = fleet.step

        def step(observations, now, dt, rows=rows, levels=levels):
            result = original(observations, now, dt)
            row = read_step(fleet, observations, now)
            if row is not None:
                rows.append(row)
                levels.append(result[script.EGO][1] if script.EGO in result else NONE)
            return result
        fleet.step = step
        try:
            record = oe.run_encounter(fleet, env, encounter, committed=True)
        finally:
            fleet.step = original
        summary = summarise(rows, levels, record, script.MERGE_LANES[2],
                            band_width(fleet.config), fleet.config.anticipation_ttc)
        print(f'call_cutin_tracks: {mode} c={c:g} seed {seed} {summary}', flush=True)
        out.append({'summary': summary, 'steps': [dict(r, level=lv)
                                                  for r, lv in zip(rows, levels)]})
    return out


def combine(out: Path, sets: List[str]) -> List[str]:
    """
    One line per mode and c over every JSON in `out`: means of the times, and counts.

    `change`, `override`: merger's centre ahead of the ego's [m] when its lane change starts /
    at the first override for it; `closing_speed`: the ego's speed minus the merger's along
    the road then [m/s]. `pred_band_err_s`: at the first step whose prediction enters the
    band, the predicted entry time minus the true one (positive: predicted late). Dropouts
    are split by where the merger's centre was: behind the ego's centre or not. `sets`: the
    runs' `--set` overrides (their band and anticipation TTC).
    """
    config = MonitorConfig.from_params(planner_params(parse_sets(sets)))
    band = band_width(config)
    lines = []
    for path in sorted(out.glob('cutin_tracks_*.json')):
        runs = json.loads(path.read_text())
        keys = ('told_s', 'seen_s', 'true_lane_change_s', 'pred_band_s', 'pred_conflict_s',
                'anticipation_s', 'override_s', 'merger_override_s', 'first_decel_s',
                'true_band_s')
        cells = []
        for key in keys:
            values = [r['summary'][key] for r in runs if r['summary'][key] is not None]
            cells.append(f'{key} {np.mean(values):.2f} ({len(values)})' if values
                         else f'{key} - (0)')
        errors, behind, drops, told_before_change, change_before_seen = [], 0, 0, 0, 0
        gaps: Dict[str, List[float]] = {'change': [], 'override': [], 'closing_speed': []}
        band_shared = 0
        for r in runs:
            s, steps = r['summary'], r['steps']
            first = next((x for x in steps if x.get('band') is not None), None)
            true = next((x['t'] for x in steps
                         if abs(x['m_y'] - script.MERGE_LANES[2]) < band), None)
            if first is not None and true is not None:
                errors.append(first['t'] + first['band'] - true)
            if first is not None and first.get('src') == 'shared':
                band_shared += 1
            overrides = merger_overrides(steps, [x['level'] for x in steps],
                                         config.anticipation_ttc)
            change_step = next((i for i, x in enumerate(steps) if x.get('m_vy', 0) > 0.2),
                               None)
            if change_step is not None and change_step > 0:
                x, before = steps[change_step], steps[change_step - 1]
                gaps['change'].append(x['m_x'] - x['ego_x'])
                merger_speed = (x['m_x'] - before['m_x']) / max(x['t'] - before['t'], 1e-6)
                gaps['closing_speed'].append(x['ego_speed'] - merger_speed)
            if overrides:
                x = steps[overrides[0]]
                gaps['override'].append(x['m_x'] - x['ego_x'])
                for x in steps[overrides[0]:overrides[-1] + 1]:
                    if x['level'] == NONE:
                        drops += 1
                        behind += int(x['m_x'] < x['ego_x'])
            change, seen = s['true_lane_change_s'], s['seen_s']
            told_before_change += int(s['told_s'] is not None and change is not None
                                      and s['told_s'] < change)
            change_before_seen += int(change is not None and seen is not None
                                      and change < seen)
        n = len(runs)
        lines.append(
            f'{path.stem}: n {n}, collisions {sum(r["summary"]["collision"] for r in runs)}; '
            + '; '.join(cells)
            + f'; pred_band_err_s {np.mean(errors):.2f} ({len(errors)})'
            + f'; first band prediction on a shared-only track {band_shared}'
            + f'; told before the lane change {told_before_change}'
            + f'; lane change before own sighting {change_before_seen}'
            + f'; dropout steps {drops}, merger behind the ego centre on {behind}'
            + ''.join(f'; {k} {np.mean(v):.1f}' for k, v in gaps.items() if v))
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point: read the ego's monitor per step in every committed merge."""
    parser = tuning_parser('call_cutin_tracks', __doc__)
    parser.add_argument('--combine', action='store_true',
                        help='print the per-mode figures of the JSONs in --out')
    args = parser.parse_args(argv)
    if args.combine:
        print('\n'.join(combine(Path(args.out), args.sets)))
        return 0
    if set(args.seeds) - set(TUNING_SEEDS):
        print(f'call_cutin_tracks: error: tuning seeds only {TUNING_SEEDS}', file=sys.stderr)
        return 2
    return run_all(args, run_seed, 'cutin_tracks')


if __name__ == '__main__':
    sys.exit(main())

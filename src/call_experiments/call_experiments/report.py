"""CSV files, the Markdown report and config.yaml of an evaluation (results/)."""
import csv
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence

from call_experiments.metrics import ema_smooth
import numpy as np
import yaml

DRIVING_COLUMNS = (
    'scenario', 'mode', 'threshold', 'success_rate_pct', 'route_completion_pct', 'avg_ttc_s',
    'avg_finite_ttc_s', 'collision_rate_pct', 'mean_return', 'mean_step_reward',
    'mean_neighbours', 'call_bytes_per_ego_step', 'raw_bev_same_bytes_per_ego_step',
    'raw_bev_all_bytes_per_ego_step', 'bev_message_bytes', 'episodes', 'env_steps',
    'vehicle_steps', 'trips', 'trips_ended', 'reached', 'collisions', 'off_road', 'timeouts',
    'cut_short', 'checkpoint', 'trained_mode', 'substitute', 'wall_s')
PREDICTION_COLUMNS = (
    'scenario', 'mode', 'k', 'model_pixel_accuracy', 'model_vehicle_iou',
    'copy_last_pixel_accuracy', 'copy_last_vehicle_iou', 'windows', 'checkpoint',
    'trained_mode', 'substitute')
FILES = ('table1_bandwidth.csv', 'table1_prediction.csv', 'table6_driving.csv',
         'fig19_20_threshold.csv', 'generalisation_driving.csv',
         'generalisation_prediction.csv', 'learning_curves.csv', 'report.md', 'config.yaml')


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """One header line, one line per row (missing keys empty)."""
    with open(path, 'w', newline='', encoding='utf-8') as stream:
        writer = csv.DictWriter(stream, fieldnames=list(columns), extrasaction='ignore')
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(row.get(k, '')) for k in columns})


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return 'inf' if math.isinf(value) else ('nan' if value != value else f'{value:.6g}')
    return value


def _num(value: Any, digits: int = 2) -> str:
    if value is None or value == '':
        return '—'
    value = float(value)
    if value != value:
        return 'n/a'
    if math.isinf(value):
        return '∞'
    return f'{value:.{digits}f}'


def _c(value: float) -> str:
    return '∞' if math.isinf(float(value)) else f'{float(value):g}'


def _mode_cell(row: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    label = labels.get(row['mode'], row['mode'])
    if row.get('substitute'):
        return f"{label} †({row['trained_mode']} model)"
    return label


def bandwidth_rows(results: Mapping[str, Any], settings: Mapping[str, Any]
                   ) -> List[Dict[str, Any]]:
    """Measured rows (sharing modes of Table 6) plus the analytic paper-scale row."""
    rows = []
    for row in results['driving']:
        if row['mode'] in ('lsi', 'lss'):
            rows.append({'what': f"measured {row['mode']} c={_c(row['threshold'])}",
                         'senders': row['mean_neighbours'],
                         'call_bytes': row['call_bytes_per_ego_step'],
                         'raw_bev_same_bytes': row['raw_bev_same_bytes_per_ego_step'],
                         'raw_bev_all_bytes': row['raw_bev_all_bytes_per_ego_step'],
                         'bev_message_bytes': row['bev_message_bytes']})
    senders = int(settings['paper_senders'])
    bev = int(results['bev_bytes_128'])
    waypoints = int(settings['bandwidth']['max_waypoints'])
    for deter, size in sorted(results['latent_message_bytes'].items()):
        rows.append({'what': f'analytic: {senders} senders, 128x128x7 BEV vs LSI message '
                             f'with h = {deter} (fp16) + {waypoints} waypoints',
                     'senders': senders, 'call_bytes': senders * size,
                     'raw_bev_same_bytes': senders * bev, 'raw_bev_all_bytes': senders * bev,
                     'bev_message_bytes': bev})
    return rows


def curve_rows(curves: Mapping[str, list], ema: float) -> List[Dict[str, Any]]:
    """Raw and smoothed points of every learning curve."""
    rows = []
    for mode, runs in curves.items():
        for logdir, steps, values in runs:
            smoothed, spread = ema_smooth(values, ema)
            for s, v, m, d in zip(steps, values, smoothed, spread):
                rows.append({'mode': mode, 'run': logdir, 'step': int(s), 'return': float(v),
                             'ema': float(m), 'ema_spread': float(d)})
    return rows


def write_all(out: Path, results: Mapping[str, Any], settings: Mapping[str, Any],
              provenance: Mapping[str, Any], labels: Mapping[str, str]) -> None:
    """Every CSV, report.md and config.yaml."""
    bw = bandwidth_rows(results, settings)
    write_csv(out / 'table1_bandwidth.csv', bw, ('what', 'senders', 'call_bytes',
                                                 'raw_bev_same_bytes', 'raw_bev_all_bytes',
                                                 'bev_message_bytes'))
    write_csv(out / 'table1_prediction.csv', results['prediction'], PREDICTION_COLUMNS)
    write_csv(out / 'table6_driving.csv', results['driving'], DRIVING_COLUMNS)
    write_csv(out / 'fig19_20_threshold.csv', results['threshold'], DRIVING_COLUMNS)
    write_csv(out / 'generalisation_driving.csv', results['gen_driving'], DRIVING_COLUMNS)
    write_csv(out / 'generalisation_prediction.csv', results['gen_prediction'],
              PREDICTION_COLUMNS)
    write_csv(out / 'learning_curves.csv',
              curve_rows(results['curves'], float(settings['learning_curves']['ema'])),
              ('mode', 'run', 'step', 'return', 'ema', 'ema_spread'))
    with open(out / 'config.yaml', 'w', encoding='utf-8') as stream:
        yaml.safe_dump(_plain(dict(provenance)), stream, sort_keys=False, width=99)
    (out / 'report.md').write_text(markdown(results, settings, provenance, labels, bw),
                                   encoding='utf-8')


def _plain(value: Any) -> Any:
    """Return a YAML-safe copy (tuples -> lists, numpy scalars -> Python; inf stays)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
    return lines


def markdown(results: Mapping[str, Any], settings: Mapping[str, Any],
             provenance: Mapping[str, Any], labels: Mapping[str, str],
             bw: Sequence[Mapping[str, Any]]) -> str:
    """Render the report: every table, links to the plots, what is missing and why, provenance."""
    ref = settings.get('paper_reference', {})
    lines = ['# CALL evaluation on the embedded simulator', '',
             f"Command: `{provenance['command']}`  ",
             f"Commit: `{provenance['git_commit']}`; config `{settings['name']}`; seeds "
             f"{settings['seeds']}; wall time {provenance['wall_time_s']} s.", '']
    for ck in provenance['checkpoints']:
        extra = ck['extra']
        trained_c = extra.get('c', extra.get('threshold', '?'))  # 'threshold': older checkpoints
        lines.append(f"- checkpoint `{ck['path']}`: trained in mode `{extra.get('mode', '?')}`"
                     f" (c = {trained_c}, preset {extra.get('preset', '?')},"
                     f" scenario {extra.get('scenario', '?')}) for {ck['env_steps']} env steps;"
                     f" world model {ck['world_model_params']:,} parameters, BEV "
                     f"{ck['config']['bev_size']} px.")
    lines += ['', '† = no checkpoint trained in this mode was given: the model trained in the '
              "named mode observes in this row's mode at evaluation time (an approximation "
              'of the paper, which trains one model per mode).', '']

    lines += ['## Table 1: bandwidth per ego per step', '',
              'Bytes one ego receives per 0.1 s step. CALL: exact serialized '
              'call_msgs/LatentMessage size (call_comm.wire_codec.serialized_size) of every '
              "neighbour its range gate admits. Raw BEV: the sender's BEV as a "
              'sensor_msgs/Image (C x S x S bytes) from the same neighbours, and from every '
              'other CALL vehicle (share everything).', '']
    lines += _table(['setting', 'senders / ego', 'CALL [KB]', 'raw BEV, same senders [KB]',
                     'raw BEV, all vehicles [KB]'],
                    [[r['what'], _num(r['senders']), _num(r['call_bytes'] / 1e3, 3),
                      _num(r['raw_bev_same_bytes'] / 1e3, 1),
                      _num(r['raw_bev_all_bytes'] / 1e3, 1)] for r in bw])
    paper_bw = ref.get('bandwidth_mb', {})
    if paper_bw:
        lines += ['', f"Paper: raw inputs {paper_bw.get('raw_inputs')} MB vs CALL "
                  f"{paper_bw.get('call')} MB per step (App. D: {paper_bw.get('share_all_230')}"
                  f" MB sharing everything among 230 vehicles, {paper_bw.get('call_measured')}"
                  ' MB CALL).']

    lines += ['', '## Table 1: k-step prediction accuracy', '',
              'Context 5 observed frames, then k steps imagined open loop with the actions '
              'actually taken; decoded BEV thresholded at 0.5 vs the BEV the agent observed k '
              'steps later (in its own mode). Pixel accuracy: equal pixels over all 7 channels. '
              'Vehicle IoU: IoU of the union of the seen and shared vehicle channels. '
              'Copy-last: the last context frame as the prediction.', '']
    paper_acc = ref.get('prediction_accuracy', {})
    rows = []
    for r in results['prediction']:
        paper = paper_acc.get('call' if r['mode'] == 'lsi' else 'without_sharing', {})
        rows.append([_mode_cell(r, labels), r['k'], _num(100 * r['model_pixel_accuracy'], 1),
                     _num(100 * r['model_vehicle_iou'], 1),
                     _num(100 * r['copy_last_pixel_accuracy'], 1),
                     _num(100 * r['copy_last_vehicle_iou'], 1),
                     f"{paper[r['k']]} %" if r['k'] in paper and r['mode'] in ('lsi', 'local')
                     else '—'])
    lines += _table(['mode', 'k', 'pixel acc [%]', 'vehicle IoU [%]', 'copy-last pixel acc [%]',
                     'copy-last IoU [%]', 'paper accuracy'], rows) if rows else \
        ['(not run or missing: see below)']

    lines += ['', '## Table 6: driving', '',
              'Success: reached trips / trips that ended by themselves (cut-short trips, whose '
              'fleet episode ended for another vehicle, excluded). Average TTC: mean of '
              f'min(TTC, {settings["metrics"]["ttc_cap"]} s) over vehicle-steps (finite-only '
              'mean in brackets). Collision rate: % of vehicle-steps in collision.', '']
    t6 = ref.get('table6', {})
    rows = []
    for r in results['driving']:
        paper = t6.get(r['mode'])
        rows.append([_mode_cell(r, labels), _num(r['success_rate_pct'], 1),
                     f"{_num(r['avg_ttc_s'])} ({_num(r['avg_finite_ttc_s'])})",
                     _num(r['collision_rate_pct']), _num(r['route_completion_pct'], 1),
                     _num(r['mean_return'], 1),
                     f"{r['trips_ended']}/{r['trips']}", r['env_steps'],
                     (f'{paper[0]} % / {paper[1]} s / {paper[2]} %' if paper else '—')])
    lines += _table(['mode', 'success [%]', 'avg TTC [s]', 'collision rate [%]',
                     'route completion [%]', 'return', 'trips ended/all', 'env steps',
                     'paper success / TTC / collisions'], rows) if rows else \
        ['(not run or missing: see below)']

    lines += ['', '## Fig. 19/20: return and bandwidth vs threshold c (CALL, LSI)', '',
              '![return vs c](fig19_return_vs_c.png) ![bandwidth vs c]'
              '(fig20_bandwidth_vs_c.png)', '']
    rows = [[_c(r['threshold']), _num(r['mean_return'], 1), _num(r['mean_step_reward'], 3),
             _num(r['mean_neighbours']), _num(r['call_bytes_per_ego_step'] / 1e3, 3),
             _num(r['success_rate_pct'], 1), _num(r['collision_rate_pct'])]
            for r in results['threshold']]
    lines += _table(['c', 'return', 'reward / step', 'neighbours', 'CALL KB / ego step',
                     'success [%]', 'collision rate [%]'], rows) if rows else \
        ['(not run or missing: see below)']
    if ref.get('threshold_c'):
        lines += ['', f"Paper: {ref['threshold_c']}."]

    lines += ['', '## Learning curves', '',
              f"TensorBoard scalar `{settings['learning_curves']['tag']}` vs environment "
              'steps, EMA '
              f"{settings['learning_curves']['ema']} (debiased, TensorBoard/wandb style), "
              'shaded: EMA of squared deviations.', '',
              '![learning curves](learning_curves.png)', '']
    ema = float(settings['learning_curves']['ema'])
    for mode, runs in results['curves'].items():
        for logdir, steps, values in runs:
            last = ema_smooth(values, ema)[0][-1]
            lines.append(f'- {labels.get(mode, mode)}: `{logdir}`: {len(values)} points, '
                         f'steps {int(steps[0])}..{int(steps[-1])}, last EMA {_num(last, 1)}')

    lines += ['', '## Generalisation: unseen two-lane road and crossroad', '']
    rows = [[r['scenario'], _mode_cell(r, labels), _num(r['success_rate_pct'], 1),
             _num(r['avg_ttc_s']), _num(r['collision_rate_pct']),
             _num(r['route_completion_pct'], 1), _num(r['mean_return'], 1), r['env_steps']]
            for r in results['gen_driving']]
    lines += _table(['map', 'mode', 'success [%]', 'avg TTC [s]', 'collision rate [%]',
                     'route completion [%]', 'return', 'env steps'], rows) if rows else \
        ['(driving not run or missing: see below)']
    rows = [[r['scenario'], _mode_cell(r, labels), r['k'],
             _num(100 * r['model_pixel_accuracy'], 1), _num(100 * r['model_vehicle_iou'], 1),
             _num(100 * r['copy_last_vehicle_iou'], 1)] for r in results['gen_prediction']]
    if rows:
        lines += [''] + _table(['map', 'mode', 'k', 'pixel acc [%]', 'vehicle IoU [%]',
                                'copy-last IoU [%]'], rows)

    lines += ['', '## Missing or not run', '']
    notes = [f'experiment `{name}` not run (--only)' for name in results['not_run']]
    notes += list(results['missing'])
    lines += [f'- {n}' for n in notes] if notes else ['- nothing: every row was produced.']
    lines += ['', 'Files: ' + ', '.join(f'`{f}`' for f in FILES) + ', `*.png`.', '']
    return '\n'.join(lines)

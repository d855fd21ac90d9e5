r"""
Scores of one predicted BEV frame against the one ground truth, and their aggregation.

Every mode (model with or without sharing, every baseline) is scored against the same truth:
the ego's unoccluded BEV over its own window at the target step, rendered from privileged
simulator state (``prediction_protocol``). Scores look at three classes:

* ``drivable`` and ``lane_markings``: the static road;
* ``vehicles``: every other vehicle, i.e. the union of the seen and shared vehicle channels.
  A predicted vehicle counts wherever the mode put it: with sharing, a vehicle the ego does
  not see lands in the shared channel, in the truth every vehicle is "seen". The ego box never
  moves in its own frame and the waypoint channels are plans, not the world: all three are
  left out (as in wayveai/fiery's and MILE's vehicle IoU).

Metrics per frame: ``pixel_accuracy`` (mean over the three classes and all pixels),
``vehicle_iou``, and over the hidden vehicles (those the ego's own sensors missed in every
context frame, rendered alone at the target step) ``hidden_recall`` = |P n H| / |H| and
``hidden_iou`` = |P n H| / |H u (P \ V)|: a prediction on a visible vehicle V neither helps
nor hurts, a predicted vehicle where there is none counts against. Frames without hidden
vehicles have no hidden scores (NaN, left out of their means). ``shared_recall`` is the recall
over given pixels (the protocol: at k = 0, the true vehicle pixels that only the updated BEV's
shared channel holds, i.e. whether the posterior keeps what sharing added); NaN elsewhere.
"""
import math
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

CLASSES = ('drivable', 'lane_markings', 'vehicles')
METRICS = ('pixel_accuracy', 'vehicle_iou', 'hidden_recall', 'hidden_iou', 'shared_recall')
CSV_COLUMNS = ('mode', 'k', 'metric', 'mean', 'ci_low', 'ci_high', 'seeds', 'windows')
# two-sided 95 % Student t quantiles for small samples (df 1..30); normal beyond
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def classes_of(bev: np.ndarray, channel_index: Mapping[str, int]) -> np.ndarray:
    """(C, S, S) BEV (non-zero / > 0.5 = on) -> (3, S, S) bool in CLASSES order."""
    on = bev > (0.5 if np.issubdtype(bev.dtype, np.floating) else 0)
    vehicles = on[channel_index['seen_vehicles']] | on[channel_index['shared_vehicles']]
    return np.stack([on[channel_index['drivable']], on[channel_index['lane_markings']],
                     vehicles])


def frame_scores(predicted: np.ndarray, truth: np.ndarray, hidden: np.ndarray,
                 shared: Optional[np.ndarray] = None) -> Dict[str, float]:
    """
    Score predicted against truth, both (3, S, S) bool (``classes_of``); hidden (S, S) bool.

    shared (S, S) bool: the pixels of ``shared_recall`` (None or empty: NaN).

    IoU of an empty truth and an empty prediction is 1 (nothing to find, nothing invented).
    """
    accuracy = float((predicted == truth).mean())
    p, v = predicted[2], truth[2]
    union = np.logical_or(p, v).sum()
    iou = float(np.logical_and(p, v).sum() / union) if union else 1.0
    scores = {'pixel_accuracy': accuracy, 'vehicle_iou': iou,
              'hidden_recall': math.nan, 'hidden_iou': math.nan, 'shared_recall': math.nan}
    if shared is not None and shared.any():
        scores['shared_recall'] = float(np.logical_and(p, shared).sum() / shared.sum())
    hidden_px = hidden.sum()
    if hidden_px:
        hit = np.logical_and(p, hidden).sum()
        false = np.logical_and(p, ~v).sum()
        scores['hidden_recall'] = float(hit / hidden_px)
        scores['hidden_iou'] = float(hit / (hidden_px + false))
    return scores


def mean_interval(values: Sequence[float]) -> Tuple[float, float, float, int]:
    """(mean, 95 % low, 95 % high, n) of the finite values (Student t; NaN if none)."""
    x = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(x.mean())
    if n == 1:
        return mean, mean, mean, 1
    t = _T95[n - 2] if n - 1 <= len(_T95) else 1.96
    half = t * float(x.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half, n


def aggregate(records: Iterable[Tuple[str, int, int, Dict[str, float]]]) -> List[Dict]:
    """
    Rows of CSV_COLUMNS from (mode, k, seed, scores) records, one per window and k.

    The interval is over the windows of all seeds together (windows of one episode are not
    independent, so it is narrower than an interval over seeds would be); ``windows`` counts
    the windows with a finite value (hidden metrics: those with a hidden vehicle).
    """
    grouped: Dict[Tuple[str, int, str], List[float]] = {}
    seeds: Dict[Tuple[str, int], set] = {}
    for mode, k, seed, scores in records:
        seeds.setdefault((mode, k), set()).add(seed)
        for metric in METRICS:
            grouped.setdefault((mode, k, metric), []).append(scores[metric])
    rows = []
    for (mode, k, metric), values in sorted(grouped.items()):
        mean, low, high, n = mean_interval(values)
        low, high = max(low, 0.0), min(high, 1.0)  # every metric is a fraction
        rows.append({'mode': mode, 'k': k, 'metric': metric, 'mean': mean, 'ci_low': low,
                     'ci_high': high, 'seeds': len(seeds[(mode, k)]), 'windows': n})
    return rows


def write_csv(rows: Sequence[Mapping], path: str) -> None:
    """Write rows with CSV_COLUMNS (floats with 5 decimals)."""
    with open(path, 'w') as handle:
        handle.write(','.join(CSV_COLUMNS) + '\n')
        for row in rows:
            cells = [f'{row[c]:.5f}' if isinstance(row[c], float) else str(row[c])
                     for c in CSV_COLUMNS]
            handle.write(','.join(cells) + '\n')


def read_csv(path: str) -> List[Dict]:
    """Rows of a CSV written by ``write_csv`` (numbers parsed back)."""
    with open(path) as handle:
        header = handle.readline().strip().split(',')
        rows = []
        for line in handle:
            row = dict(zip(header, line.strip().split(',')))
            row['k'], row['seeds'], row['windows'] = (int(row['k']), int(row['seeds']),
                                                      int(row['windows']))
            for key in ('mean', 'ci_low', 'ci_high'):
                row[key] = float(row[key])
            rows.append(row)
    return rows


def combine_seeds(tables: Sequence[Sequence[Mapping]]) -> List[Dict]:
    """
    Combine one table per seed into one row per (mode, k, metric).

    The mean of the seeds' means and its 95 % Student t interval over seeds, the independent
    units (windows of one episode are not); ``windows`` sums the seeds' finite windows. A seed
    without a finite mean is left out.
    """
    grouped: Dict[Tuple[str, int, str], List[Mapping]] = {}
    for table in tables:
        for row in table:
            grouped.setdefault((row['mode'], row['k'], row['metric']), []).append(row)
    rows = []
    for (mode, k, metric), group in sorted(grouped.items()):
        finite = [r for r in group if math.isfinite(r['mean'])]
        mean, low, high, n = mean_interval([r['mean'] for r in finite])
        low, high = max(low, 0.0), min(high, 1.0)  # every metric is a fraction
        rows.append({'mode': mode, 'k': k, 'metric': metric, 'mean': mean, 'ci_low': low,
                     'ci_high': high, 'seeds': n,
                     'windows': sum(r['windows'] for r in finite)})
    return rows

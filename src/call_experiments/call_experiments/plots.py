"""PNG figures of an evaluation (matplotlib, Agg backend: no display needed)."""
import math
from pathlib import Path
from typing import Any, Mapping

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402,I100,I202

from call_experiments.metrics import ema_smooth  # noqa: E402,I100

PNG_FILES = ('fig19_return_vs_c.png', 'fig20_bandwidth_vs_c.png', 'learning_curves.png',
             'table1_prediction.png', 'table6_driving.png')
COLOURS = {'full': 'tab:blue', 'lsi': 'tab:red', 'lss': 'tab:green', 'local': 'tab:gray'}


def _c_positions(thresholds):
    """Evenly spaced x positions labelled with c (c = inf has no place on a numeric axis)."""
    labels = ['∞' if math.isinf(c) else f'{c:g}' for c in thresholds]
    return list(range(len(thresholds))), labels


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha='center', va='center', transform=ax.transAxes, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def threshold_figures(out: Path, rows) -> None:
    """Fig. 19 (return vs c) and Fig. 20 (bandwidth vs c)."""
    rows = sorted(rows, key=lambda r: float(r['threshold']))
    x, labels = _c_positions([float(r['threshold']) for r in rows])
    for name, key, ylabel, scale in (
            ('fig19_return_vs_c.png', 'mean_return', 'mean return per vehicle trip', 1.0),
            ('fig20_bandwidth_vs_c.png', 'call_bytes_per_ego_step', 'KB per ego per step',
             1e-3)):
        fig, ax = plt.subplots(figsize=(5, 3.5))
        if rows:
            y = [float(r[key]) * scale for r in rows]
            ax.plot(x, y, 'o-', color=COLOURS['lsi'])
            if all(f'{key}_low' in r for r in rows):     # the 95 % interval over seeds
                ax.errorbar(x, y, yerr=[[v - float(r[f'{key}_low']) * scale
                                         for v, r in zip(y, rows)],
                                        [float(r[f'{key}_high']) * scale - v
                                         for v, r in zip(y, rows)]],
                            fmt='none', ecolor=COLOURS['lsi'], capsize=3)
            ax.set_xticks(x, labels)
            ax.set_xlabel('prediction-accuracy threshold c')
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
        else:
            _empty(ax, 'threshold sweep not run or missing\n(see report.md)')
        ax.set_title(('Return' if key == 'mean_return' else 'Bandwidth') + ' vs c (CALL)')
        _save(fig, out / name)


def learning_curve_figure(out: Path, curves: Mapping[str, list], ema: float,
                          labels: Mapping[str, str], tag: str = 'episode return') -> None:
    """Return vs env steps per mode, EMA-smoothed with the spread shaded."""
    fig, ax = plt.subplots(figsize=(6, 4))
    if not curves:
        _empty(ax, 'no TensorBoard runs given\n(--logdirs MODE=DIR)')
    for mode, runs in curves.items():
        for i, (_, steps, values) in enumerate(runs):
            smoothed, spread = ema_smooth(values, ema)
            colour = COLOURS.get(mode)
            ax.plot(steps, smoothed, color=colour, label=labels.get(mode, mode) if i == 0
                    else None)
            ax.fill_between(steps, smoothed - spread, smoothed + spread, color=colour,
                            alpha=0.2, linewidth=0)
    if curves:
        ax.set_xlabel('environment steps')
        ax.set_ylabel(tag)
        ax.legend()
        ax.grid(alpha=0.3)
    ax.set_title(f'Learning curves (EMA {ema})')
    _save(fig, out / 'learning_curves.png')


def prediction_figure(out: Path, rows, labels: Mapping[str, str]) -> None:
    """Table 1 accuracy vs k: pixel accuracy and vehicle IoU, model vs copy-last."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    if not rows:
        for ax in axes:
            _empty(ax, 'prediction not run or missing')
    for ax, metric, title in ((axes[0], 'pixel_accuracy', 'per-pixel accuracy'),
                              (axes[1], 'vehicle_iou', 'vehicle IoU')):
        for mode in sorted({r['mode'] for r in rows}):
            mine = sorted((r for r in rows if r['mode'] == mode), key=lambda r: r['k'])
            ks = [r['k'] for r in mine]
            ax.plot(ks, [r[f'model_{metric}'] for r in mine], 'o-', color=COLOURS.get(mode),
                    label=f'{labels.get(mode, mode)} model')
            ax.plot(ks, [r[f'copy_last_{metric}'] for r in mine], 'x--',
                    color=COLOURS.get(mode), alpha=0.6, label=f'{labels.get(mode, mode)} '
                    'copy-last')
        if rows:
            ax.set_xlabel('k (steps predicted)')
            ax.set_title(title)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    _save(fig, out / 'table1_prediction.png')


def driving_figure(out: Path, rows, labels: Mapping[str, str]) -> None:
    """Table 6 as bars: success rate, average TTC, collision rate per mode."""
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
    names = [labels.get(r['mode'], r['mode']) + (' †' if r.get('substitute') else '')
             for r in rows]
    for ax, key, title in ((axes[0], 'success_rate_pct', 'success rate [%]'),
                           (axes[1], 'avg_ttc_s', 'average TTC [s]'),
                           (axes[2], 'collision_rate_pct', 'collision rate [%]')):
        if not rows:
            _empty(ax, 'driving not run or missing')
            continue
        values = [float(r[key]) for r in rows]
        ax.bar(range(len(rows)), [0.0 if v != v else v for v in values],
               color=[COLOURS.get(r['mode']) for r in rows])
        ax.set_xticks(range(len(rows)), names, rotation=20, fontsize=7)
        ax.set_title(title)
    _save(fig, out / 'table6_driving.png')


def write_all(out: Path, results: Mapping[str, Any], settings: Mapping[str, Any],
              labels: Mapping[str, str]) -> None:
    """Every PNG of the report."""
    threshold_figures(out, results['threshold'])
    learning_curve_figure(out, results['curves'], float(settings['learning_curves']['ema']),
                          labels, settings['learning_curves']['tag'])
    prediction_figure(out, results['prediction'], labels)
    driving_figure(out, results['driving'], labels)

"""
`call_evaluate`: regenerate the paper's tables and figures on the embedded simulator.

One command runs fixed-seed, ROS-free evaluation episodes (simulator + BEV + range gate +
world model + planner cores, every CALL vehicle model-controlled) and writes ``results/``:
Table 1 (bandwidth, k-step prediction accuracy), Table 6 (success, TTC, collisions), Fig. 19/20
(return and bandwidth vs the threshold c), learning curves from TensorBoard runs, the unseen
two-lane road and crossroad, and config.yaml with the seeds, settings, checkpoints and commit.

A mode without a checkpoint of its own is evaluated with ``--checkpoint`` (a model trained in
another mode, observing in this mode at evaluation time) and marked as such in every table;
a mode with no usable checkpoint at all is reported as missing with the reason, never filled.
"""
import argparse
from dataclasses import replace
import hashlib
import os
from pathlib import Path
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

from call_experiments import metrics, plots, report
from call_experiments.bandwidth import image_message_size, latent_message_size, WireSettings
from call_experiments.experiment_config import load_experiment_config
from call_experiments.learning_curves import read_curves
from call_experiments.rollout import DrivingResult, run_driving, scenario_with
from call_learning.pipeline import MODES, PipelineConfig
from call_planner.plan_stage import planner_params
from call_sim import driving_metrics
from call_sim.driving_metrics import VehicleStep
from call_world_model import checkpoint
import numpy as np
import torch

MODE_LABELS = {'full': 'Full observation', 'lsi': 'CALL (LSI)', 'lss': 'LSS',
               'local': 'Local observation'}


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags."""
    parser = argparse.ArgumentParser(
        prog='call_evaluate', description='Regenerate the CALL paper tables and figures '
        '(Table 1, Table 6, Fig. 19/20, learning curves, generalisation) on the embedded '
        'simulator; writes CSV, Markdown and PNG files.')
    parser.add_argument('--checkpoint', default=None,
                        help='checkpoint used for every mode without its own --checkpoints')
    parser.add_argument('--checkpoints', action='append', default=[], metavar='MODE=PATH',
                        help='checkpoint trained in MODE (local, lss, lsi, full); repeatable')
    parser.add_argument('--logdirs', action='append', default=[], metavar='MODE=DIR',
                        help='TensorBoard run of call_train in MODE for the learning curves')
    parser.add_argument('--config', default='cpu',
                        help='experiment config: smoke | cpu | paper or a YAML of overrides')
    parser.add_argument('--set', dest='sets', action='append', default=[],
                        metavar='KEY.SUB=VALUE', help='override one experiment setting')
    parser.add_argument('--only', nargs='+', default=None,
                        choices=('driving', 'prediction', 'threshold', 'generalisation',
                                 'curves'),
                        help='run only these experiments (others are reported as not run)')
    parser.add_argument('--out', default='results', help='output directory')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    return parser


def parse_pairs(items: Sequence[str], flag: str) -> Dict[str, List[str]]:
    """['lsi=a.pt', 'lsi=b'] -> {'lsi': ['a.pt', 'b']}; modes must be known."""
    out: Dict[str, List[str]] = {}
    for item in items:
        mode, sep, value = item.partition('=')
        if not sep or mode not in MODES or not value:
            raise ValueError(f'{flag} expects MODE=VALUE with MODE in {MODES}, got {item!r}')
        out.setdefault(mode, []).append(value)
    return out


class Checkpoints:
    """Which checkpoint evaluates which mode, loaded once each."""

    def __init__(self, fallback: Optional[str], per_mode: Dict[str, List[str]]):
        """Validate paths eagerly: a missing or corrupt checkpoint fails before any episode."""
        for mode, paths in per_mode.items():
            if len(paths) != 1:
                raise ValueError(f'--checkpoints gives {len(paths)} paths for {mode}')
        self.paths = {mode: paths[0] for mode, paths in per_mode.items()}
        self.fallback = fallback
        self._loaded: Dict[str, Any] = {}
        self._sha256: Dict[str, str] = {}
        for path in set(self.paths.values()) | ({fallback} if fallback else set()):
            self.load(path)

    def load(self, path: str):
        """checkpoint.load once per path (CheckpointError names the problem)."""
        if path not in self._loaded:
            # hash the bytes that are loaded: the file may be replaced while we evaluate
            data = Path(path).read_bytes() if os.path.isfile(path) else b''
            self._loaded[path] = checkpoint.load(path, load_optimizers=False)
            self._sha256[path] = hashlib.sha256(data).hexdigest()
        return self._loaded[path]

    def for_mode(self, mode: str) -> Optional[Dict[str, Any]]:
        """{path, loaded, trained_mode, substitute} or None when nothing can evaluate mode."""
        path = self.paths.get(mode, self.fallback)
        if path is None:
            return None
        loaded = self.load(path)
        trained = str(loaded.meta['extra'].get('mode', 'unknown'))
        return {'path': path, 'loaded': loaded, 'trained_mode': trained,
                'substitute': mode not in self.paths and trained != mode}

    def describe(self) -> List[Dict[str, Any]]:
        """Provenance of every checkpoint (path, sha256, step, training metadata)."""
        rows = []
        for path, loaded in sorted(self._loaded.items()):
            digest = self._sha256[path]
            params = sum(p.numel() for p in loaded.world_model.parameters())
            ac_params = sum(p.numel() for p in loaded.actor_critic.parameters())
            rows.append({'path': os.path.abspath(path), 'sha256': digest, 'env_steps': loaded.step,
                         'extra': dict(loaded.meta['extra']), 'world_model_params': params,
                         'actor_critic_params': ac_params,
                         'config': loaded.cfg.to_dict()})
        return rows


def collect_settings(mode: str, c: float) -> PipelineConfig:
    """Sensing and gate settings of call_train's train.yaml for ``mode`` and threshold ``c``."""
    from call_learning.train import load_train_config
    values = dict(load_train_config())
    values.update(mode=mode, c=float(c))
    return PipelineConfig.from_mapping(values)


def conflict_metrics(result: DrivingResult) -> Dict[str, Any]:
    """
    Compute the per-conflict metrics of `call_sim.driving_metrics` (conventions there).

    Keys are prefixed `dm_`; these evaluation rollouts run the look-ahead (with its occupancy
    cost) without the safety monitor, so the override shares are 0 and the learned share 1.
    """
    steps = [VehicleStep((s.episode, s.role, s.trip), s.time, s.ttc, s.collision, s.accel)
             for s in result.steps]
    summary = driving_metrics.summarise(steps, [t.outcome for t in result.trips],
                                        [t.progress for t in result.trips])
    return {f'dm_{k}': v for k, v in summary.items() if k != 'conventions'}


def summarise_driving(result: DrivingResult, ttc_cap: float) -> Dict[str, Any]:
    """Table-6 numbers, returns and bandwidth of one (pooled) run."""
    steps, trips, bw = result.steps, result.trips, result.bandwidth
    outcomes = [t.outcome for t in trips]
    ended = [t for t in trips if t.outcome != 'cut_short']
    return {
        **conflict_metrics(result),
        'episodes': result.episodes, 'env_steps': result.env_steps,
        'vehicle_steps': len(steps), 'trips': len(trips), 'trips_ended': len(ended),
        'reached': outcomes.count('reached'), 'collisions': outcomes.count('collision'),
        'off_road': outcomes.count('off_road'), 'timeouts': outcomes.count('timeout'),
        'cut_short': outcomes.count('cut_short'),
        'success_rate_pct': metrics.success_rate(outcomes),
        'route_completion_pct': (100.0 * float(np.mean([t.progress for t in trips]))
                                 if trips else float('nan')),
        'avg_ttc_s': metrics.average_ttc([s.ttc for s in steps], ttc_cap),
        'avg_finite_ttc_s': metrics.average_finite_ttc([s.ttc for s in steps]),
        'collision_rate_pct': metrics.collision_rate([s.collision for s in steps]),
        'mean_return': float(np.mean([t.reward for t in trips])) if trips else float('nan'),
        'mean_step_reward': (float(np.mean([s.reward for s in steps])) if steps
                             else float('nan')),
        'mean_neighbours': float(np.mean([b.neighbours for b in bw])) if bw else 0.0,
        'call_bytes_per_ego_step': float(np.mean([b.call_bytes for b in bw])) if bw else 0.0,
        'raw_bev_same_bytes_per_ego_step': (float(np.mean([b.raw_bev_same_bytes for b in bw]))
                                            if bw else 0.0),
        'raw_bev_all_bytes_per_ego_step': (float(np.mean([b.raw_bev_all_bytes for b in bw]))
                                           if bw else float('nan')),
        'bev_message_bytes': result.bev_bytes,
    }


def _pooled(results: List[DrivingResult]) -> DrivingResult:
    pooled = DrivingResult()
    for r in results:
        # trip numbers restart in every run: shift them so pooled trips stay apart
        offset = max([t.number for t in pooled.trips], default=0)
        pooled.steps += [replace(s, trip=s.trip + offset) for s in r.steps]
        pooled.trips += [replace(t, number=t.number + offset) for t in r.trips]
        pooled.bandwidth += r.bandwidth
        pooled.episodes += r.episodes
        pooled.env_steps += r.env_steps
        pooled.bev_bytes = r.bev_bytes
    return pooled


class Evaluation:
    """Runs the experiments of one config and collects rows for the report."""

    def __init__(self, settings: Dict[str, Any], ckpts: Checkpoints, log=print):
        """Keep the settings, checkpoints and a logger of progress lines."""
        self.s = settings
        self.ckpts = ckpts
        self.log = log
        self.planner = planner_params(settings['planner'])
        self.wire = WireSettings.from_mapping(settings['bandwidth'])
        self.missing: List[str] = []

    # -------------------------------------------------------------------- building blocks
    def drive(self, mode: str, threshold: float, scenario: str, overrides: Dict[str, Any],
              episodes: int, max_env_steps: int, label: str) -> Optional[Dict[str, Any]]:
        """Pooled summary over the seeds, or None (reason added to ``missing``)."""
        ckpt = self.ckpts.for_mode(mode)
        if ckpt is None:
            self.missing.append(f'{label}: no checkpoint for mode {mode} and no --checkpoint')
            return None
        if not ckpt['loaded'].meta.get('has_actor_critic', False):
            self.missing.append(f'{label}: checkpoint {ckpt["path"]} has no actor-critic, '
                                'the planner cannot drive')
            return None
        from call_sim.env import MultiVehicleEnv
        runs, start = [], time.time()
        for seed in self.s['seeds']:
            torch.manual_seed(seed)
            env = MultiVehicleEnv.from_scenario(scenario_with(scenario, overrides))
            try:
                runs.append(run_driving(env, ckpt['loaded'], collect_settings(mode, threshold),
                                        int(episodes), int(seed), self.planner, self.wire,
                                        int(max_env_steps)))
            finally:
                env.close()
        row = summarise_driving(_pooled(runs), float(self.s['metrics']['ttc_cap']))
        row.update(mode=mode, threshold=threshold, scenario=scenario,
                   checkpoint=ckpt['path'], trained_mode=ckpt['trained_mode'],
                   substitute=ckpt['substitute'], wall_s=round(time.time() - start, 1))
        self.log(f'{label}: {mode} c={threshold}: success {row["success_rate_pct"]:.1f} % '
                 f'collisions {row["collision_rate_pct"]:.2f} % return {row["mean_return"]:.1f}'
                 f' ({row["env_steps"]} env steps, {row["wall_s"]} s)')
        return row

    def predict(self, mode: str, scenario: str, overrides: Dict[str, Any], label: str
                ) -> List[Dict[str, Any]]:
        """Rows (one per k) of pixel accuracy and vehicle IoU, model and copy-last baseline."""
        from call_sim.env import MultiVehicleEnv
        from call_learning.evaluate_prediction import evaluate
        ckpt = self.ckpts.for_mode(mode)
        if ckpt is None:
            self.missing.append(f'{label}: no checkpoint for mode {mode} and no --checkpoint')
            return []
        p = self.s['prediction']
        per_seed, start = [], time.time()
        for seed in self.s['seeds']:
            torch.manual_seed(seed)
            env = MultiVehicleEnv.from_scenario(scenario_with(scenario, overrides))
            try:
                per_seed.append(evaluate(
                    ckpt['loaded'].world_model, env,
                    collect_settings(mode, self.s['sharing']['c']),
                    horizons=p['horizons'], context=int(p['context']),
                    windows=int(p['windows']), env_steps=int(p['env_steps']),
                    policy=p['policy'], actor_critic=ckpt['loaded'].actor_critic,
                    seed=int(seed)))
            except ValueError as exc:
                self.missing.append(f'{label}: {mode} seed {seed}: {exc}')
            finally:
                env.close()
        rows = []
        for k in sorted(int(k) for k in p['horizons']):
            values = {}
            for who in ('model', 'copy_last'):
                for name in ('pixel_accuracy', 'vehicle_iou'):
                    vals = [r[k][who][name] for r in per_seed if k in r]
                    vals = [v for v in vals if v == v]
                    values[f'{who}_{name}'] = float(np.mean(vals)) if vals else float('nan')
            rows.append({'scenario': scenario, 'mode': mode, 'k': k, **values,
                         'windows': int(p['windows']) * len(per_seed),
                         'checkpoint': ckpt['path'], 'trained_mode': ckpt['trained_mode'],
                         'substitute': ckpt['substitute']})
        if rows:
            self.log(f'{label}: {mode}: ' + ', '.join(
                f'k={r["k"]} acc {r["model_pixel_accuracy"]:.3f} IoU '
                f'{r["model_vehicle_iou"]:.3f}' for r in rows)
                + f' ({time.time() - start:.0f} s)')
        return rows

    # -------------------------------------------------------------------- experiments
    def driving(self) -> List[Dict[str, Any]]:
        """Table 6 rows (and Table 1's bandwidth from the CALL row)."""
        d = self.s['driving']
        rows = []
        for mode in d['modes']:
            row = self.drive(mode, self.s['sharing']['c'], d['scenario'],
                             d['overrides'], d['episodes'], d['max_env_steps'], 'Table 6')
            if row is not None:
                rows.append(row)
        return rows

    def prediction(self) -> List[Dict[str, Any]]:
        """Table 1 accuracy rows on the training map."""
        p = self.s['prediction']
        rows = []
        for mode in p['modes']:
            rows += self.predict(mode, p['scenario'], p['overrides'], 'Table 1')
        return rows

    def threshold_sweep(self) -> List[Dict[str, Any]]:
        """Fig. 19/20 rows: CALL (LSI) at every c."""
        t, d = self.s['threshold_sweep'], self.s['driving']
        rows = []
        for c in t['thresholds']:
            row = self.drive('lsi', float(c), d['scenario'], d['overrides'], t['episodes'],
                             t['max_env_steps'], 'Fig. 19/20')
            if row is not None:
                rows.append(row)
        return rows

    def generalisation(self) -> tuple:
        """Driving and prediction rows on the unseen maps."""
        g = self.s['generalisation']
        drive_rows, pred_rows = [], []
        for scenario, overrides in g['scenarios'].items():
            for mode in g['modes']:
                row = self.drive(mode, self.s['sharing']['c'], scenario,
                                 overrides or {}, g['episodes'], g['max_env_steps'],
                                 f'Generalisation {scenario}')
                if row is not None:
                    drive_rows.append(row)
                if g['prediction']:
                    pred_rows += self.predict(mode, scenario, overrides or {},
                                              f'Generalisation {scenario}')
        return drive_rows, pred_rows


def analytic_message_sizes(ckpts: Checkpoints, wire: WireSettings) -> Dict[int, int]:
    """LSI LatentMessage bytes per h size: the evaluated models' and the paper's (2048)."""
    sizes = {}
    points = wire.max_waypoints
    waypoints = np.stack([np.linspace(2.0, 40.0, points), np.zeros(points)], axis=1)
    deters = {2048} | {int(ck['config']['deter']) for ck in ckpts.describe()}
    for deter in deters:
        sizes[deter] = latent_message_size(0.0, 0.0, 0.0, np.zeros(32, np.int64),
                                           np.zeros(deter, np.float32), waypoints, 'lsi', wire)
    return sizes


def git_commit() -> str:
    """Commit of the source tree (with '+dirty' when it has local changes), or 'unknown'."""
    root = Path(__file__).resolve().parents[3]
    try:
        commit = subprocess.run(['git', '-C', str(root), 'rev-parse', 'HEAD'],
                                capture_output=True, text=True, timeout=10, check=True
                                ).stdout.strip()
        dirty = subprocess.run(['git', '-C', str(root), 'status', '--porcelain'],
                               capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return 'unknown'
    return commit + ('+dirty' if dirty else '')


def run(args: argparse.Namespace, argv: Sequence[str]) -> Dict[str, Any]:
    """Run the selected experiments and write every artefact; returns the collected rows."""
    settings = load_experiment_config(args.config, args.sets)
    logdirs = parse_pairs(args.logdirs, '--logdirs')
    for mode, dirs in (settings['learning_curves']['logdirs'] or {}).items():
        logdirs.setdefault(mode, []).extend(dirs if isinstance(dirs, list) else [dirs])
    ckpts = Checkpoints(args.checkpoint, parse_pairs(args.checkpoints, '--checkpoints'))
    torch.set_num_threads(args.threads)
    only = set(args.only or ('driving', 'prediction', 'threshold', 'generalisation', 'curves'))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    evaluation = Evaluation(settings, ckpts,
                            log=lambda line: print(f'call_evaluate: {line}', flush=True))
    started = time.time()
    results: Dict[str, Any] = {'not_run': sorted({'driving', 'prediction', 'threshold',
                                                  'generalisation', 'curves'} - only)}
    results['driving'] = evaluation.driving() if 'driving' in only else []
    results['prediction'] = evaluation.prediction() if 'prediction' in only else []
    results['threshold'] = evaluation.threshold_sweep() if 'threshold' in only else []
    results['gen_driving'], results['gen_prediction'] = (
        evaluation.generalisation() if 'generalisation' in only else ([], []))
    curves = {}
    if 'curves' in only:
        curves, curve_missing = read_curves(logdirs, settings['learning_curves']['tag'],
                                            MODES)
        evaluation.missing += curve_missing
    results['curves'] = curves
    results['missing'] = evaluation.missing
    results['bev_bytes_128'] = image_message_size(7, 128)
    results['latent_message_bytes'] = analytic_message_sizes(ckpts, evaluation.wire)
    provenance = {
        'command': 'python -m call_experiments.evaluate ' + ' '.join(argv),
        'git_commit': git_commit(),
        'wall_time_s': round(time.time() - started, 1),
        'torch_threads': args.threads,
        'checkpoints': ckpts.describe(),
        'checkpoint_for_mode': {m: (ckpts.for_mode(m) or {}).get('path') for m in MODES},
        'learning_curve_logdirs': logdirs,
        'settings': settings,
    }
    report.write_all(out, results, settings, provenance, MODE_LABELS)
    plots.write_all(out, results, settings, MODE_LABELS)
    return results


def main(argv: Optional[List[str]] = None) -> int:
    """Console entry point; bad flags, config or checkpoints exit with status 2 and why."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        results = run(args, argv)
    except (ValueError, FileNotFoundError, checkpoint.CheckpointError) as exc:
        print(f'call_evaluate: error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('call_evaluate: interrupted', file=sys.stderr)
        return 130
    print(f'call_evaluate: wrote {args.out}/report.md ({len(results["missing"])} missing '
          f'items listed there)')
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""
One world-model update (``WorldModel.train_step``) before and after a change, in one run.

The code of ``--baseline`` (a git revision) is exported to a temporary directory; the same
worker (this file with ``--worker``) then times the baseline's and the working tree's
``call_world_model`` in alternating subprocesses (A B A B ...), so a machine whose load drifts
affects both alike. Same preset, batch, seed and random replay-like batch for both; prints
the median wall and CPU (process) ms per update of each, the speed-ups (CPU time is the
steadier figure on a shared machine), and both image losses of the first update
(equal up to float rounding when the change keeps the computation).

    python bench/bench_train_step.py --baseline 48f4be8 --presets small64g8 small \
        --after-set train_conv_bf16=true

``--after-preset P`` times preset P in the working tree against each ``--presets`` entry in
the baseline: the update of the model shipped now against the one shipped then (a different
model, so the image losses differ).
"""
import argparse
import json
import os
from pathlib import Path
import statistics
import subprocess
import sys
import tempfile
import time
from machine_reference import print_reference

ROOT = Path(__file__).resolve().parents[1]


def worker(args) -> None:
    """Time train_step of the call_world_model on sys.path; print one JSON line."""
    import torch
    from call_world_model.config import load_config
    from call_world_model.shared_pooling import SharedBatch
    from call_world_model.world_model import WorldModel
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    overrides = {}
    for item in args.set or []:
        key, value = item.split('=', 1)
        overrides[key] = {'true': True, 'false': False}.get(value, value)
    cfg = load_config(args.preset, overrides or None)
    model = WorldModel(cfg)
    gen = torch.Generator().manual_seed(1)
    b, t, s = args.batch, args.length, cfg.bev_size
    shared = SharedBatch.empty((b, t), cfg)
    shared.mask[..., :2] = True
    shared.z_indices = torch.randint(0, cfg.classes, shared.z_indices.shape, generator=gen)
    batch = {
        'bev': (torch.rand(b, t, cfg.bev_channels, s, s, generator=gen) > 0.9).to(torch.uint8),
        'prev_action': torch.randint(0, cfg.num_actions, (b, t), generator=gen),
        'reward': torch.randn(b, t, generator=gen), 'cont': torch.ones(b, t),
        'is_first': torch.zeros(b, t, dtype=torch.bool),
        'intention': torch.randn(b, t, cfg.intention_points, 2, generator=gen),
        'shared': shared}
    batch['is_first'][:, 0] = True
    first, _ = model.train_step(batch)
    times, cpu = [], []
    for _ in range(args.repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        model.train_step(batch)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    print(json.dumps({'ms': [1000.0 * x for x in times], 'cpu_ms': [1000.0 * x for x in cpu],
                      'image_loss': first['image_loss']}))


def export(revision: str, into: str) -> str:
    """Write src/call_world_model of ``revision`` under ``into``; return its package dir."""
    archive = subprocess.run(['git', '-C', str(ROOT), 'archive', revision,
                              'src/call_world_model'], check=True, capture_output=True).stdout
    subprocess.run(['tar', '-x', '-C', into], input=archive, check=True)
    return os.path.join(into, 'src', 'call_world_model')


def run_worker(package_dir: str, args, preset: str, overrides=()) -> dict:
    """One subprocess of this file with --worker and ``package_dir`` first on sys.path."""
    env = dict(os.environ)
    env['PYTHONPATH'] = package_dir + os.pathsep + env.get('PYTHONPATH', '')
    command = [sys.executable, __file__, '--worker', '--preset', preset,
               '--batch', str(args.batch), '--length', str(args.length),
               '--repeats', str(args.repeats), '--threads', str(args.threads)]
    for item in overrides:
        command += ['--set', item]
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    """Compare the baseline revision with the working tree."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--baseline', default='HEAD~1', help='git revision before the change')
    parser.add_argument('--presets', nargs='+', default=['small64g8', 'small'])
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--length', type=int, default=32)
    parser.add_argument('--repeats', type=int, default=3, help='timed updates per subprocess')
    parser.add_argument('--rounds', type=int, default=2, help='A B alternations')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--after-set', nargs='*', default=[], metavar='KEY=VALUE',
                        help='config overrides of the working tree run, e.g. '
                             'train_conv_bf16=true')
    parser.add_argument('--after-preset', default=None,
                        help='preset of the working tree run (default: the same preset)')
    parser.add_argument('--set', action='append', help=argparse.SUPPRESS)
    parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--preset', default='small64g8', help=argparse.SUPPRESS)
    args = parser.parse_args()
    print_reference()
    if args.worker:
        worker(args)
        return 0
    current = str(ROOT / 'src' / 'call_world_model')
    print(f'after: working tree with {args.after_set or "its defaults"}')
    print(f'batch {args.batch} x {args.length}, {args.threads} torch thread(s), '
          f'{args.rounds} x {args.repeats} timed updates each; load {os.getloadavg()[0]:.1f}')
    with tempfile.TemporaryDirectory() as tmp:
        before = export(args.baseline, tmp)
        for preset in args.presets:
            samples = {'before': [], 'after': []}
            cpu = {'before': [], 'after': []}
            losses = {}
            for _ in range(args.rounds):
                for name, path, extra, timed in (
                        ('before', before, (), preset),
                        ('after', current, args.after_set, args.after_preset or preset)):
                    result = run_worker(path, args, timed, extra)
                    samples[name] += result['ms']
                    cpu[name] += result['cpu_ms']
                    losses[name] = result['image_loss']
            a, b = statistics.median(samples['before']), statistics.median(samples['after'])
            ca, cb = statistics.median(cpu['before']), statistics.median(cpu['after'])
            print(f'{preset}: before ({args.baseline}) {a:.0f} ms/update wall, {ca:.0f} ms CPU; '
                  f'after ({args.after_preset or preset}) {b:.0f} ms wall, {cb:.0f} ms CPU; '
                  f'speed-up x{a / b:.2f} wall, '
                  f'x{ca / cb:.2f} CPU; first image loss {losses["before"]:.2f} vs '
                  f'{losses["after"]:.2f}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

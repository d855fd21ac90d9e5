"""
Share of a container's tick CPU spent before its last command (`bench/critical_path` probe).

Per container file DIR/crit-<pid>.json: for each step after the warm-up, the executor thread's
CPU from the step's first odometry callback to its last control publish ("before the
command") and to the next step's first odometry callback (the container's CPU per tick).
Prints the means and their ratio per container. Usage: `python bench/critical_path_report.py
DIR [DIR ...]`.
"""
import argparse
import glob
import json
import statistics


def container_figures(path: str, warmup: int) -> tuple:
    """Return (mean ms before the command, mean ms per tick, share) of one container file."""
    with open(path, encoding='utf-8') as stream:
        data = json.load(stream)
    odometry = {int(k): v for k, v in data['odo'].items()}
    control = {int(k): v for k, v in data['ctl'].items()}
    stamps = sorted(set(odometry) & set(control))[warmup:]
    before = [control[a] - odometry[a] for a in stamps[:-1]]
    tick = [odometry[b] - odometry[a] for a, b in zip(stamps, stamps[1:])]
    if not tick:
        return float('nan'), float('nan'), float('nan')
    return 1e3 * statistics.mean(before), 1e3 * statistics.mean(tick), sum(before) / sum(tick)


def main() -> None:
    """Print one line per directory: before the command / CPU per tick / share, per container."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('dirs', nargs='+')
    parser.add_argument('--warmup', type=int, default=20, help='steps skipped at the start')
    args = parser.parse_args()
    for directory in args.dirs:
        rows = [container_figures(path, args.warmup)
                for path in sorted(glob.glob(f'{directory}/crit-*.json'))]
        print(f'{directory}: before the command / CPU per tick [ms] / share, per container: '
              + '  |  '.join(f'{b:.1f} / {t:.1f} / {s:.3f}' for b, t, s in rows))


if __name__ == '__main__':
    main()

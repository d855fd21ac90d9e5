"""
CPU cost of the Foxglove live view (`--foxglove`) with no client connected.

    python bench/bench_foxglove.py [--vehicles 4] [--ticks 100] [--warmup 20]

Runs the demo's layout (four vehicles per process, 40 background vehicles) with the live view
beside it, as bench/bench_bringup.py measures the graph, and prints the live view's CPU time
per tick against the CPU time of the whole graph per tick (Linux /proc, all processes).
Target: the server costs at most 5 % of a tick's CPU while no client is connected.
Asserts nothing.
"""
import argparse
import os
import sys
import tempfile

from bench_bringup import measure, reference_ms
from call_bringup.demo import demo_checkpoint
from call_bringup.foxglove_live import DEFAULT_PORT, foxglove_unit


def main() -> int:
    """Measure and print the live view's share of a tick's CPU."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--vehicles', type=int, default=4)
    parser.add_argument('--ticks', type=int, default=100)
    parser.add_argument('--warmup', type=int, default=20)
    parser.add_argument('--background', type=int, default=40)
    parser.add_argument('--port', type=int, default=DEFAULT_PORT)
    parser.add_argument('--timeout', type=float, default=300.0)
    args = parser.parse_args()
    checkpoint = demo_checkpoint(None, tempfile.mkdtemp(prefix='bench_ckpt_'))
    print(f'{args.vehicles} CALL vehicles (one process), {args.background} background; '
          f'{args.warmup} warm-up ticks, {args.ticks} measured; {os.cpu_count()} CPUs; '
          f'machine reference {reference_ms(checkpoint):.2f} ms (one observe step)')
    row = measure(args.vehicles, 'grouped', args.vehicles, checkpoint, args.ticks,
                  args.warmup, args.background, args.timeout,
                  extra_units=lambda roles: [foxglove_unit(roles, args.port)])
    if row['error'] or not row['cpu_ms_by_unit']:
        print(f'no measurement: {row["error"]} (log {row["log"]})')
        return 1
    server = row['cpu_ms_by_unit'].get('foxglove', 0.0)
    total = row['cpu_ms']
    print(f'ticks measured: {row["ticks"]}, mean {row["mean_ms"]:.1f} ms/tick wall')
    for label, value in sorted(row['cpu_ms_by_unit'].items()):
        print(f'  {label:>40}: {value:7.2f} ms CPU per tick')
    print(f'live view, no client: {server:.2f} ms CPU per tick = {100.0 * server / total:.2f} % '
          f'of the tick\'s {total:.1f} ms CPU (target <= 5 %); '
          f'{server / row["mean_ms"] * 100.0:.2f} % of one core')
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""Median milliseconds per BEV (visibility + fusion + rasterisation + colour) at 128x128.

    python bench/bench_bev.py [--vehicles 60] [--frames 2000]

Scene: a 4-lane, 1 km straight plus a curved 2-lane ramp, the ego driving along it, N other
vehicles (cars and trucks) scattered within +-40 m of the ego (the hardest case: all of them in
or near the 64 m window), 3 shared neighbours with 10-point intentions, a 20-point ego plan.
Target (issue 4): <= 1 ms median for render incl. visibility with 60 vehicles on 2 cores.
"""
import argparse
import math
import statistics
import time
from types import SimpleNamespace

from call_perception.bev_raster import BevConfig, BevRasterizer
from call_perception.colorize import colorize
from call_perception.fusion import fuse_shared, SharedNeighbour
from call_perception.lane import Lane
from call_perception.road_map import RoadMap
from call_perception.visibility import visible
import numpy as np
from machine_reference import print_reference


def _box(x, y, yaw, length=4.6, width=2.0):
    return SimpleNamespace(x=x, y=y, yaw=yaw, length=length, width=width)


def _road() -> RoadMap:
    lanes = [Lane(f'h{i}', np.array([[-500.0, (i - 1.5) * 3.5], [500.0, (i - 1.5) * 3.5]]), 3.5)
             for i in range(4)]
    theta = np.linspace(-math.pi / 2, 0.0, 60)
    for i in range(2):
        radius = 80.0 + 3.5 * i
        ramp = np.stack([radius * np.cos(theta), radius * np.sin(theta) + 90.0], axis=1)
        lanes.append(Lane(f'r{i}', ramp, 3.5))
    return RoadMap.from_lanes(lanes)


def _time_ms(fn, frames: int) -> list:
    times = []
    for _ in range(frames):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description='BEV rasterisation benchmark')
    parser.add_argument('--vehicles', type=int, default=60)
    parser.add_argument('--frames', type=int, default=2000)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    print_reference()

    rng = np.random.default_rng(args.seed)
    config = BevConfig.from_yaml()
    road = _road()
    rasterizer = BevRasterizer(config, road)
    scenes = []
    for _ in range(64):  # cycle through scenes so caches do not flatter the numbers
        ego = _box(rng.uniform(-300, 300), -1.75, rng.uniform(-0.1, 0.1))
        others = []
        for _ in range(args.vehicles):
            truck = rng.random() < 0.15
            others.append(_box(ego.x + rng.uniform(-40, 40), rng.uniform(-6, 6),
                               rng.uniform(-0.15, 0.15), 12.0 if truck else 4.6,
                               2.6 if truck else 2.0))
        plan = np.stack([ego.x + np.linspace(0, 40, 20), np.full(20, -1.75)], axis=1)
        shared = [SharedNeighbour(f'hero{k}', o.x, o.y, o.yaw,
                                  np.stack([o.x + np.linspace(0, 30, 10), np.full(10, o.y)], 1))
                  for k, o in enumerate(others[:3])]
        scenes.append((ego, others, plan, shared))
    state = {'i': 0}

    def one_frame(colour: bool):
        ego, others, plan, shared = scenes[state['i'] % len(scenes)]
        state['i'] += 1
        mask = visible(ego, others, 32.0)
        seen = [b for b, v in zip(others, mask) if v]
        layer = fuse_shared(shared, seen, ego)
        bev = rasterizer.render(ego, seen, layer.vehicles, plan, layer.waypoints)
        if colour:
            colorize(bev)
        return mask

    ego, others, _, _ = scenes[0]
    parts = {
        'visibility (occlusion on)': lambda: visible(ego, others, 32.0),
        'render only (all vehicles drawn)': lambda: rasterizer.render(ego, others),
        'visibility + fusion + render': lambda: one_frame(False),
        'visibility + fusion + render + colorize': lambda: one_frame(True),
    }
    for fn in parts.values():  # warm-up
        for _ in range(50):
            fn()
    seen_fraction = statistics.mean(float(one_frame(False).mean()) for _ in range(64))
    print(f'BEV {config.size}x{config.size} @ {config.metres_per_pixel} m/px, '
          f'{args.vehicles} vehicles, {args.frames} frames, '
          f'{seen_fraction * 100:.0f}% of vehicles visible (occlusion on)')
    for name, fn in parts.items():
        times = _time_ms(fn, args.frames)
        print(f'  {name:42s} median {statistics.median(times):.3f} ms   '
              f'p90 {np.percentile(times, 90):.3f} ms')


if __name__ == '__main__':
    main()

"""
call_planner benchmark: planning latency per vehicle per tick (paper eq. 3 look-ahead).

    python bench/bench_planner.py [--presets small L] [--horizons 5 15] [--ticks 200]
                                  [--paths indexed reference] [--threads 1] [--json]
                                  [--occupancy-every 0 1 5] [--batch 4]

Per tick = what the planner node does for one LatentState: rebuild the model state from
(z indices, h), then one look-ahead with all 15 first actions imagined as one batch for K steps
(world-model prior step + reward / continue heads, actor after the first step, critic at
step K). Path `indexed` is what the planner runs (call_planner.indexed_lookahead: z as class
indices, one-hot products as gathers); `reference` is the generic `lookahead.plan` over the
world model's own modules. `--occupancy-every n` adds the occupancy cost
(call_planner.occupancy_cost: the footprint window of the vehicle channels decoded for every
n-th imagined step; 0 = without it). The TTC safety monitor's cost per tick (one 128 px BEV
with 12 vehicles tracked, then the assessment) is printed last, after the conflict cost's
(call_planner.conflict_cost, planner.yaml's: 15 candidates against 12 tracks, on a straight
road without a route, in a tight bend where the candidates follow the route, and on the
straight road with a route along the ego's lane, where each path goes back onto it after
its rollout, `conflict_on_route`). The costliest of the three is added to the small
preset's CPU median (`cpu_with_conflict_ms`, the figure held to the target). `--batch N`
(N > 1) also times N vehicles' look-aheads of one tick planned alone against planned as one
imagination (call_planner.lookahead_batch, as a container's planner nodes run them):
interleaved rounds, thread CPU per vehicle, small preset with the planner's
occupancy cost.
Models are randomly initialised from call_world_model's presets (latency does not depend on
the weights). The L preset is timed with fewer ticks (it is a GPU-sized model).
Target: small preset, K = 5, 1 CPU thread, median <= 10 ms with the occupancy cost. Wall time
(median_ms, p95_ms) includes waiting for a core on a loaded machine; cpu_*_ms is this
process's CPU time per tick, the cost of planning itself. The load average is printed.
"""
import argparse
from dataclasses import replace
import json
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for pkg in ('call_planner', 'call_world_model', 'call_sim', 'call_perception', 'call_vehicle'):
    sys.path.insert(0, os.path.join(ROOT, 'src', pkg))

# after the source paths: importable without a colcon install
from call_planner.indexed_lookahead import IndexedLookahead  # noqa: E402, I100, I202
from call_planner.lookahead import plan  # noqa: E402
from call_planner.lookahead_batch import LookaheadRequest, plan_together  # noqa: E402
from call_planner.model_state import imagination_kwargs, state_from_latent  # noqa: E402
from call_planner.occupancy_cost import OccupancyConfig, OccupancyCost  # noqa: E402
from call_planner.plan_stage import conflict_cost_from_params, planner_params  # noqa: E402
from call_planner.route_cost import RouteContext  # noqa: E402
from call_planner.shared_tracks import shared_tracks, SharedState  # noqa: E402
from call_planner.ttc_monitor import BevGeometry, MonitorConfig, Track, TtcMonitor  # noqa: E402
from call_vehicle.intention import intention_waypoints  # noqa: E402
from call_vehicle.vehicle_model import BicycleModel  # noqa: E402
from call_world_model.actor_critic import ActorCritic  # noqa: E402
from call_world_model.config import load_config  # noqa: E402
from call_world_model.world_model import WorldModel  # noqa: E402
from machine_reference import print_reference  # noqa: E402

TARGET_MS = 10.0


def bench(preset: str, horizon: int, ticks: int, path: str, occupancy_every: int = 0,
          warmup: int = 5) -> dict:
    """Time `ticks` look-aheads from random model states; returns the figures."""
    torch.manual_seed(0)
    cfg = load_config(preset)
    model = WorldModel(cfg).eval()
    actor = ActorCritic(cfg, cfg.feat_dim, cfg.num_actions).eval()
    rng = np.random.default_rng(0)
    kwargs = imagination_kwargs(model, sample_latent=False)
    occupancy = (OccupancyCost(model, OccupancyConfig(every=occupancy_every))
                 if occupancy_every > 0 else None)
    indexed = IndexedLookahead(model, actor, occupancy) if path == 'indexed' else None
    times, cpu_times = [], []
    for i in range(warmup + ticks):
        z = rng.integers(0, cfg.classes, cfg.stoch).astype(np.uint8)
        h = np.tanh(rng.standard_normal(cfg.deter)).astype(np.float32)
        start, cpu_start = time.perf_counter(), time.process_time()
        state = state_from_latent(z, h, cfg.stoch, cfg.classes)
        if indexed is not None:
            indexed.plan(state, cfg.num_actions, horizon, cfg.gamma, imagine_kwargs=kwargs)
        else:
            plan(model, actor, state, cfg.num_actions, horizon, cfg.gamma,
                 imagine_kwargs=kwargs, occupancy=occupancy)
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
            cpu_times.append((time.process_time() - cpu_start) * 1e3)
    params = sum(p.numel() for p in model.parameters()) + sum(
        p.numel() for p in actor.parameters())
    return {'preset': preset, 'K': horizon, 'path': path,
            'occupancy_every': occupancy_every, 'ticks': ticks, 'threads': torch.get_num_threads(),
            'params_M': round(params / 1e6, 1),
            'median_ms': round(float(np.median(times)), 2),
            'p95_ms': round(float(np.percentile(times, 95)), 2),
            'cpu_median_ms': round(float(np.median(cpu_times)), 2),
            'cpu_p95_ms': round(float(np.percentile(cpu_times, 95)), 2)}


def bench_batch(preset: str, horizon: int, vehicles: int, rounds: int,
                occupancy_every: int = 5) -> dict:
    """CPU per vehicle of `vehicles` look-aheads alone vs as one imagination (interleaved)."""
    torch.manual_seed(0)
    cfg = load_config(preset)
    model = WorldModel(cfg).eval()
    actor = ActorCritic(cfg, cfg.feat_dim, cfg.num_actions).eval()
    occupancy = OccupancyCost(model, OccupancyConfig(every=occupancy_every))
    rng = np.random.default_rng(0)
    lookaheads = [IndexedLookahead(model, actor, occupancy) for _ in range(vehicles)]
    cpu = {'alone': [], 'together': []}
    for i in range(rounds + 3):
        requests = [LookaheadRequest(
            lookahead, state_from_latent(rng.integers(0, cfg.classes, cfg.stoch).astype(np.uint8),
                                         np.tanh(rng.standard_normal(cfg.deter)).astype(
                                             np.float32), cfg.stoch, cfg.classes),
            cfg.num_actions, horizon, cfg.gamma) for lookahead in lookaheads]
        for mode in (('alone', 'together') if i % 2 else ('together', 'alone')):
            start = time.thread_time()
            if mode == 'alone':
                for request in requests:
                    request.alone()
            else:
                plan_together(requests)
            if i >= 3:
                cpu[mode].append((time.thread_time() - start) * 1e3 / vehicles)
    return {'preset': preset, 'K': horizon, 'vehicles': vehicles, 'rounds': rounds,
            'occupancy_every': occupancy_every,
            'cpu_alone_ms_per_vehicle': round(float(np.median(cpu['alone'])), 3),
            'cpu_together_ms_per_vehicle': round(float(np.median(cpu['together'])), 3)}


def bench_monitor(ticks: int, vehicles: int = 12) -> dict:
    """Time the TTC monitor per tick: one BEV's blobs tracked, then the assessment."""
    monitor = TtcMonitor(MonitorConfig(), BevGeometry())
    rng = np.random.default_rng(0)
    starts = rng.integers(10, 110, (vehicles, 2))
    times = []
    for i in range(ticks):
        seen = np.zeros((128, 128), bool)
        for k, (row, col) in enumerate(starts):
            row = (row + i) % 118
            seen[row:row + 9, col:col + 4] = k % 2 == 0
        shared = np.zeros_like(seen)
        for k, (row, col) in enumerate(starts):
            if k % 2:
                shared[(row + i) % 118:(row + i) % 118 + 9, col:col + 4] = True
        start = time.process_time()
        monitor.observe(0.1 * i, seen, shared, (0.8 * i, 0.0, 0.0))
        monitor.assess(0.1 * i, (0.8 * i, 0.0, 0.0), 8.0)
        times.append((time.process_time() - start) * 1e3)
    return {'monitor_vehicles': vehicles, 'ticks': ticks,
            'cpu_median_ms': round(float(np.median(times)), 3),
            'cpu_p95_ms': round(float(np.percentile(times, 95)), 3)}


def right_turn_route() -> np.ndarray:
    """A route north into a right turn of the crossroad's 5.75 m radius, then east (M, 2)."""
    turn = np.linspace(np.pi, np.pi / 2, 20)
    bend = np.stack([5.75 + 5.75 * np.cos(turn), -10.0 + 5.75 * np.sin(turn)], 1)
    return np.vstack([[0.0, -40.0], [0.0, -10.0], bend[1:], [40.0, -4.25]])


def bench_conflict(ticks: int, vehicles: int = 12, bend: bool = False,
                   with_route: bool = False) -> dict:
    """
    Time the conflict cost per look-ahead: 15 candidates against `vehicles` tracks.

    A four-lane road (lanes 3.5 m apart), the tracks within the BEV's 64 m at 3-12 m/s, the
    ego at 10 m/s in one of the middle lanes; a new random scene and candidates every tick.
    Every third track is a neighbour's message turning at up to 0.2 rad/s for
    planner.yaml's `monitor_shared_turn_time` (call_planner.shared_tracks), and, with
    planner.yaml's `monitor_shared_decel`, braking at 1-6 m/s^2 as its declared path would
    say (until it stands, or for the 0.3 s a fresh five-point path has left with
    `monitor_shared_decel_to_stop` off); the rest BEV blobs at constant velocity. With
    `bend` the ego drives north at 5 m/s into a right turn tighter than the action set turns,
    across the same road, so every candidate's path is its route (planner.yaml's
    `turn_assist_route_path`, call_planner.route_path). With `with_route` the straight
    road's ego has a route along its lane, and each candidate's path goes back onto it after
    the rollout (planner.yaml's `conflict_on_route`).
    """
    params = planner_params(None)
    cost = conflict_cost_from_params(params)                 # planner.yaml's
    monitor = MonitorConfig.from_params(params)
    turn_time = monitor.shared_turn_time
    # how long planner.yaml predicts a fresh five-point braking path to brake (the tracks'
    # own construction, call_planner.shared_tracks: until it stands, or over the path)
    braking = intention_waypoints(BicycleModel(), (0.0, 0.0, 0.0), 10.0, [(-3.0, 0.0)] * 5)
    decel_time = shared_tracks([SharedState(0.0, 0.0, 0.0, 10.0, 0.0, braking)], 0.0,
                               replace(monitor, shared_decel=True))[0][0].decel_time
    pose, speed, route = (0.0, 0.0, 0.0), 10.0, np.zeros((0, 2))
    if with_route:
        route = np.stack([np.arange(-4.0, 64.0, 2.0), np.zeros(34)], 1)   # the waypoints
    if bend:
        pose, speed, route = (0.0, -12.0, np.pi / 2), 5.0, right_turn_route()
        if cost.bends is None or cost.bends.predicted_path(pose, speed, route, 1.0) is None:
            raise SystemExit('bench_conflict: planner.yaml does not predict the ego along '
                             'its route in a bend (turn_assist_enabled, turn_assist_route_path)')
    rng, turns, brakes = (np.random.default_rng(seed) for seed in range(3))
    times = []
    for _ in range(ticks):
        tracks = tuple(Track(float(rng.uniform(-32.0, 32.0)), 3.5 * int(rng.integers(-1, 3)),
                             0.0, 4.8, 2.0, float(rng.uniform(3.0, 12.0)), 0.0, False)
                       for _ in range(vehicles))
        tracks = tuple(replace(k, age=0.1, yaw_rate=float(turns.uniform(-0.2, 0.2)),
                               turn_time=turn_time,
                               decel=float(brakes.uniform(1.0, 6.0))
                               if monitor.shared_decel else 0.0, decel_time=decel_time)
                       if i % 3 == 0 else k
                       for i, k in enumerate(tracks))
        candidates = rng.integers(0, 15, (15, 5))
        context = RouteContext(pose, speed, route, tracks)
        start = time.process_time()
        cost.cost(candidates, context)
        times.append((time.process_time() - start) * 1e3)
    return {'conflict_vehicles': vehicles, 'in_bend': bend, 'with_route': with_route,
            'ticks': ticks,
            'cpu_median_ms': round(float(np.median(times)), 3),
            'cpu_p95_ms': round(float(np.percentile(times, 95)), 3)}


def main() -> None:
    """Parse arguments, run the grid, print one line (or JSON) per configuration."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--presets', nargs='+', default=['small', 'L'])
    parser.add_argument('--horizons', nargs='+', type=int, default=[5, 15])
    parser.add_argument('--ticks', type=int, default=200)
    parser.add_argument('--large-ticks', type=int, default=20,
                        help='ticks for the L preset')
    parser.add_argument('--paths', nargs='+', choices=('indexed', 'reference'),
                        default=['indexed', 'reference'])
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--occupancy-every', nargs='+', type=int, default=[0, 1],
                        help='0 = no occupancy cost; n = decode every n-th imagined step')
    parser.add_argument('--batch', type=int, default=0,
                        help='N > 1: N look-aheads alone vs as one imagination')
    parser.add_argument('--json', action='store_true')
    args = parser.parse_args()
    print_reference()
    torch.set_num_threads(args.threads)
    print(f'load average (1, 5, 15 min): {os.getloadavg()}', flush=True)
    rows = []
    conflicts = [bench_conflict(args.ticks), bench_conflict(args.ticks, bend=True),
                 bench_conflict(args.ticks, with_route=True)]
    conflict_ms = max(c['cpu_median_ms'] for c in conflicts)    # the costliest scene
    for preset in args.presets:
        for horizon in args.horizons:
            for path in args.paths:
                for every in args.occupancy_every:
                    ticks = args.large_ticks if preset == 'L' else args.ticks
                    row = bench(preset, horizon, ticks, path, every)
                    if preset == 'small':
                        # the conflict cost rescores every look-ahead's candidates
                        row['cpu_with_conflict_ms'] = round(row['cpu_median_ms']
                                                            + conflict_ms, 3)
                        row['target_ms'] = TARGET_MS
                        row['meets_target'] = row['median_ms'] <= TARGET_MS
                        row['cpu_meets_target'] = row['cpu_with_conflict_ms'] <= TARGET_MS
                    rows.append(row)
                    if not args.json:
                        print(' '.join(f'{k}={v}' for k, v in row.items()), flush=True)
    if args.batch > 1:
        rows.append(bench_batch('small', 5, args.batch, args.ticks))
        if not args.json:
            print(' '.join(f'{k}={v}' for k, v in rows[-1].items()), flush=True)
    for conflict in conflicts:
        rows.append(conflict)
        if not args.json:
            print(' '.join(f'{k}={v}' for k, v in rows[-1].items()), flush=True)
    rows.append(bench_monitor(args.ticks))
    if not args.json:
        print(' '.join(f'{k}={v}' for k, v in rows[-1].items()), flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == '__main__':
    main()

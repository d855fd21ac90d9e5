"""
Where the planner's CPU goes per vehicle-tick, in the ROS-free fleet core at N CALL vehicles.

    python bench/profile_planner.py [--vehicles 16] [--ticks 150] [--warmup 20]
                                    [--scenario four_lane_demo] [--cprofile 30]

Drives the scenario with the shipped checkpoint as the driving evaluation does
(`call_experiments.driving_eval.MonitoredFleet`: the vehicle core's observe, the planner's
stage per vehicle with its look-ahead, route / occupancy / conflict costs and kept-plan check,
the TTC monitor with the neighbours' stated tracks), and charges the thread CPU of each
planner piece to an account (inclusive: a piece's account holds the pieces it calls). The
fleet core plans each vehicle's look-ahead alone (a container batches those of its planners
that re-plan on one tick: `lookahead_batch`), so the look-ahead account is the unbatched one.
`--cprofile N` prints the N costliest functions under the planner's accounts by cProfile
(its per-call overhead inflates pure-Python code against NumPy and torch kernels: the
accounts, not cProfile, are the figures). Prints the machine reference and the load average.
"""
import argparse
import collections
import cProfile
import functools
import hashlib
import io
import os
import pstats
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'bench'))

from call_experiments.driving_eval import build_fleet, load_policy_models  # noqa: E402, I100
from call_experiments.evaluate import collect_settings  # noqa: E402
from call_experiments.rollout import scenario_with  # noqa: E402
from call_planner import (conflict_cost, indexed_lookahead, occupancy_cost,  # noqa: E402
                          plan_stage, replanning, route_cost, ttc_monitor)
from call_planner.plan_stage import planner_params  # noqa: E402
from call_sim.env import MultiVehicleEnv  # noqa: E402
from machine_reference import print_reference  # noqa: E402

CHECKPOINT = os.path.join(ROOT, 'src', 'call_world_model', 'checkpoints', 'call_small64g8c.pt')


class Accounts:
    """Thread CPU per named piece, inclusive, counted only while `on`."""

    def __init__(self):
        """Empty accounts, off."""
        self.ms = collections.Counter()
        self.calls = collections.Counter()
        self.on = False
        self.profiler = None

    def wrap(self, owner, name: str, label: str) -> None:
        """Charge every call of `owner.name` to `label`."""
        inner = getattr(owner, name)

        @functools.wraps(inner)
        def timed(*args, **kwargs):
            if not self.on:
                return inner(*args, **kwargs)
            start = time.thread_time()
            try:
                return inner(*args, **kwargs)
            finally:
                self.ms[label] += (time.thread_time() - start) * 1e3
                self.calls[label] += 1
        setattr(owner, name, timed)


def instrument(accounts: Accounts) -> None:
    """Wrap the planner's pieces (module attributes too, where callers import them by name)."""
    wrap = accounts.wrap
    wrap(plan_stage.FleetLookahead, 'choose', 'planner stage: choose (all below)')
    wrap(replanning.ReplanningPolicy, '_kept_plan_conflicts', '  kept-plan conflict check')
    wrap(indexed_lookahead.IndexedLookahead, 'plan', '  look-ahead (one vehicle, unbatched)')
    wrap(occupancy_cost.OccupancyCost, 'overlap_from_indices', '    look-ahead: occupancy decode')
    wrap(route_cost.RouteCost, 'cost', '  route cost (rescoring 15 candidates)')
    wrap(conflict_cost.ConflictCost, 'cost', '  conflict cost (all calls)')
    wrap(conflict_cost.ConflictCost, 'paths', '    conflict: ego paths')
    wrap(conflict_cost, 'contact_times', '    conflict: contact times')
    wrap(replanning, 'rescored', '  rescored')
    wrap(plan_stage.PlanStage, '_state', '  state from latent')
    wrap(ttc_monitor.TtcMonitor, 'observe', 'monitor: observe (BEV blobs, tracks)')
    wrap(ttc_monitor.TtcMonitor, 'share', 'monitor: share')
    wrap(ttc_monitor.TtcMonitor, 'moving_tracks', 'monitor: moving tracks')
    wrap(ttc_monitor.TtcMonitor, 'assess', 'monitor: assess')
    from call_experiments import driving_eval
    wrap(driving_eval, 'shared_tracks', 'shared tracks (from the messages)')


def main() -> None:
    """Parse arguments, drive, print the accounts per vehicle-tick."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--vehicles', type=int, default=16)
    parser.add_argument('--background', type=int, default=40)
    parser.add_argument('--scenario', default='four_lane_demo')
    parser.add_argument('--ticks', type=int, default=150)
    parser.add_argument('--warmup', type=int, default=20)
    parser.add_argument('--seed', type=int, default=2000)
    parser.add_argument('--mode', default='lsi', help='sharing mode (lsi: CALL)')
    parser.add_argument('--c', type=float, default=50.0, help='range-gate threshold (comm.yaml)')
    parser.add_argument('--checkpoint', default=CHECKPOINT)
    parser.add_argument('--cprofile', type=int, default=0)
    args = parser.parse_args()
    print_reference()
    torch.set_num_threads(1)
    print(f'load average (1, 5, 15 min): {os.getloadavg()}', flush=True)
    accounts = Accounts()
    instrument(accounts)
    loaded = load_policy_models(args.checkpoint)
    env = MultiVehicleEnv.from_scenario(scenario_with(args.scenario, {
        'num_controlled': args.vehicles, 'num_background': args.background,
        'respawn_done': True, 'seed': args.seed, 'episode_steps': args.warmup + args.ticks + 1}))
    params = planner_params()
    fleet = build_fleet(loaded, collect_settings(args.mode, args.c), env, params, args.seed)
    profiler = cProfile.Profile() if args.cprofile else None
    obs, _ = env.reset(seed=args.seed)
    roles = sorted(obs)
    fleet.pipeline.reset(roles)
    fleet.reset(roles)
    vehicle_ticks, step_ms, tracks = 0, 0.0, []
    digest = hashlib.sha256()       # every command of the run: equal digests, equal driving
    try:
        for k in range(args.warmup + args.ticks):
            measured = k >= args.warmup
            accounts.on = measured
            start = time.thread_time()
            if measured and profiler:
                profiler.enable()
            with torch.no_grad():
                decided = fleet.step(obs, env.time, env.dt)
            if measured and profiler:
                profiler.disable()
            if measured:
                step_ms += (time.thread_time() - start) * 1e3
                vehicle_ticks += len(roles)
                tracks.extend(len(t) for t in fleet.policy.tracks.values())
            for role in sorted(decided):
                control, level, stopped = decided[role]
                digest.update(repr((role, control, level, stopped)).encode())
            obs, _, terminations, _, infos = env.step({r: d[0] for r, d in decided.items()})
            for role, info in infos.items():
                if terminations.get(role, False) or (info.get('respawned')
                                                     and not terminations.get(role, False)):
                    fleet.pipeline.restart(role)
                    fleet.restart(role)
                    obs[role] = env.observe(role)
    finally:
        env.close()
    print(f'{args.vehicles} CALL vehicles, {args.background} background, {args.ticks} ticks '
          f'measured; tracks per vehicle-tick {np.mean(tracks):.1f} (max {max(tracks)}); '
          f'commands digest {digest.hexdigest()[:16]}')
    print(f'{"account":45s} {"ms/vehicle-tick":>16s} {"calls/vehicle-tick":>19s} '
          f'{"ms/call":>8s}')
    print(f'{"fleet step (observe + plan + monitor)":45s} {step_ms / vehicle_ticks:16.3f}')
    for label in accounts.ms:
        ms, calls = accounts.ms[label], accounts.calls[label]
        print(f'{label:45s} {ms / vehicle_ticks:16.3f} {calls / vehicle_ticks:19.2f} '
              f'{ms / calls:8.3f}')
    if profiler:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).sort_stats('tottime')
        stats.print_stats(args.cprofile)
        print(out.getvalue())


if __name__ == '__main__':
    main()

"""
Where sharing loses the lead time on occluded conflicts, by stage.

One `call_driving_eval` run (same scenario, seed, planner and checkpoint as the evaluation's
commands, so its conflicts are the evaluation's own) with a probe that records, per CALL
vehicle (ego) and step, which other vehicles each stage of the sharing chain held:

1. `sensed`: some other CALL vehicle's own sensors see it (range and occlusion,
   `call_perception.visibility`, the pipeline's perception settings), at the step before:
   the message the ego uses at a step was built from the sender's previous step;
2. `sender`: one of the ego's accepted senders of the step (after the range gate) saw it
   then, or it is itself one;
3. `in_view`: the ego's fused BEV has shared-vehicle pixels within `--radius` of its
   simulator position (the decoded neighbour view or the sender's own box);
4. `tracked`: the ego's monitor holds a shared-only track there, with or without velocity;
5. `told`: ... with a velocity (the track the monitor and the conflict cost assess:
   `driving_eval.told_ids`);
6. `crossing`: ... and that track is one the monitor's anticipation is for
   (`ttc_monitor.anticipated`: ahead, crossing or merging, not a leader to follow);
7. `contact`: ... and its first contact with the ego, both held at constant velocity (the
   monitor's geometry, `ttc_monitor.first_contacts`, the ego straight on), is within the
   monitor's `anticipation_ttc`: the anticipation had a reason to brake;
8. the ego's first deceleration (`call_sim.driving_metrics`).

Per occluded conflict (the evaluation's convention: `driving_metrics.conflicts`, occluded
within `occlusion_window`) each stage's first step in the 5 s look-back, relative to the
conflict's start; the table gives, per stage, how many conflicts it reached at least
`--lead` seconds before the start, and the median first time over those it reached at all.
Also printed: the ego's communication range and the distance to the nearest CALL vehicle
that saw the partner, at the step stage 1 first held, which says whether the range gate or
the neighbour views lose a partner.

Also printed: the distribution of the ego's prediction error E over its valid steps and
the share above c (the range gate grows the range only on those, paper section 3.3).

    python -m call_experiments.occlusion_chain --scenario crossroad_occluded --seed 10 \
        --steps 700 --out /tmp/chain_crossroad_10.json

Use tuning seeds: the held-out seeds (3000-3002) are the evaluation's.
"""
import argparse
import json
import math
import sys
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

STAGES = ('sensed', 'sender', 'in_view', 'tracked', 'told', 'crossing', 'contact')


class ChainProbe:
    """Per (trip, time): per stage the set of actor ids the ego held at that stage."""

    def __init__(self, radius: float):
        """Record nothing yet; `radius` [m]: a pixel or track this near the vehicle is it."""
        self.radius = radius
        self.records: Dict[tuple, Dict[str, Any]] = {}
        self._previous_seen: Dict[str, frozenset] = {}

    def __call__(self, time: float, observations: Dict[str, Any], trip: Dict[str, int],
                 fleet: Any) -> None:
        """Take one step (`driving_eval.drive_seed`'s probe)."""
        from call_experiments.driving_eval import own_sensors_see
        from call_perception.bev_raster import CHANNEL_INDEX, map_to_pixel
        from call_planner.ttc_monitor import anticipated
        pipeline = fleet.pipeline
        config = pipeline.bev_config
        actor_of = {role: observations[role].ego.actor_id for role in pipeline.roles}
        seen_now = {role: own_sensors_see(pipeline, observations[role])
                    for role in pipeline.roles}
        seen = self._previous_seen or seen_now
        shared_c = CHANNEL_INDEX['shared_vehicles']
        for i, role in enumerate(pipeline.roles):
            obs = observations[role]
            step = pipeline.steps[i]
            others = obs.others
            sensed = set().union(*(ids for r, ids in seen.items() if r != role))
            senders = set(step.neighbours)
            sender = set().union(*(seen.get(r, frozenset()) for r in senders)) \
                | {actor_of[r] for r in senders if r in actor_of}
            # shared pixels near each vehicle's centre, in the ego's BEV of this step
            mask = step.bev[shared_c] > 127
            rows, cols = np.nonzero(mask)
            in_view = set()
            if len(rows):
                affine = map_to_pixel(config, pipeline.ego_box(obs.ego))
                reach = self.radius / config.metres_per_pixel
                for o in others:
                    col, row = affine @ np.array([o.x, o.y, 1.0])
                    if np.min(np.hypot(cols - col, rows - row)) <= reach:
                        in_view.add(o.actor_id)
            monitor = fleet.monitors[role]
            shared_tracks = [(k.x, k.y) for k in monitor.tracks if k.shared_only]
            tracked = {o.actor_id for o in others
                       if any(math.hypot(o.x - x, o.y - y) <= self.radius
                              for x, y in shared_tracks)}
            moving = monitor.moving_tracks()
            chosen = [(k.x, k.y) for k, c in zip(moving, anticipated(
                moving, (obs.ego.x, obs.ego.y, obs.ego.yaw))) if c]
            crossing = {o.actor_id for o in others
                        if any(math.hypot(o.x - x, o.y - y) <= self.radius for x, y in chosen)}
            contact = self._contacts(fleet.config, obs.ego, others, crossing, [
                k for k, c in zip(moving, anticipated(
                    moving, (obs.ego.x, obs.ego.y, obs.ego.yaw))) if c])
            nearest = {}
            for o in others:
                seers = [r for r, ids in seen.items() if r != role and o.actor_id in ids]
                if seers:
                    nearest[o.actor_id] = min(
                        math.hypot(observations[r].ego.x - obs.ego.x,
                                   observations[r].ego.y - obs.ego.y) for r in seers
                        if r in observations)
            self.records[((role, trip[role]), round(time, 2))] = {
                'sensed': sensed, 'sender': sender, 'in_view': in_view, 'tracked': tracked,
                'told': set(fleet.told.get(role, frozenset())), 'crossing': crossing,
                'contact': contact,
                'range': step.comm_range, 'nearest_seer': nearest,
                'senders': len(senders), 'error': step.error if step.valid else math.nan}
        self._previous_seen = seen_now

    def _contacts(self, config: Any, ego: Any, others: Sequence[Any], near: set,
                  tracks: Sequence[Any]) -> set:
        """Return the vehicles of `near` whose track in `tracks` meets the ego in the horizon."""
        from call_planner.ttc_monitor import first_contacts
        horizon = config.anticipation_ttc
        if not near or not tracks or not horizon:
            return set()
        t = np.arange(0.0, horizon + 1e-9, config.time_step)
        speed = max(float(ego.speed), 0.0)
        ex = ego.x + speed * t * math.cos(ego.yaw)
        ey = ego.y + speed * t * math.sin(ego.yaw)
        first = first_contacts(ex, ey, np.full(len(t), ego.yaw), list(tracks), t, 0.0, config)
        meeting = [(k.x, k.y) for k, f in zip(tracks, first) if f < len(t)]
        return {o.actor_id for o in others if o.actor_id in near
                and any(math.hypot(o.x - x, o.y - y) <= self.radius for x, y in meeting)}


def chain(conflicts: List[Any], probe: ChainProbe, lookback: float) -> List[Dict[str, Any]]:
    """Per conflict: each stage's first look-back time relative to its start (None: never)."""
    by_trip: Dict[Any, List[tuple]] = {}
    for (trip, t), record in sorted(probe.records.items(), key=lambda item: item[0][1]):
        by_trip.setdefault(trip, []).append((t, record))
    out = []
    for c in conflicts:
        row = {'trip': list(c.trip), 'start_s': round(c.start, 2), 'partner': c.partner,
               'collided': c.collided,
               'first_deceleration_s': (round(c.first_deceleration, 2)
                                        if math.isfinite(c.first_deceleration) else None)}
        for stage in STAGES:
            row[stage] = None
        for t, record in by_trip.get(c.trip, ()):
            if t < c.start - lookback - 1e-6 or t > c.start + 1e-6:
                continue
            for stage in STAGES:
                if row[stage] is None and c.partner in record[stage]:
                    row[stage] = round(t - c.start, 2)
                    if stage == 'sensed':
                        row['range_m'] = round(record['range'], 1)
                        row['nearest_seer_m'] = round(record['nearest_seer'].get(
                            c.partner, math.nan), 1)
        out.append(row)
    return out


def table(rows: List[Dict[str, Any]], lead: float) -> str:
    """Per stage: conflicts reached >= lead s early, reached at all, median first time."""
    lines = [f'{"stage":<22} {">= %.1f s early" % lead:>16} {"ever":>6} {"median s":>9}']
    for stage in STAGES + ('first_deceleration_s',):
        times = [r[stage] for r in rows if r[stage] is not None]
        early = sum(t <= -lead + 1e-6 for t in times)
        median = f'{np.median(times):9.2f}' if times else f'{"-":>9}'
        lines.append(f'{stage:<22} {early:>16} {len(times):>6} {median}')
    sensed = [r for r in rows if r['sensed'] is not None and r['sensed'] <= -lead + 1e-6]
    lost = [r for r in sensed if r['sender'] is None or r['sender'] > -lead + 1e-6]
    if lost:
        gaps = [(r['nearest_seer_m'], r['range_m']) for r in lost]
        lines.append(f'sensed early but no early sender: {len(lost)}; nearest seer / ego range '
                     f'[m] median {np.nanmedian([g[0] for g in gaps]):.1f} / '
                     f'{np.median([g[1] for g in gaps]):.1f}')
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one seed with the probe, write the per-conflict chain, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--scenario', default='crossroad_occluded')
    parser.add_argument('--mode', default='lsi')
    parser.add_argument('--seed', type=int, default=10)
    parser.add_argument('--steps', type=int, default=700)
    parser.add_argument('--radius', type=float, default=3.0,
                        help='[m] the monitor match radius, as driving_eval.told_ids')
    parser.add_argument('--lead', type=float, default=1.0, help='[s] lead counted early')
    parser.add_argument('--set', dest='sets', action='append', default=[])
    parser.add_argument('--pipeline', dest='pipeline_sets', action='append', default=[],
                        metavar='FIELD=VALUE', help='override a PipelineConfig field (the '
                        'range gate: initial_range, range_step, max_range; c: --c)')
    parser.add_argument('--c', type=float, default=None, help='threshold c (default: the '
                        "evaluation's)")
    parser.add_argument('--out', default=None, help='per-conflict chain JSON')
    args = parser.parse_args(argv)
    import torch
    from call_experiments import driving_eval
    from call_planner.plan_stage import planner_params
    from call_sim import driving_metrics
    torch.set_num_threads(1)
    try:
        planner = planner_params(dict(item.split('=', 1) for item in args.sets))
        gate = {key: float(value) for key, value in
                (item.split('=', 1) for item in args.pipeline_sets)}
        loaded = driving_eval.load_policy_models(driving_eval.shipped_checkpoint())
    except (ValueError, FileNotFoundError) as exc:
        print(f'occlusion_chain: error: {exc}', file=sys.stderr)
        return 2
    probe = ChainProbe(args.radius)
    result = driving_eval.drive_seed(loaded, args.mode, args.scenario, args.seed, args.steps,
                                     planner, driving_eval.DEFAULT_C if args.c is None
                                     else args.c, 60.0, probe=probe, settings=gate)
    conventions = driving_eval.CONVENTIONS
    found = [c for c in driving_metrics.conflicts(result.steps, conventions) if c.occluded]
    rows = chain(found, probe, conventions.decel_lookback)
    summary = result.summary()
    print(f'{args.scenario} {args.mode} seed {args.seed}, {args.steps} steps: '
          f'{len(rows)} occluded conflicts, first deceleration '
          f'{summary["first_deceleration_occluded_mean_s"]:.2f} s, collisions '
          f'{100 * summary["collision_rate"]:.3f} %, senders per ego-step '
          f'{summary["mean_neighbours"]:.2f}')
    errors = np.array([r['error'] for r in probe.records.values()])
    errors = errors[np.isfinite(errors)]
    if len(errors):
        c = driving_eval.DEFAULT_C if args.c is None else args.c
        print(f'E over valid ego-steps: quartiles {np.percentile(errors, [25, 50, 75])}, '
              f'share above c = {c:g}: {np.mean(errors > c):.4f}')
    print(table(rows, args.lead))
    if args.out:
        with open(args.out, 'w', encoding='utf-8') as stream:
            json.dump({'scenario': args.scenario, 'mode': args.mode, 'seed': args.seed,
                       'steps': args.steps, 'sets': args.sets, 'summary': summary,
                       'conflicts': rows}, stream, indent=1, default=float)
    return 0


if __name__ == '__main__':
    sys.exit(main())

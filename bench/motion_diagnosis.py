"""
Why the motion head's velocity falls short: its per-vehicle velocity against the true one.

On one held-out episode (not a report seed) of the prediction protocol, for each window and
each true vehicle whose box at t0 overlaps the fused BEV's vehicle pixels, the head's velocity
(mean over those pixels, reference frame of t0) is compared with the vehicle's true velocity
(t0 - 1 -> t0, from simulator states, in the same frame), for the Lucas-Kanade flow and the
blob tracker. Then vehicle IoU at k (protocol ground truth) of heads whose velocity is the flow,
the tracks, or the true per-vehicle velocity (oracle: the raster's own ceiling when every
vehicle moves at its true speed), the same with the true BEVs as context, and the constant-
velocity baseline drawn from true states. Last, the CPU per step of one ego's prediction.

    python bench/motion_diagnosis.py \
        --checkpoint src/call_world_model/checkpoints/call_small64g8c.pt --seed 110 --windows 48
"""
import argparse
from dataclasses import replace
import math
import statistics
import time

from call_learning.prediction_protocol import (draw_windows, EgoKinematics, EpisodeViews,
                                               filter_episode, observed_context, pixel_affine,
                                               ProtocolConfig, record_episode)
from call_perception.bev_raster import BevConfig, CHANNEL_INDEX, map_to_pixel
from call_world_model.bev_motion import BevMotionHead, load_head
from call_world_model.checkpoint import load
from call_world_model.prediction_metrics import classes_of, frame_scores
from call_world_model.world_model import bev_to_float
from cpu_timing import median_cpu_ms
from machine_reference import print_reference
import numpy as np
import torch

VEHICLES = [CHANNEL_INDEX['seen_vehicles'], CHANNEL_INDEX['shared_vehicles']]


def true_field(views, role, t0, speed_dt):
    """Return the true velocity field (2, S, S) and [(mask, v)] per vehicle, t0 reference frame."""
    frames = views.frames
    now = frames[t0].egos[role]

    def ref(offset):
        travel = offset * speed_dt
        return replace(now, x=now.x + travel * math.cos(now.yaw),
                       y=now.y + travel * math.sin(now.yaw))
    a0, a1 = map_to_pixel(views.bev, ref(0)), map_to_pixel(views.bev, ref(-1))
    s = views.bev.size
    field = np.zeros((2, s, s), dtype=np.float32)
    vehicles = []
    for i, st in sorted(frames[t0].states.items()):
        if i == now.actor_id or i not in frames[t0 - 1].states:
            continue
        p = frames[t0 - 1].states[i]
        c0 = a0 @ np.array([st.x, st.y, 1.0])
        c1 = a1 @ np.array([p.x, p.y, 1.0])
        v = np.array([c0[1] - c1[1], c0[0] - c1[0]])  # rows, cols
        if np.hypot(*v) > 5.0:
            continue
        mask = views.boxes_mask(role, t0, {i})
        if mask.any():
            field[:, mask] = v[:, None]
            vehicles.append((mask, v))
    return field, vehicles


def main():
    """Run the diagnosis and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--checkpoint', required=True)
    parser.add_argument('--seed', type=int, default=110)
    parser.add_argument('--steps', type=int, default=300)
    parser.add_argument('--windows', type=int, default=48)
    parser.add_argument('--horizons', type=int, nargs='+', default=[0, 1, 5, 10])
    parser.add_argument('--set', action='append', default=[],
                        help='tracks head option, e.g. gate=3.0 (repeatable)')
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load(args.checkpoint, load_optimizers=False).world_model.eval()
    shipped = load_head(args.checkpoint, model.cfg)
    flow = BevMotionHead(replace(shipped.cfg, motion='flow'))
    flow.load_state_dict(shipped.state_dict())
    overrides = {}
    for item in args.set:
        key, value = item.split('=')
        overrides[key] = type(getattr(shipped.cfg, key))(value)
    config = ProtocolConfig(seeds=(args.seed,), steps=args.steps, windows=args.windows,
                            horizons=tuple(args.horizons))
    bev = BevConfig.from_yaml().resized(model.cfg.bev_size)
    frames, lanes = record_episode(config.scenario, args.seed, config)
    views = EpisodeViews(frames, lanes, bev, config, model.cfg.intention_points)
    windows = draw_windows(views, config, args.seed)
    inputs, _ = filter_episode(model, views, shared=True)
    kin = EgoKinematics.load(config.scenario)
    observed = observed_context(views, inputs, windows, config.horizons, flow.cfg.context, kin)
    ctx = bev_to_float(observed.context)
    heads = {'flow+residual': flow.eval()}
    bare = BevMotionHead(flow.cfg)  # the flow estimate alone: residual's last layer zero
    bare.load_state_dict(flow.state_dict())
    torch.nn.init.zeros_(bare.velocity_out.weight)
    torch.nn.init.zeros_(bare.velocity_out.bias)
    heads['flow'] = bare.eval()
    tracks = BevMotionHead(replace(flow.cfg, motion='tracks', **overrides))
    tracks.load_state_dict(flow.state_dict())
    heads['tracks+residual'] = tracks.eval()
    fields, timings = {}, {}
    with torch.no_grad():
        for name, head in heads.items():
            start = time.process_time()
            fields[name] = head.velocity(ctx, observed.align.float()).numpy()
            timings[name] = (time.process_time() - start) / len(windows) * 1e3
    oracle = []
    errors = {name: [] for name in heads}
    for w, (role, t0) in enumerate(windows):
        speed_dt = frames[t0].egos[role].speed * kin.bicycle.dt
        field, vehicles = true_field(views, role, t0, speed_dt)
        oracle.append(field)
        last = inputs[t0][role][VEHICLES].max(0) > 0
        for mask, v in vehicles:
            pix = mask & last
            if pix.sum() < 2:
                continue
            for name in heads:
                est = fields[name][w][:, pix].mean(1)
                errors[name].append(np.hypot(*(est - v)))
    print(f'{len(windows)} windows, seed {args.seed}; per-vehicle |v_est - v_true| [px/step]'
          f' (vehicles: {len(errors["flow"])})')
    for name, err in errors.items():
        err = np.asarray(err)
        print(f'  {name:26s} median {np.median(err):.3f} mean {err.mean():.3f} '
              f'> 0.2: {np.mean(err > 0.2):.2f}  velocity CPU {timings[name]:.2f} ms/window')
    oracle = torch.from_numpy(np.stack(oracle))
    true_future, truth_ctx = [], ctx.clone()
    for w, (role, t0) in enumerate(windows):
        now = frames[t0].egos[role]
        speed_dt = now.speed * kin.bicycle.dt
        rows = []
        for k in config.horizons:
            ref = replace(now, x=now.x + k * speed_dt * math.cos(now.yaw),
                          y=now.y + k * speed_dt * math.sin(now.yaw))
            rows.append(pixel_affine(views.bev, ref, frames[t0 + k].egos[role]))
        true_future.append(np.stack(rows))
        for j in range(truth_ctx.shape[1]):
            t = max(t0 - truth_ctx.shape[1] + 1 + j, 0)
            truth_ctx[w, j] = torch.from_numpy(views.truth(role, t)).float() / 255.0
    true_future = torch.from_numpy(np.stack(true_future)).float()

    def score(pred) -> dict:
        """Mean vehicle IoU per k of predictions (W, H, C, S, S) against the protocol truth."""
        out = {}
        for h, k in enumerate(config.horizons):
            values = []
            for w, (role, t0) in enumerate(windows):
                truth = classes_of(views.truth(role, t0 + k), CHANNEL_INDEX)
                values.append(frame_scores(classes_of(np.asarray(pred[w][h]), CHANNEL_INDEX),
                                           truth, np.zeros_like(truth[2]))['vehicle_iou'])
            out[k] = float(np.mean(values))
        return out
    results = {}
    align = observed.align.float()
    with torch.no_grad():
        for name, head in heads.items():
            results[name] = score(head(ctx, align, observed.future.float(), config.horizons))
            results[name + ', truth ctx'] = score(head(truth_ctx, align, observed.future.float(),
                                                       config.horizons))
        head = BevMotionHead(flow.cfg).eval()
        head.velocity = lambda c, a: oracle  # the true per-vehicle velocity field
        results['oracle velocity'] = score(head(ctx, align, observed.future.float(),
                                                config.horizons))
        results['oracle vel+true ego'] = score(head(ctx, align, true_future, config.horizons))
        results['oracle vel+ego, truth ctx'] = score(head(truth_ctx, align, true_future,
                                                          config.horizons))
    results['copy-last fused'] = score([[inputs[t0][role]] * len(config.horizons)
                                        for role, t0 in windows])
    results['const velocity (states)'] = score([[views.const_velocity(role, t0, k)
                                                 for k in config.horizons]
                                                for role, t0 in windows])
    # where the fused BEV of t0 already differs from the truth of t0 (every k's floor)
    tally = np.zeros(4)
    for role, t0 in windows:
        truth = classes_of(views.truth(role, t0), CHANNEL_INDEX)[2]
        fused = inputs[t0][role]
        own = fused[CHANNEL_INDEX['seen_vehicles']] > 0
        shared = (fused[CHANNEL_INDEX['shared_vehicles']] > 0) & ~own
        tally += [(truth & (own | shared)).sum(), (truth & ~own & ~shared).sum(),
                  (own & ~truth).sum(), (shared & ~truth).sum()]
    print('t0: true vehicle px in the fused BEV %d, missed %d; false px own %d, shared %d'
          % tuple(tally))
    print('vehicle IoU (protocol ground truth) per k:', args.horizons)
    for name, r in results.items():
        print(f'  {name:26s} ' + ' '.join(f'{r[k]:.3f}' for k in config.horizons))
    # what one ego's prediction costs per step: one window, every reported k, 1 torch thread
    horizons = (1, 5, 10, 30, 60)
    future = observed.future[:1, :1].float().expand(1, len(horizons), 2, 3)
    rounds = {name: [] for name in ('flow+residual', 'tracks+residual')}
    with torch.no_grad():
        for _ in range(3):  # interleaved rounds: the machine's drift hits both alike
            for name in rounds:
                for w in range(min(8, len(windows))):
                    rounds[name].append(median_cpu_ms(
                        lambda: heads[name](ctx[w:w + 1], align[w:w + 1], future, horizons), 5))
    print_reference('after the runs')
    for name, values in rounds.items():
        print(f'per-step CPU, one window, k in {horizons}: {name} '
              f'{statistics.median(values):.2f} ms (median of {len(values)})')


if __name__ == '__main__':
    main()

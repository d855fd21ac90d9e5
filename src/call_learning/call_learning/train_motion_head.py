"""
Train the BEV motion head (``call_world_model.bev_motion``) on a frozen world model.

Data: episodes of the world model's training scenario driven as the prediction protocol drives
them (``prediction_protocol.record_episode``; seeds disjoint from the protocol's report and
selection seeds). For every CALL vehicle and step the own BEV and the updated (fused) BEV are
rendered, the fused one with the neighbours' views decoded from their latents by the frozen
world model, exactly as the protocol and the vehicles do.

Objective, self-supervised as the world model's own: from the BEVs t0 - context + 1 .. t0 and
the actions taken, predict the vehicles of the BEV of the same kind (own or fused) observed at
t0 + k, for several k at once; loss = 1 - soft IoU of the vehicle pixels (the evaluated metric,
insensitive to how few pixels vehicles cover). No privileged state enters the target.

Selection: the head with the best thresholded vehicle IoU at k = 5 and 10 on a held-out seed
is written (world-model checkpoint + head, ``bev_motion.save_into``) whenever it improves.

    python -m call_learning.train_motion_head \
        --checkpoint src/call_world_model/checkpoints/wm_small64g8c.pt --out runs/motion/head.pt
"""
import argparse
import json
import resource
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

from call_learning.prediction_protocol import (EgoKinematics, EpisodeViews, filter_episode,
                                               observed_context, ProtocolConfig,
                                               record_episode)
from call_perception.bev_raster import BevConfig, CHANNEL_INDEX
from call_world_model.bev_motion import BevMotionHead, MotionHeadConfig, save_into
from call_world_model.bev_prediction import Observed
from call_world_model.checkpoint import load
from call_world_model.world_model import bev_to_float, WorldModel
import numpy as np
import torch

TRAIN_HORIZONS = (1, 2, 3, 5, 7, 10, 15, 20)
VEHICLES = (CHANNEL_INDEX['seen_vehicles'], CHANNEL_INDEX['shared_vehicles'])


class EpisodeData:
    """One episode's views, own and fused input BEVs per step, and its windows."""

    def __init__(self, model: WorldModel, scenario: str, seed: int, steps: int,
                 context: int, kmax: int):
        """Drive and render the episode; keep every (role, t0) window that spans no restart."""
        config = ProtocolConfig(scenario=scenario, seeds=(seed,), steps=steps, windows=1,
                                horizons=(kmax,), warmup=context, context=context)
        frames, lanes = record_episode(scenario, seed, config)
        bev_config = BevConfig.from_yaml().resized(model.cfg.bev_size)
        self.views = EpisodeViews(frames, lanes, bev_config, config, model.cfg.intention_points)
        self.inputs = {'fused': filter_episode(model, self.views, shared=True)[0],
                       'own': filter_episode(None, self.views, shared=False)[0]}
        self.kinematics = EgoKinematics.load(scenario)
        self.windows: List[Tuple[str, int]] = []
        for role in self.views.roles:
            for t0 in range(context, len(frames) - kmax):
                if not any(frames[t].first.get(role, False)
                           for t in range(t0 - context + 1, t0 + kmax + 1)):
                    self.windows.append((role, t0))

    def batch(self, picks: Sequence[Tuple[str, int]], kind: str, context: int,
              horizons: Sequence[int]) -> Tuple[Observed, torch.Tensor]:
        """Return (the head's inputs, target vehicles (B, H, S, S)) of the windows ``picks``."""
        inputs = self.inputs[kind]
        observed = observed_context(self.views, inputs, list(picks), horizons, context,
                                    self.kinematics)
        target = np.stack([[inputs[t0 + k][role][list(VEHICLES)].max(0) > 0 for k in horizons]
                           for role, t0 in picks])
        return observed, torch.from_numpy(target).float()


def soft_iou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over (B, H) of 1 - soft IoU of vehicle probabilities (B, H, S, S) vs 0/1 target."""
    inter = (pred * target).sum((-1, -2))
    union = (pred + target - pred * target).sum((-1, -2))
    return (1.0 - (inter + 1.0) / (union + 1.0)).mean()


def vehicle_probs(head: BevMotionHead, observed: Observed, horizons: Sequence[int]
                  ) -> torch.Tensor:
    """Predicted vehicle probability (B, H, S, S): union of the moved vehicle channels."""
    out = head(bev_to_float(observed.context), observed.align.float(), observed.future.float(),
               horizons)
    return out[:, :, list(VEHICLES)].amax(2)


@torch.no_grad()
def validate(head: BevMotionHead, data: EpisodeData, picks: Sequence[Tuple[str, int]],
             context: int, horizons: Sequence[int]) -> Dict[int, float]:
    """Thresholded vehicle IoU per k (mean over windows, fused inputs) on held-out windows."""
    scores = {k: [] for k in horizons}
    for start in range(0, len(picks), 64):
        observed, target = data.batch(picks[start:start + 64], 'fused', context, horizons)
        pred = vehicle_probs(head, observed, horizons) > 0.5
        truth = target > 0.5
        inter = (pred & truth).sum((-1, -2)).float()
        union = (pred | truth).sum((-1, -2)).float()
        iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
        for h, k in enumerate(horizons):
            scores[k] += iou[:, h].tolist()
    return {k: float(np.mean(v)) for k, v in scores.items()}


def cpu_seconds() -> float:
    """CPU time (user + system) of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def train(args: argparse.Namespace) -> int:
    """Collect the episodes, train, keep the best head on the held-out seed."""
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = load(args.checkpoint, load_optimizers=False).world_model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    head_cfg = MotionHeadConfig.for_world_model(model.cfg, context=args.context,
                                                width=args.width, blur=args.blur,
                                                window=args.window, iterations=args.iterations,
                                                nearest=args.nearest, motion=args.motion)
    head = BevMotionHead(head_cfg)
    kmax = max(TRAIN_HORIZONS)
    start = time.monotonic()
    episodes = []
    for seed in args.train_seeds:
        episodes.append(EpisodeData(model, args.scenario, seed, args.steps, args.context, kmax))
        print(f'episode seed {seed}: {len(episodes[-1].windows)} windows, '
              f'{time.monotonic() - start:.0f} s wall, {cpu_seconds():.0f} s CPU', flush=True)
    val = EpisodeData(model, args.scenario, args.val_seed, args.steps, args.context, kmax)
    val_picks = [val.windows[i] for i in sorted(
        rng.choice(len(val.windows), min(args.val_windows, len(val.windows)), replace=False))]
    val_horizons = (1, 5, 10)
    data_cpu = cpu_seconds()
    command = 'python -m call_learning.train_motion_head ' + ' '.join(sys.argv[1:])
    base = validate(head, val, val_picks, args.context, val_horizons)
    print(f'untrained head (flow prior alone) val IoU {json.dumps(base)}', flush=True)
    best, best_update = base[5] + base[10], 0
    save_into(args.checkpoint, args.out, head, extra={
        'updates': 0, 'val_iou': {str(k): v for k, v in base.items()},
        'command': command})
    optimizer = torch.optim.Adam(head.parameters(), lr=args.lr)
    update = 0
    history = []
    while update < args.updates and cpu_seconds() - data_cpu < args.cpu_budget:
        picks = []
        for _ in range(args.batch):
            episode = episodes[rng.integers(len(episodes))]
            picks.append((episode, episode.windows[rng.integers(len(episode.windows))]))
        kind = 'own' if rng.random() < args.own_fraction else 'fused'
        parts = [ep.batch([w], kind, args.context, TRAIN_HORIZONS) for ep, w in picks]
        observed = Observed(*(torch.cat([getattr(p[0], key) for p in parts])
                              for key in ('context', 'align', 'future')))
        target = torch.cat([p[1] for p in parts])
        loss = soft_iou_loss(vehicle_probs(head, observed, TRAIN_HORIZONS), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        update += 1
        if update % args.eval_every == 0:
            scores = validate(head, val, val_picks, args.context, val_horizons)
            history.append({'update': update, 'loss': round(loss.item(), 4), 'val_iou': scores,
                            'cpu': round(cpu_seconds() - data_cpu, 1)})
            print(json.dumps(history[-1]), flush=True)
            if scores[5] + scores[10] > best:
                best, best_update = scores[5] + scores[10], update
                save_into(args.checkpoint, args.out, head, extra={
                    'updates': update, 'val_iou': {str(k): v for k, v in scores.items()},
                    'train_seeds': list(args.train_seeds), 'val_seed': args.val_seed,
                    'scenario': args.scenario, 'command': command})
    print(f'done: {update} updates, {cpu_seconds() - data_cpu:.0f} s CPU training, '
          f'{data_cpu:.0f} s CPU data, {time.monotonic() - start:.0f} s wall; best val '
          f'IoU(5) + IoU(10) {best:.4f} at update {best_update} '
          f'(written to {args.out})',
          flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Command line of the head training."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--checkpoint', required=True, help='frozen world model')
    parser.add_argument('--out', required=True, help='world model + head checkpoint to write')
    parser.add_argument('--scenario', default='four_lane_platoon')
    parser.add_argument('--train-seeds', type=int, nargs='+', default=[100, 101, 102, 103])
    parser.add_argument('--val-seed', type=int, default=110)
    parser.add_argument('--val-windows', type=int, default=256)
    parser.add_argument('--steps', type=int, default=300)
    parser.add_argument('--context', type=int, default=MotionHeadConfig.context)
    parser.add_argument('--width', type=int, default=MotionHeadConfig.width)
    parser.add_argument('--blur', type=float, default=MotionHeadConfig.blur)
    parser.add_argument('--window', type=float, default=MotionHeadConfig.window)
    parser.add_argument('--iterations', type=int, default=MotionHeadConfig.iterations)
    parser.add_argument('--nearest', action='store_true', help='nearest-pixel splat')
    parser.add_argument('--motion', choices=('flow', 'tracks'), default='flow',
                        help='tracks: tracked vehicle blobs move at their track velocity, '
                             'the residual is learned on the other pixels')
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--own-fraction', type=float, default=0.25,
                        help='share of batches whose BEVs are the own (not fused) ones')
    parser.add_argument('--updates', type=int, default=100000)
    parser.add_argument('--cpu-budget', type=float, default=1500.0,
                        help='CPU seconds of training (after the data) before stopping')
    parser.add_argument('--eval-every', type=int, default=100)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=1)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Parse and train."""
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    return train(args)


if __name__ == '__main__':
    sys.exit(main())

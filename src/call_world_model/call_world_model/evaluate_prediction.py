"""
k-step BEV prediction accuracy (paper Table 1, Fig. 3) against a copy-last-frame baseline.

Protocol (DreamerV3 ``report``): observe ``context`` frames, then imagine k steps open loop
with the actions that were actually taken, decode, threshold the calibrated Bernoulli
probabilities (``WorldModel.bev_probs``) at 0.5 and compare with the true frames. Two numbers
per k because per-pixel accuracy alone is inflated by empty background (wayveai/fiery, mile):
per-pixel accuracy over all channels and the IoU of the vehicle channels (seen + shared
vehicles; the ego box never moves in its own frame and is left out). The baseline predicts
that frame t0 + k equals the last context frame. k = 0 scores the reconstruction of that last
context frame from its posterior (the baseline is then the frame itself): what the latent
holds at all, the ceiling of every k > 0.
"""
import argparse
import dataclasses
import sys
from typing import Dict, List, Optional, Sequence

from call_perception.bev_raster import CHANNEL_INDEX
from call_world_model import checkpoint
from call_world_model.collect import CollectConfig, Collector, MODES
from call_world_model.replay import SequenceReplay
from call_world_model.shared_pooling import SharedBatch
from call_world_model.world_model import WorldModel
import numpy as np
import torch

VEHICLE_CHANNELS = ('seen_vehicles', 'shared_vehicles')
DEFAULT_HORIZONS = (5, 30, 60)


def _vehicles(masks: torch.Tensor) -> torch.Tensor:
    """(..., C, S, S) bool -> (..., S, S) union of the vehicle channels."""
    index = [CHANNEL_INDEX[name] for name in VEHICLE_CHANNELS]
    return masks[..., index, :, :].any(-3)


def _each(shared: Optional[SharedBatch], fn) -> Optional[SharedBatch]:
    """Apply ``fn`` (slicing) to every tensor of a SharedBatch; None stays None."""
    if shared is None:
        return None
    return SharedBatch(**{f.name: fn(getattr(shared, f.name)) for f in dataclasses.fields(shared)})


def frame_scores(predicted: torch.Tensor, truth: torch.Tensor) -> Dict[str, float]:
    """Pixel accuracy and vehicle IoU of bool masks (B, C, S, S); IoU pooled over the batch."""
    accuracy = float((predicted == truth).float().mean())
    pred_v, true_v = _vehicles(predicted), _vehicles(truth)
    union = float((pred_v | true_v).sum())
    iou = float((pred_v & true_v).sum()) / union if union > 0 else float('nan')
    return {'pixel_accuracy': accuracy, 'vehicle_iou': iou}


@torch.no_grad()
def evaluate_batch(world_model: WorldModel, batch: dict, context: int,
                   horizons: Sequence[int], threshold: float = 0.5) -> Dict[int, dict]:
    """
    Scores per k for one batch of windows of length >= context + max(horizons).

    Returns {k: {'model': {pixel_accuracy, vehicle_iou}, 'copy_last': {...}}}.
    """
    horizon = max(horizons)
    bev = batch['bev']
    if bev.shape[1] < context + horizon:
        raise ValueError(f'windows of {bev.shape[1]} steps cannot hold {context} context + '
                         f'{horizon} predicted frames')
    shared = batch.get('shared')
    intention = batch.get('intention')
    world_model.eval()
    context_shared = _each(shared, lambda x: x[:, :context])
    context_intention = intention[:, :context] if intention is not None else None
    last = bev[:, context - 1] > 0
    results = {}
    if 0 in horizons:
        posts, _ = world_model.observe(
            bev[:, :context], batch['prev_action'][:, :context], batch['is_first'][:, :context],
            context_shared, context_intention, sample=False)
        recon = world_model.bev_probs({k: v[:, -1] for k, v in posts.items()})
        results[0] = {'model': frame_scores(recon.cpu() > threshold, last),
                      'copy_last': frame_scores(last, last)}
    if horizon == 0:
        return results
    probs = world_model.predict_bev(
        bev[:, :context], batch['prev_action'][:, :context],
        batch['prev_action'][:, context:context + horizon],
        context_is_first=batch['is_first'][:, :context],
        shared=context_shared, intention=context_intention)
    truth = bev[:, context:context + horizon] > 0
    for k in (k for k in horizons if k > 0):
        results[k] = {'model': frame_scores(probs[:, k - 1].cpu() > threshold, truth[:, k - 1]),
                      'copy_last': frame_scores(last, truth[:, k - 1])}
    return results


def collect_windows(collector: Collector, env_steps: int, windows: int, length: int,
                    policy: str, seed: int) -> dict:
    """Run the collector ``env_steps`` steps and draw windows that stay inside one episode."""
    collector.start()
    replay = SequenceReplay(len(collector.roles) * (env_steps + 2), len(collector.roles))
    collector.replay = replay
    for _ in range(env_steps):
        collector.step(policy)
    return replay.sample(windows, length, np.random.default_rng(seed), within_episode=True)


def evaluate(world_model: WorldModel, env, settings: CollectConfig, horizons=DEFAULT_HORIZONS,
             context: int = 5, windows: int = 32, env_steps: Optional[int] = None,
             policy: str = 'heuristic', actor_critic=None, seed: int = 0,
             batch_size: int = 8) -> Dict[int, dict]:
    """Collect fresh experience with ``world_model`` and score its k-step predictions."""
    horizons = tuple(sorted(int(k) for k in horizons))
    if not horizons or horizons[0] < 0:
        raise ValueError(f'horizons must be integers >= 0 (0 = reconstruction), got {horizons}')
    if context < 1:
        raise ValueError(f'context must be >= 1, got {context}')
    length = context + horizons[-1]
    env_steps = env_steps if env_steps is not None else 2 * length
    collector = Collector(env, world_model, settings, actor_critic=actor_critic, seed=seed)
    data = collect_windows(collector, env_steps, windows, length, policy, seed)
    sums: Dict[int, dict] = {}
    for start in range(0, windows, batch_size):
        part = {k: (v[start:start + batch_size] if torch.is_tensor(v) else v)
                for k, v in data.items()}
        if part['shared'] is not None:
            part['shared'] = _each(data['shared'], lambda x: x[start:start + batch_size])
        rows = part['bev'].shape[0]
        for k, scores in evaluate_batch(world_model, part, context, horizons).items():
            entry = sums.setdefault(k, {'model': {}, 'copy_last': {}})
            for who, values in scores.items():
                for name, value in values.items():
                    total, weight = entry[who].get(name, (0.0, 0))
                    if value == value:  # skip nan IoU (no vehicle in truth or prediction)
                        entry[who][name] = (total + value * rows, weight + rows)
                    else:
                        entry[who][name] = (total, weight)
    return {k: {who: {name: (t / w if w else float('nan')) for name, (t, w) in vals.items()}
                for who, vals in entry.items()} for k, entry in sums.items()}


def format_table(results: Dict[int, dict]) -> str:
    """Plain-text table: k, pixel accuracy and vehicle IoU for model and copy-last."""
    lines = [f"{'k':>4} | {'pixel acc model':>15} | {'copy-last':>9} | "
             f"{'vehicle IoU model':>17} | {'copy-last':>9}",
             '-' * 68]
    for k in sorted(results):
        m, b = results[k]['model'], results[k]['copy_last']
        lines.append(f"{k:>4} | {m['pixel_accuracy']:>15.5f} | {b['pixel_accuracy']:>9.5f} | "
                     f"{m['vehicle_iou']:>17.4f} | {b['vehicle_iou']:>9.4f}")
    return '\n'.join(lines)


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags of the evaluation."""
    parser = argparse.ArgumentParser(
        description='k-step BEV prediction accuracy of a CALL checkpoint vs copy-last-frame.')
    parser.add_argument('--checkpoint', required=True)
    parser.add_argument('--scenario', required=True, help='call_sim scenario name or YAML')
    parser.add_argument('--mode', choices=MODES, default=None,
                        help='sharing mode (default: the one the checkpoint was trained with)')
    parser.add_argument('--c', type=float, default=None, help='gate threshold c')
    parser.add_argument('--h-transport', choices=('full', 'replica'), default='full',
                        help="neighbours' h as sent (full) or rebuilt from (z, a) (replica)")
    parser.add_argument('--keyframe-period', type=int, default=100,
                        help='replica: steps between h keyframes (call_comm comm.yaml: 100)')
    parser.add_argument('--keyframe-encoding', choices=('fp16', 'int8'), default='int8',
                        help='replica: keyframe quantisation (call_comm comm.yaml: int8)')
    parser.add_argument('--horizons', type=int, nargs='+', default=list(DEFAULT_HORIZONS),
                        help='k to score; 0 = reconstruction of the last context frame')
    parser.add_argument('--context', type=int, default=5)
    parser.add_argument('--windows', type=int, default=32, help='evaluated sequences')
    parser.add_argument('--env-steps', dest='env_steps', type=int, default=None,
                        help='simulator steps to collect (default: 2 x window length)')
    parser.add_argument('--policy', choices=('heuristic', 'actor', 'random'),
                        default='heuristic')
    parser.add_argument('--seed', type=int, default=12345)
    parser.add_argument('--threads', type=int, default=1)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Print the table; bad arguments or a bad checkpoint exit with status 2 and the reason."""
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    try:
        loaded = checkpoint.load(args.checkpoint, load_optimizers=False)
        extra = loaded.meta.get('extra', {})
        from call_world_model.train import load_train_config
        values = dict(load_train_config())
        values['mode'] = args.mode or extra.get('mode', values['mode'])
        # checkpoints written before c had one name keep it as 'threshold'
        trained_c = extra.get('c', extra.get('threshold'))
        if args.c is not None:
            values['c'] = args.c
        elif trained_c is not None:
            values['c'] = trained_c
        values['h_transport'] = args.h_transport
        values['keyframe_period'] = args.keyframe_period
        values['keyframe_encoding'] = args.keyframe_encoding
        settings = CollectConfig.from_mapping(values)
        from call_sim.env import MultiVehicleEnv
        env = MultiVehicleEnv.from_scenario(args.scenario)
        try:
            results = evaluate(loaded.world_model, env, settings, args.horizons, args.context,
                               args.windows, args.env_steps, args.policy, loaded.actor_critic,
                               args.seed)
        finally:
            env.close()
    except (ValueError, FileNotFoundError, checkpoint.CheckpointError) as exc:
        print(f'evaluate_prediction: error: {exc}', file=sys.stderr)
        return 2
    print(f'checkpoint {args.checkpoint} (step {loaded.step}), scenario {args.scenario}, '
          f'mode {settings.mode}, h {settings.h_transport}, context {args.context}, '
          f'{args.windows} windows, policy {args.policy}')
    print(format_table(results))
    return 0


if __name__ == '__main__':
    sys.exit(main())

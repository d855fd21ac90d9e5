"""
Neighbour-view decoder: the dense one-hot product against the indexed gather (paper Fig. 4c).

The decoder's first linear takes [h, flatten(one-hot z)]; ``decode_neighbour_vehicles`` now
gathers the S weight columns the one-hot selects (``ConvDecoder._from_indices``) instead of
multiplying all S * K. This prints, for random latents of a checkpoint, how far the two
paths' probabilities are apart and how many thresholded mask pixels differ, whether a latent
decoded alone gives its batch mask, and the thread CPU of both paths per batch size
(1 torch thread, interleaved rounds, median).

    python bench/bench_view_decoder.py --checkpoint src/call_world_model/checkpoints/call_small.pt
"""
import argparse
import statistics
import time

from cpu_timing import median_cpu_ms
from machine_reference import print_reference
import numpy as np


def main() -> int:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--checkpoint', default='src/call_world_model/checkpoints/call_small.pt')
    parser.add_argument('--latents', type=int, default=100)
    parser.add_argument('--batches', type=int, nargs='+', default=[1, 2, 4, 8])
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--repeats', type=int, default=11)
    parser.add_argument('--seed', type=int, default=11)
    args = parser.parse_args()
    print_reference()

    import torch
    from torch.nn import functional as F
    from call_perception.neighbour_views import VIEW_CHANNELS
    from call_world_model.checkpoint import load
    from call_world_model.neighbour_decoding import decode_neighbour_vehicles

    torch.set_num_threads(1)
    model = load(args.checkpoint, load_optimizers=False).world_model.eval()
    cfg = model.cfg
    rng = np.random.default_rng(args.seed)

    def dense(latents):
        z = torch.from_numpy(np.stack([z for z, _ in latents]).astype(np.int64))
        state = {'deter': torch.from_numpy(np.stack([h for _, h in latents])),
                 'stoch': F.one_hot(z, cfg.classes).float()}
        with torch.no_grad():
            probs = model.bev_probs(state, VIEW_CHANNELS)
        return probs, np.where((probs.amax(1) > 0.5).numpy(), 255, 0).astype(np.uint8)

    def indexed_probs(latents):
        z = torch.from_numpy(np.stack([z for z, _ in latents]).astype(np.int64))
        h = torch.from_numpy(np.stack([h for _, h in latents]))
        with torch.no_grad():
            return model.bev_probs_indexed(z, h, VIEW_CHANNELS)

    def latents_of(count, squash):
        return [(rng.integers(0, cfg.classes, cfg.stoch),
                 (np.tanh(rng.normal(size=cfg.deter)) if squash
                  else rng.normal(size=cfg.deter)).astype(np.float32)) for _ in range(count)]

    print(f'checkpoint {args.checkpoint} (bev {cfg.bev_size} px, stoch {cfg.stoch} x '
          f'{cfg.classes}, deter {cfg.deter}), channels {tuple(VIEW_CHANNELS)}')
    for squash in (False, True):
        latents = latents_of(args.latents, squash)
        probs, masks = dense(latents)
        new = decode_neighbour_vehicles(model, latents, VIEW_CHANNELS).masks
        alone = np.concatenate([decode_neighbour_vehicles(model, [x], VIEW_CHANNELS).masks
                                for x in latents])
        diff = float((indexed_probs(latents) - probs).abs().max())
        print(f'h {"tanh(normal)" if squash else "normal"}, {args.latents} latents: '
              f'probabilities max |indexed - dense| {diff:.3g}; mask pixels differing '
              f'{int((masks != new).sum())} of {masks.size} ({int((masks > 0).sum())} on); '
              f'each latent alone = its batch mask: {np.array_equal(alone, new)}')
    print('batch | dense one-hot ms | indexed ms (thread CPU, median over interleaved rounds)')
    for n in args.batches:
        latents = latents_of(n, True)
        a, b = [], []
        for _ in range(args.rounds):
            a.append(median_cpu_ms(lambda: dense(latents), args.repeats, time.thread_time))
            b.append(median_cpu_ms(
                lambda: decode_neighbour_vehicles(model, latents, VIEW_CHANNELS), args.repeats,
                time.thread_time))
        print(f'{n:5d} | {statistics.median(a):16.2f} | {statistics.median(b):10.2f}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

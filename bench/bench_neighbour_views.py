"""
Cost of the updated BEV's Fig. 4c case per neighbour per step (one ego, N neighbours).

Per step: the N accepted neighbours' (z, h) are decoded by the shared decoder as one batch
(``call_world_model.neighbour_decoding``, what the pipeline and the comm node run), then each
vehicle mask is warped into the ego frame and its unseen vehicles are added to the shared
channel (``call_perception.neighbour_views``). Prints median wall ms for the decode (batched
and one by one, for comparison), the warp + add, and the total per neighbour; the CPU ms of the
batched total (process time, one torch thread) is what a shared, loaded machine cannot blur.

    python bench/bench_neighbour_views.py --checkpoint \
        src/call_world_model/checkpoints/wm_small64g8.pt --neighbours 1 2 4 8
"""
import argparse
from types import SimpleNamespace

from bench_world_model import _median_ms
from cpu_timing import median_cpu_ms
import numpy as np
from machine_reference import print_reference


def main() -> int:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--checkpoint', default='src/call_world_model/checkpoints/wm_small64g8.pt')
    parser.add_argument('--neighbours', type=int, nargs='+', default=[1, 2, 4, 8])
    parser.add_argument('--repeats', type=int, default=30)
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args()
    print_reference()

    import torch
    from call_perception.bev_raster import BevConfig, BevRasterizer
    from call_perception.neighbour_views import add_neighbour_views, NeighbourView, VIEW_CHANNELS
    from call_world_model.checkpoint import load
    from call_world_model.neighbour_decoding import decode_neighbour_vehicles

    torch.set_num_threads(args.threads)
    model = load(args.checkpoint, load_optimizers=False).world_model.eval()
    cfg = model.cfg
    bev_config = BevConfig.from_yaml()
    if bev_config.size != cfg.bev_size:
        bev_config = bev_config.resized(cfg.bev_size)
    rng = np.random.default_rng(0)
    ego = SimpleNamespace(x=0.0, y=0.0, yaw=0.0, length=4.6, width=2.0)
    bev = BevRasterizer(bev_config).render(ego, [])
    print(f'checkpoint {args.checkpoint} (bev {cfg.bev_size} px, stoch {cfg.stoch}, '
          f'deter {cfg.deter}), torch threads {args.threads}')
    print('neighbours | decode batched ms | decode 1-by-1 ms | warp+add ms | '
          'total ms | total per neighbour ms | CPU total per neighbour ms')
    for n in args.neighbours:
        latents = [(rng.integers(0, cfg.classes, cfg.stoch), rng.normal(size=cfg.deter))
                   for _ in range(n)]
        poses = [SimpleNamespace(x=float(rng.uniform(-20, 20)), y=float(rng.uniform(-8, 8)),
                                 yaw=float(rng.uniform(-0.3, 0.3))) for _ in range(n)]
        decoded = decode_neighbour_vehicles(model, latents, VIEW_CHANNELS)
        views = [NeighbourView(f'hero{i + 1}', p, m) for i, (p, m)
                 in enumerate(zip(poses, decoded.masks))]
        batched = _median_ms(lambda: decode_neighbour_vehicles(model, latents, VIEW_CHANNELS),
                             args.repeats)
        single = _median_ms(lambda: [decode_neighbour_vehicles(model, [x], VIEW_CHANNELS)
                                     for x in latents], args.repeats)
        warp = _median_ms(lambda: add_neighbour_views(bev.copy(), ego, views, bev_config),
                          args.repeats)
        cpu = median_cpu_ms(lambda: add_neighbour_views(
            bev.copy(), ego, [NeighbourView(v.sender_id, v.pose, m) for v, m in zip(
                views, decode_neighbour_vehicles(model, latents, VIEW_CHANNELS).masks)],
            bev_config), args.repeats)
        print(f'{n:10d} | {batched:17.2f} | {single:16.2f} | {warp:11.2f} | '
              f'{batched + warp:8.2f} | {(batched + warp) / n:22.2f} | {cpu / n:26.2f}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

"""
World-model speed on CPU: CALL's RSSM side by side with sheeprl's DreamerV3 (one run).

Figures per implementation (median wall time, torch threads = --threads):
  * observe step: encode one 128x128 BEV and filter one RSSM step (batch 1; the node's tick),
    and per vehicle when a container observes 1, 2, 4 or 8 vehicles as one batch
  * 15-step imagination: open-loop prior rollout of 15 given actions (batch 1; the planner)
  * training steps/s: one world-model + one actor-critic update (imagination horizon 15)
    at batch B x length T (16 x 64 = paper Table 5, and a smaller batch)

Optional comparison, not quoted in the README: sheeprl (Eclectic-Sheep/sheeprl, PyTorch
DreamerV3) cannot share the project venv (it pins lightning/hydra/gymnasium), and nothing in
this repository creates its venv. Given one (--sheeprl-python), this same file runs in it with
--sheeprl-worker, at the sizes of the CALL preset (GRU units, dense units, MLP layers, CNN
multiplier, 32 x 32 latents, 7 x 128 x 128 input, 15 actions). sheeprl's CNN doubles channels
every stage (x16 at the last), CALL's small preset stops at x8.

    python bench/bench_world_model.py --sheeprl-python /tmp/sheeprl-venv/bin/python
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from machine_reference import print_reference

BEV_CHANNELS, BEV_SIZE, ACTIONS, HORIZON = 7, 128, 15, 15


def _median_ms(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def bench_call(args) -> dict:
    """CALL world model (small preset) with 3 neighbours' shared latents and an intention."""
    import torch
    from call_world_model.actor_critic import ActorCritic
    from call_world_model.config import load_config
    from call_world_model.shared_pooling import SharedBatch
    from call_world_model.world_model import WorldModel

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = load_config(args.preset)
    wm = WorldModel(cfg)
    ac = ActorCritic(cfg, cfg.feat_dim, cfg.num_actions)
    out = {'name': f'CALL ({args.preset})', 'params_m': _params(wm) + _params(ac),
           'sizes': {'deter': cfg.deter, 'hidden': cfg.hidden, 'mlp_layers': cfg.mlp_layers,
                     'cnn_depth': cfg.cnn_depth}}

    def shared(lead):
        batch = SharedBatch.empty(lead, cfg)
        batch.mask[..., :3] = True
        batch.z_indices.random_(0, cfg.classes)
        batch.h.normal_()
        return batch

    bev = torch.randint(0, 2, (1, cfg.bev_channels, cfg.bev_size, cfg.bev_size),
                        dtype=torch.uint8) * 255
    intention = torch.randn(1, cfg.intention_points, 2) * 10
    state = wm.initial_state(1)
    one_shared = shared((1,))
    wm.eval()

    def observe():
        with torch.no_grad():
            wm.observe_step(state, torch.zeros(1, dtype=torch.long), bev,
                            torch.zeros(1, dtype=torch.bool), one_shared, intention)

    actions = torch.randint(0, cfg.num_actions, (1, HORIZON))

    def imagine():
        with torch.no_grad():
            wm.rollout(state, actions, one_shared, intention)

    out['observe_ms'] = _median_ms(observe, args.repeats)
    out['observe_batched_ms'] = _observe_batched_ms(wm, bev, one_shared, intention, args)
    out['imagine15_ms'] = _median_ms(imagine, args.repeats)
    for batch_size, length in args.train_sizes:
        batch = {
            'bev': torch.randint(0, 2, (batch_size, length, cfg.bev_channels, cfg.bev_size,
                                        cfg.bev_size), dtype=torch.uint8) * 255,
            'prev_action': torch.randint(0, cfg.num_actions, (batch_size, length)),
            'reward': torch.randn(batch_size, length), 'cont': torch.ones(batch_size, length),
            'is_first': torch.zeros(batch_size, length, dtype=torch.bool),
            'shared': shared((batch_size, length)),
            'intention': torch.randn(batch_size, length, cfg.intention_points, 2)}

        def update():
            _, posts = wm.train_step(batch)
            ac.train_step(wm, posts)

        seconds = _median_ms(update, args.train_repeats, warmup=1) / 1000.0
        out[f'train_{batch_size}x{length}_steps_per_s'] = 1.0 / seconds
    return out


def _observe_batched_ms(wm, bev, one_shared, intention, args) -> dict:
    """Per-vehicle observe ms when a container's nodes run their steps as one batch."""
    import torch
    from call_world_model.observe_batch import ObserveRequest, observe_together

    state = wm.initial_state(1)
    out = {}
    for batch in (1, 2, 4, 8):
        requests = [ObserveRequest(state, 0, bev, one_shared, intention)] * batch

        def observe():
            with torch.inference_mode():
                observe_together(wm, requests)

        out[batch] = _median_ms(observe, args.repeats) / batch
    return out


def _params(module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


def bench_sheeprl(args) -> dict:
    """Sheeprl DreamerV3 at the same sizes (runs inside the sheeprl venv)."""
    import gymnasium as gym
    from hydra import compose, initialize_config_dir
    from lightning.fabric import Fabric
    import numpy as np
    from omegaconf import OmegaConf
    import sheeprl
    from sheeprl.algos.dreamer_v3.agent import build_agent
    from sheeprl.algos.dreamer_v3.dreamer_v3 import train
    from sheeprl.algos.dreamer_v3.utils import Moments
    from sheeprl.utils.utils import dotdict
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config_dir = os.path.join(os.path.dirname(sheeprl.__file__), 'configs')
    overrides = [
        'exp=dreamer_v3', 'algo=dreamer_v3_S', 'env=dummy', f'env.screen_size={BEV_SIZE}',
        'algo.cnn_keys.encoder=[bev]', 'algo.cnn_keys.decoder=[bev]',
        'algo.mlp_keys.encoder=[]', 'algo.mlp_keys.decoder=[]',
        f'algo.world_model.encoder.cnn_channels_multiplier={args.cnn_depth}',
        f'algo.world_model.recurrent_model.recurrent_state_size={args.deter}',
        f'algo.world_model.transition_model.hidden_size={args.hidden}',
        f'algo.world_model.representation_model.hidden_size={args.hidden}',
        f'algo.dense_units={args.hidden}', f'algo.mlp_layers={args.mlp_layers}',
        'fabric.accelerator=cpu', 'fabric.devices=1', 'metric.log_level=0',
        f'algo.horizon={HORIZON}']
    with initialize_config_dir(config_dir=config_dir, version_base='1.3'):
        cfg = compose(config_name='config', overrides=overrides)
    cfg = dotdict(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False))
    fabric = Fabric(accelerator='cpu', devices=1)
    obs_space = gym.spaces.Dict({'bev': gym.spaces.Box(
        0, 255, (BEV_CHANNELS, BEV_SIZE, BEV_SIZE), np.uint8)})
    world_model, actor, critic, target_critic, _ = build_agent(
        fabric, (ACTIONS,), False, cfg, obs_space)
    out = {'name': f'sheeprl DreamerV3 (GRU {args.deter}, dense {args.hidden})',
           'params_m': _params(world_model) + _params(actor) + _params(critic)}
    rssm = world_model.rssm
    bev = torch.randint(0, 2, (1, 1, BEV_CHANNELS, BEV_SIZE, BEV_SIZE)).float() - 0.5
    recurrent, posterior = rssm.get_initial_states((1, 1))
    action = torch.zeros(1, 1, ACTIONS)
    is_first = torch.zeros(1, 1, 1)

    def observe():
        with torch.no_grad():
            embedded = world_model.encoder({'bev': bev})
            rssm.dynamic(posterior, recurrent, action, embedded, is_first)

    actions = torch.nn.functional.one_hot(torch.randint(0, ACTIONS, (HORIZON, 1, 1)),
                                          ACTIONS).float()
    prior = posterior.reshape(1, 1, -1)

    def imagine():
        with torch.no_grad():
            p, h = prior, recurrent
            for k in range(HORIZON):
                p, h = rssm.imagination(p, h, actions[k])
                p = p.reshape(1, 1, -1)

    out['observe_ms'] = _median_ms(observe, args.repeats)
    out['imagine15_ms'] = _median_ms(imagine, args.repeats)
    optim = {name: torch.optim.Adam(model.parameters(), lr=lr, eps=eps) for name, model, lr, eps
             in (('world', world_model, 1e-4, 1e-8), ('actor', actor, 3e-5, 1e-5),
                 ('critic', critic, 3e-5, 1e-5))}
    moments = Moments(0.99, 1.0, 0.05, 0.95)
    for batch_size, length in args.train_sizes:
        data = {
            'bev': torch.randint(0, 2, (length, batch_size, BEV_CHANNELS, BEV_SIZE, BEV_SIZE)
                                 ).float() * 255,
            'actions': torch.nn.functional.one_hot(
                torch.randint(0, ACTIONS, (length, batch_size)), ACTIONS).float(),
            'rewards': torch.randn(length, batch_size, 1),
            'terminated': torch.zeros(length, batch_size, 1),
            'truncated': torch.zeros(length, batch_size, 1),
            'is_first': torch.zeros(length, batch_size, 1)}

        def update():
            train(fabric, world_model, actor, critic, target_critic, optim['world'],
                  optim['actor'], optim['critic'], data, None, cfg, False, (ACTIONS,), moments)

        seconds = _median_ms(update, args.train_repeats, warmup=1) / 1000.0
        out[f'train_{batch_size}x{length}_steps_per_s'] = 1.0 / seconds
    return out


def _run_sheeprl(args, sizes: dict) -> dict:
    command = [args.sheeprl_python, os.path.abspath(__file__), '--sheeprl-worker',
               *[f'--{k.replace("_", "-")}={v}' for k, v in sizes.items()],
               '--threads', str(args.threads), '--repeats', str(args.repeats),
               '--train-repeats', str(args.train_repeats), '--train-sizes',
               *[f'{b}x{t}' for b, t in args.train_sizes]]
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
    result = subprocess.run(command, capture_output=True, text=True, timeout=3600, env=env)
    if result.returncode != 0:
        return {'name': 'sheeprl DreamerV3', 'error': result.stderr.strip()[-800:]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def _table(rows, sizes) -> str:
    cols = [('params [M]', 'params_m', '{:.1f}'), ('observe [ms]', 'observe_ms', '{:.1f}'),
            ('imagine 15 [ms]', 'imagine15_ms', '{:.1f}')]
    cols += [(f'train {b}x{t} [steps/s]', f'train_{b}x{t}_steps_per_s', '{:.3f}')
             for b, t in sizes]
    width = max(len(r['name']) for r in rows) + 2
    lines = [' | '.join([f"{'implementation':<{width}}"] + [c[0] for c in cols])]
    lines.append('-' * len(lines[0]))
    for row in rows:
        if 'error' in row:
            lines.append(f"{row['name']:<{width}} | failed: {row['error']}")
            continue
        cells = [f"{row['name']:<{width}}"]
        cells += [c[2].format(row[c[1]]).rjust(len(c[0])) for c in cols]
        lines.append(' | '.join(cells))
    return '\n'.join(lines)


def _size(text: str):
    batch, _, length = text.partition('x')
    return int(batch), int(length)


def main() -> int:
    """Run the CALL bench (and the sheeprl one in its own venv) and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--preset', default='small')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=30)
    parser.add_argument('--train-repeats', type=int, default=2)
    parser.add_argument('--train-sizes', nargs='+', type=_size, default=[(16, 64), (4, 16)])
    parser.add_argument('--sheeprl-python', default='',
                        help='python of a venv with sheeprl installed (default: skip)')
    parser.add_argument('--sheeprl-worker', action='store_true', help=argparse.SUPPRESS)
    for name in ('deter', 'hidden', 'mlp-layers', 'cnn-depth'):  # sizes passed to the worker
        parser.add_argument(f'--{name}', type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sheeprl_worker:
        print(json.dumps(bench_sheeprl(args)))
        return 0
    print_reference()
    rows = [bench_call(args)]
    if args.sheeprl_python and os.path.exists(args.sheeprl_python):
        rows.append(_run_sheeprl(args, rows[0]['sizes']))
    elif args.sheeprl_python:
        rows.append({'name': 'sheeprl DreamerV3',
                     'error': f'{args.sheeprl_python} not found (see module doc)'})
    print(f'CPU, torch threads = {args.threads}, BEV {BEV_CHANNELS}x{BEV_SIZE}x{BEV_SIZE}, '
          f'{ACTIONS} actions, imagination horizon {HORIZON}')
    print(_table(rows, args.train_sizes))
    batched = rows[0]['observe_batched_ms']
    print('CALL observe step per vehicle when a container batches its vehicles '
          '(observe_batch.observe_together): ' + ', '.join(
              f'batch {b}: {ms:.2f} ms' for b, ms in batched.items()))
    return 0


if __name__ == '__main__':
    sys.exit(main())

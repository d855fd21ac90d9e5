"""
`call_train`: one command collects multi-agent experience and trains world model + actor-critic.

Loop (DreamerV3, paper App. E.2): every environment step advances all CALL vehicles of the
embedded simulator once (``collect.Collector``); each collected agent-step earns
``train_ratio / (batch * length)`` gradient updates; an update trains the world model on a
replay batch (16 x 64 by default) and the actor-critic on imagined rollouts started from that
batch's posteriors. TensorBoard scalars, a tqdm bar, periodic atomic checkpoints and
``--resume`` (the replay is not checkpointed: a resumed run refills it with ``prefill`` steps
of its restored actor before updating again).

Data-parallel: under ``torchrun --nproc_per_node N`` (WORLD_SIZE > 1) every rank runs its own
simulator and replay (seed + rank); gradients are averaged with DistributedDataParallel (gloo
on CPU, nccl on GPU); rank 0 logs and saves.
"""
import argparse
import math
import os
from pathlib import Path
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

from call_learning.collect import Collector
from call_learning.pipeline import MODES, PipelineConfig
from call_learning.replay import SequenceReplay
from call_world_model import checkpoint
from call_world_model.actor_critic import ActorCritic
from call_world_model.config import load_config
from call_world_model.world_model import WorldModel
import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
import yaml

TRAIN_CONFIG = 'train.yaml'
CHECKPOINT_NAME = 'checkpoint.pt'
_INT_KEYS = ('steps', 'batch', 'length', 'replay_capacity', 'prefill', 'checkpoint_every',
             'log_every', 'seed', 'threads')
_FLOAT_KEYS = ('c', 'train_ratio', 'explore_heuristic')


def train_config_path() -> Path:
    """config/train.yaml of the source tree (symlink installs) or the installed share dir."""
    here = Path(__file__).resolve().parent.parent / 'config' / TRAIN_CONFIG
    if here.is_file():
        return here
    return Path(sys.prefix) / 'share' / 'call_learning' / 'config' / TRAIN_CONFIG


def load_train_config(path: Optional[str] = None) -> Dict[str, Any]:
    """Read train.yaml (a flat mapping); fail with the reason if it is unusable."""
    path = Path(path) if path else train_config_path()
    try:
        with open(path, encoding='utf-8') as stream:
            values = yaml.safe_load(stream)
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f'cannot read training config {path}: {exc}') from exc
    if not isinstance(values, dict):
        raise ValueError(f'{path}: expected a YAML mapping')
    return values


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags; unset flags fall back to config/train.yaml."""
    parser = argparse.ArgumentParser(
        prog='call_train', description='Train the CALL world model and actor-critic on '
        'multi-agent experience from the embedded simulator (one command, both models).')
    parser.add_argument('--preset', help='model size preset of presets.yaml (tiny/small/L)')
    parser.add_argument('--scenario', required=True,
                        help='call_sim scenario: YAML path or name in call_sim config/scenarios')
    parser.add_argument('--mode', choices=MODES, help='information sharing mode')
    parser.add_argument('--c', type=float, help='prediction-accuracy threshold c')
    parser.add_argument('--steps', type=int, help='total environment steps to reach')
    parser.add_argument('--train-ratio', dest='train_ratio', type=float,
                        help='replayed agent-steps per collected agent-step')
    parser.add_argument('--batch', type=int, help='sequences per update (paper: 16)')
    parser.add_argument('--length', type=int, help='steps per sequence (paper: 64)')
    parser.add_argument('--prefill', type=int, help='env steps of the prefill policy first')
    parser.add_argument('--logdir', required=True, help='TensorBoard logs and checkpoint.pt')
    parser.add_argument('--resume', nargs='?', const='auto', default=None,
                        help='resume from this checkpoint (no value: LOGDIR/checkpoint.pt)')
    parser.add_argument('--checkpoint-every', dest='checkpoint_every', type=int,
                        help='env steps between checkpoints')
    parser.add_argument('--explore-heuristic', dest='explore_heuristic', type=float,
                        help='probability per agent-step of the heuristic after prefill')
    parser.add_argument('--log-every', dest='log_every', type=int,
                        help='gradient updates between TensorBoard scalars')
    parser.add_argument('--replay-capacity', dest='replay_capacity', type=int,
                        help='FIFO replay capacity in agent-steps')
    parser.add_argument('--world-model-only', dest='world_model_only', action='store_true',
                        default=None, help='skip the actor-critic updates and collect with '
                        'the heuristic policy (world-model training at half the update cost)')
    parser.add_argument('--freeze-world-model', dest='freeze_world_model', action='store_true',
                        default=None, help='train the actor-critic only, in the imagination '
                        'of a resumed world model that stays as it is (e.g. one trained with '
                        '--world-model-only)')
    parser.add_argument('--export', default=None,
                        help='also write a slim copy (no optimiser states) here at the end')
    parser.add_argument('--seed', type=int)
    parser.add_argument('--threads', type=int, help='torch CPU threads per process')
    parser.add_argument('--set', dest='overrides', action='append', default=[],
                        metavar='KEY=VALUE', help='world-model config override (YAML value)')
    parser.add_argument('--config', default=None, help='training YAML (default: train.yaml)')
    parser.add_argument('--no-progress', dest='progress', action='store_false',
                        help='disable the tqdm progress bar')
    return parser


def resolve_settings(args: argparse.Namespace) -> Dict[str, Any]:
    """train.yaml overridden by the flags that were given; validated."""
    settings = load_train_config(args.config)
    for key, value in vars(args).items():
        if value is not None and key not in ('config', 'overrides'):
            settings[key] = value
    for key in _INT_KEYS:
        settings[key] = _as_int(settings, key)
    for key in _FLOAT_KEYS:
        settings[key] = float(settings[key])
    positive = ('steps', 'batch', 'length', 'replay_capacity', 'checkpoint_every', 'log_every',
                'threads')
    for key in positive:
        if settings[key] <= 0:
            raise ValueError(f'{key} must be > 0, got {settings[key]}')
    if settings['prefill'] < 0 or settings['train_ratio'] < 0:
        raise ValueError('prefill and train_ratio must be >= 0')
    if not 0.0 <= settings['explore_heuristic'] <= 1.0:
        raise ValueError('explore_heuristic must be in [0, 1]')
    if not isinstance(settings.get('world_model_only', False), bool):
        raise ValueError('world_model_only must be true or false, got '
                         f"{settings['world_model_only']!r}")
    settings['world_model_only'] = settings.get('world_model_only', False)
    for key in ('freeze_world_model',):
        if not isinstance(settings.get(key, False), bool):
            raise ValueError(f'{key} must be true or false, got {settings[key]!r}')
        settings[key] = settings.get(key, False)
    if settings['freeze_world_model'] and settings['world_model_only']:
        raise ValueError('freeze_world_model and world_model_only together train nothing')
    if settings['freeze_world_model'] and not settings.get('resume'):
        raise ValueError('freeze_world_model needs --resume: a frozen fresh world model '
                         'imagines nothing an actor could learn from')
    if settings['prefill_policy'] not in ('heuristic', 'random'):
        raise ValueError(f"prefill_policy must be 'heuristic' or 'random', got "
                         f"{settings['prefill_policy']!r}")
    settings['model_overrides'] = parse_overrides(args.overrides)
    return settings


def _as_int(settings: Dict[str, Any], key: str) -> int:
    value = settings[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ValueError(f'{key} must be an integer, got {value!r}')
    return int(value)


def parse_overrides(items: Sequence[str]) -> Dict[str, Any]:
    """['deter=64', 'cnn_mults=[1,2]'] -> {'deter': 64, 'cnn_mults': [1, 2]}."""
    out = {}
    for item in items:
        key, sep, text = item.partition('=')
        if not sep or not key:
            raise ValueError(f'--set expects KEY=VALUE, got {item!r}')
        out[key.strip()] = yaml.safe_load(text)
    return out


class _LossModule(torch.nn.Module):
    """World-model loss as ``forward`` so DistributedDataParallel can average its gradients."""

    def __init__(self, world_model: WorldModel):
        super().__init__()
        self.world_model = world_model

    def forward(self, batch):
        return self.world_model.loss(batch)


class Trainer:
    """Owns the models, the collector, the replay and the update schedule of one process."""

    def __init__(self, settings: Dict[str, Any], env: Any, rank: int = 0, world_size: int = 1,
                 device: str = 'cpu'):
        """Build (or restore with ``settings['resume']``) the models and the collector."""
        self.settings = settings
        self.rank, self.world_size = rank, world_size
        self.device = torch.device(device)
        cfg = load_config(settings['preset'], settings['model_overrides'])
        resume = settings.get('resume')
        self.step = 0
        self.updates = 0
        if resume:
            path = (os.path.join(settings['logdir'], CHECKPOINT_NAME) if resume == 'auto'
                    else resume)
            loaded = checkpoint.load(path, map_location=self.device, expected_config=cfg)
            self.world_model, self.actor_critic = loaded.world_model, loaded.actor_critic
            self.step = loaded.step
            self.updates = int(loaded.meta['extra'].get('updates', 0))
        else:
            self.world_model = WorldModel(cfg).to(self.device)
            self.actor_critic = ActorCritic(cfg, cfg.feat_dim, cfg.num_actions).to(self.device)
        self.cfg = cfg
        self.resumed = bool(resume)
        self.collector = Collector(env, self.world_model, PipelineConfig.from_mapping(settings),
                                   actor_critic=self.actor_critic,
                                   seed=settings['seed'] + 1000 * rank)
        self.collector.start()
        self.replay = SequenceReplay(settings['replay_capacity'], len(self.collector.roles))
        self.collector.replay = self.replay
        self.rng = np.random.default_rng(settings['seed'] + rank)
        self.updates_per_step = (len(self.collector.roles) * settings['train_ratio']
                                 / (settings['batch'] * settings['length']))
        self._owed = 0.0
        self._wm_ddp = None
        if world_size > 1:
            self._wrap_distributed()

    def _wrap_distributed(self) -> None:
        """DDP for the world-model loss and for the actor and critic networks."""
        ids = [self.device.index] if self.device.type == 'cuda' else None
        self._wm_ddp = DistributedDataParallel(_LossModule(self.world_model), device_ids=ids)
        self.actor_critic.actor = DistributedDataParallel(self.actor_critic.actor, device_ids=ids)
        self.actor_critic.critic = DistributedDataParallel(self.actor_critic.critic,
                                                           device_ids=ids)

    def _plain_actor_critic(self) -> ActorCritic:
        """Return the actor-critic without DDP wrappers (same parameters) for saving."""
        ac = self.actor_critic
        if self.world_size == 1:
            return ac
        plain = ActorCritic(self.cfg, self.cfg.feat_dim, self.cfg.num_actions)
        state = {k.replace('.module.', '.'): v for k, v in ac.state_dict().items()}
        plain.load_state_dict(state)
        plain.actor_opt.load_state_dict(ac.actor_opt.state_dict())
        plain.critic_opt.load_state_dict(ac.critic_opt.state_dict())
        return plain

    # ------------------------------------------------------------------ updates
    def update(self) -> Dict[str, float]:
        """
        One world-model and (unless ``world_model_only``) one actor-critic step on a batch.

        World-model-only training is for prediction: the model learns from any behaviour, so
        the untrained actor is skipped and its imagination (about half an update) is saved.
        """
        batch = self.replay.sample(self.settings['batch'], self.settings['length'], self.rng)
        if self.settings.get('freeze_world_model', False):
            # the actor-critic alone: start states are the frozen model's posteriors
            with torch.no_grad():
                metrics, (posts, _) = {}, self.world_model.observe_batch(batch)
        elif self._wm_ddp is None:
            metrics, posts = self.world_model.train_step(batch)
        else:
            metrics, posts = self._distributed_world_model_step(batch)
        self.updates += 1
        out = {f'world_model/{k}': v for k, v in metrics.items()}
        if not self.settings.get('world_model_only', False):
            ac_metrics = self.actor_critic.train_step(self.world_model, posts)
            out.update({f'actor_critic/{k}': v for k, v in ac_metrics.items()})
        return out

    def _distributed_world_model_step(self, batch):
        """WorldModel.train_step with the loss evaluated through DDP (averaged gradients)."""
        wm = self.world_model
        wm.train()
        loss, metrics, posts = self._wm_ddp(batch)
        metrics['grad_norm'] = wm.apply_loss(loss)
        return metrics, {k: v.detach() for k, v in posts.items()}

    def env_step(self, policy: str, earn: bool = True) -> Dict[str, float]:
        """Advance the simulator once (all agents); ``earn``: account the updates it earns."""
        stats = self.collector.step(policy, self.settings['explore_heuristic'])
        self.step += 1
        if earn:
            self._owed += self.updates_per_step
        return stats

    def due_updates(self) -> int:
        """Whole updates owed so far (fractions carry over)."""
        if not self.replay.can_sample(self.settings['length']):
            return 0
        whole = int(math.floor(self._owed))
        self._owed -= whole
        return whole

    def save(self, path: str, slim: bool = False) -> None:
        """Checkpoint with the training metadata (rank 0 only)."""
        extra = {'updates': self.updates, 'mode': self.settings['mode'],
                 'world_model_only': self.settings.get('world_model_only', False),
                 'freeze_world_model': self.settings.get('freeze_world_model', False),
                 'scenario': str(self.settings['scenario']),
                 'c': self.settings['c'], 'preset': self.settings['preset']}
        checkpoint.save(path, self.world_model, self._plain_actor_critic(), self.cfg,
                        self.step, extra=extra, optimizers=not slim)
        if slim:
            halve_checkpoint(path)


def export_checkpoint(source: str, target: str, actor_critic: bool = True) -> None:
    """
    Write a shippable copy of a training checkpoint: no optimiser states, float16 weights.

    ``python -c "from call_learning.train import export_checkpoint; export_checkpoint(a, b)"``
    gives the same file as ``--export`` at the end of a run that stopped at that checkpoint.
    ``actor_critic=False`` leaves the actor-critic out (``--world-model-only`` runs never
    train it).
    """
    loaded = checkpoint.load(source, load_optimizers=False)
    extra = dict(loaded.meta.get('extra', {}))
    checkpoint.save(target, loaded.world_model, loaded.actor_critic if actor_critic else None,
                    loaded.cfg, loaded.step, extra=extra, optimizers=False)
    halve_checkpoint(target)


def halve_checkpoint(path: str) -> None:
    """
    Store the parameters of an optimiser-free checkpoint in float16 (half the bytes).

    ``checkpoint.load`` copies them into float32 parameters (load_state_dict casts), so the
    file stays a normal checkpoint; predictions change by float16 rounding only.
    """
    payload = torch.load(path, map_location='cpu', weights_only=True)
    for key in ('world_model', 'actor_critic'):
        state = payload.get(key)
        if isinstance(state, dict):
            payload[key] = {name: (value.half() if torch.is_floating_point(value) else value)
                            for name, value in state.items()}
    payload['extra'] = dict(payload.get('extra') or {}, storage='float16')
    tmp = f'{path}.tmp'
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _make_env(scenario: str):
    from call_sim.env import MultiVehicleEnv
    return MultiVehicleEnv.from_scenario(scenario)


def _distributed_context():
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    if world_size <= 1:
        return 0, 1, 'cpu'
    backend = 'nccl' if torch.cuda.is_available() else 'gloo'
    dist.init_process_group(backend=backend)
    rank = dist.get_rank()
    if backend == 'nccl':
        local = int(os.environ.get('LOCAL_RANK', '0'))
        torch.cuda.set_device(local)
        return rank, world_size, f'cuda:{local}'
    return rank, world_size, 'cpu'


def run(settings: Dict[str, Any], env: Any = None) -> Dict[str, Any]:
    """Train until ``settings['steps']`` env steps; returns a summary dict."""
    rank, world_size, device = _distributed_context()
    torch.set_num_threads(settings['threads'])
    torch.manual_seed(settings['seed'] + rank)
    own_env = env is None
    env = _make_env(settings['scenario']) if own_env else env
    try:
        return _train(settings, env, rank, world_size, device)
    finally:
        if own_env:
            env.close()
        if world_size > 1:
            dist.destroy_process_group()


def _train(settings: Dict[str, Any], env: Any, rank: int, world_size: int, device: str
           ) -> Dict[str, Any]:
    trainer = Trainer(settings, env, rank, world_size, device)
    logdir = settings['logdir']
    writer = None
    if rank == 0:
        os.makedirs(logdir, exist_ok=True)
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(logdir)
    progress = None
    if rank == 0 and settings.get('progress', True):
        from tqdm import tqdm
        progress = tqdm(total=settings['steps'], initial=min(trainer.step, settings['steps']),
                        unit='step', desc='call_train', dynamic_ncols=True, mininterval=2.0)
    start_time = time.time()
    prefill_left = settings['prefill']
    prefill_policy = 'actor' if trainer.resumed else settings['prefill_policy']
    last_metrics: Dict[str, float] = {}
    ckpt_path = os.path.join(logdir, CHECKPOINT_NAME)
    try:
        acting = 'heuristic' if settings.get('world_model_only', False) else 'actor'
        if trainer.resumed and acting == 'heuristic':
            prefill_policy = 'heuristic'
        while trainer.step < settings['steps']:
            policy = prefill_policy if prefill_left > 0 else acting
            stats = trainer.env_step(policy, earn=prefill_left == 0)
            if prefill_left > 0:
                prefill_left -= 1
            else:
                for _ in range(trainer.due_updates()):
                    last_metrics = trainer.update()
                    if writer is not None and trainer.updates % settings['log_every'] == 0:
                        for key, value in last_metrics.items():
                            writer.add_scalar(key, value, trainer.step)
            if writer is not None:
                for key, value in stats.items():
                    writer.add_scalar(f'env/{key}', value, trainer.step)
            if progress is not None:
                progress.update(1)
                if last_metrics and trainer.step % 10 == 0:
                    progress.set_postfix(
                        updates=trainer.updates,
                        loss=f"{last_metrics.get('world_model/model_loss', float('nan')):.1f}",
                        acc=f"{last_metrics.get('world_model/image_acc', float('nan')):.3f}")
            if rank == 0 and trainer.step % settings['checkpoint_every'] == 0:
                trainer.save(ckpt_path)
        if rank == 0:
            trainer.save(ckpt_path)
            if settings.get('export'):
                trainer.save(settings['export'], slim=True)
    finally:
        if progress is not None:
            progress.close()
        if writer is not None:
            writer.close()
    return {'rank': rank, 'step': trainer.step, 'updates': trainer.updates,
            'wall_time_s': time.time() - start_time, 'checkpoint': ckpt_path,
            'replay_steps': len(trainer.replay), 'replay_bytes': trainer.replay.nbytes(),
            'metrics': last_metrics}


def main(argv: Optional[List[str]] = None) -> int:
    """Console entry point; bad arguments or config exit with status 2 and the reason."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = resolve_settings(args)
        summary = run(settings)
    except (ValueError, FileNotFoundError, checkpoint.CheckpointError) as exc:
        print(f'call_train: error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('call_train: interrupted', file=sys.stderr)
        return 130
    metrics = summary['metrics']
    if summary['rank'] != 0:
        return 0
    print(f"call_train: {summary['step']} env steps, {summary['updates']} updates in "
          f"{summary['wall_time_s']:.0f} s; checkpoint {summary['checkpoint']}; "
          f"model_loss {metrics.get('world_model/model_loss', float('nan')):.2f}, "
          f"image_acc {metrics.get('world_model/image_acc', float('nan')):.4f}")
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""
Checkpoints of the world model + actor-critic that carry their config and a format version.

File = ``torch.save`` of a plain dict (tensors, numbers, strings only, so it loads with
``weights_only=True``): format_version, config (dict), step, world_model / actor_critic state
dicts, optional optimiser states, extra (user metadata). Writes are atomic (temp file in the
same directory, fsync, rename), so a crash never leaves a half-written checkpoint in place.
"""
import dataclasses
import os
import tempfile
from typing import Any, Dict, Optional

from call_world_model.actor_critic import ActorCritic
from call_world_model.config import WorldModelConfig
from call_world_model.networks import skipped_initialisation
from call_world_model.world_model import WorldModel
import torch

FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used: missing, corrupt/truncated, wrong version or mismatch."""


@dataclasses.dataclass
class Loaded:
    """What :func:`load` returns."""

    world_model: WorldModel
    actor_critic: ActorCritic
    cfg: WorldModelConfig
    step: int
    meta: Dict[str, Any]


def save(path: str, world_model: WorldModel, actor_critic: Optional[ActorCritic],
         cfg: WorldModelConfig, step: int, extra: Optional[Dict[str, Any]] = None,
         optimizers: bool = True) -> None:
    """Atomically write a checkpoint; ``optimizers`` includes Adam states (for resuming)."""
    payload = {
        'format_version': FORMAT_VERSION,
        'config': cfg.to_dict(),
        'step': int(step),
        'world_model': world_model.state_dict(),
        'actor_critic': actor_critic.state_dict() if actor_critic is not None else None,
        'extra': dict(extra or {}),
        'optimizers': {},
    }
    if optimizers:
        if world_model._optimizer is not None:
            payload['optimizers']['world_model'] = world_model._optimizer.state_dict()
        if actor_critic is not None:
            payload['optimizers']['actor'] = actor_critic.actor_opt.state_dict()
            payload['optimizers']['critic'] = actor_critic.critic_opt.state_dict()
    write_payload(path, payload)


def write_payload(path: str, payload: Dict[str, Any]) -> None:
    """
    ``torch.save`` ``payload`` to ``path`` atomically (temporary file, fsync, rename).

    A training run killed mid-write must never leave a truncated checkpoint behind.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix='.ckpt-', suffix='.tmp', dir=directory)
    try:
        with os.fdopen(handle, 'wb') as stream:
            torch.save(payload, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path: str, map_location='cpu', expected_config: Optional[WorldModelConfig] = None,
         load_optimizers: bool = True) -> Loaded:
    """
    Read a checkpoint and rebuild the models from the config it carries.

    ``expected_config``: if given, every field must match the stored config (else
    CheckpointError naming the differing keys). Raises CheckpointError with the reason for a
    missing file, unreadable/truncated data, wrong format version, invalid config or
    parameter shape mismatch.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f'checkpoint {path!r} does not exist')
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: B902 - torch raises many types for bad files
        raise CheckpointError(f'checkpoint {path!r} is corrupt or truncated: '
                              f'{type(exc).__name__}: {exc}') from exc
    if not isinstance(payload, dict) or 'format_version' not in payload:
        raise CheckpointError(f'checkpoint {path!r} is not a CALL world-model checkpoint')
    version = payload['format_version']
    if version != FORMAT_VERSION:
        raise CheckpointError(f'checkpoint {path!r} has format_version {version}, this code '
                              f'reads version {FORMAT_VERSION}')
    for key in ('config', 'step', 'world_model', 'actor_critic'):
        if key not in payload:
            raise CheckpointError(f'checkpoint {path!r} lacks the {key!r} entry')
    try:
        cfg = WorldModelConfig.from_dict(payload['config'])
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f'checkpoint {path!r} carries an invalid config: {exc}') from exc
    if expected_config is not None and expected_config != cfg:
        ours, theirs = expected_config.to_dict(), cfg.to_dict()
        diff = {k: (theirs[k], ours[k]) for k in ours if ours[k] != theirs[k]}
        raise CheckpointError(f'checkpoint {path!r} config differs from the expected one '
                              f'(key: (checkpoint, expected)): {diff}')
    # every parameter is overwritten below by a strict load, so its random draw is skipped
    with skipped_initialisation():
        world_model = WorldModel(cfg)
    with skipped_initialisation(enabled=payload['actor_critic'] is not None):
        actor_critic = ActorCritic(cfg, cfg.feat_dim, cfg.num_actions)
    _load_state(path, 'world_model', world_model, payload['world_model'])
    if payload['actor_critic'] is not None:
        _load_state(path, 'actor_critic', actor_critic, payload['actor_critic'])
    optimizers = payload.get('optimizers') or {}
    if load_optimizers and optimizers:
        try:
            if 'world_model' in optimizers:
                world_model.optimizer.load_state_dict(optimizers['world_model'])
            if 'actor' in optimizers:
                actor_critic.actor_opt.load_state_dict(optimizers['actor'])
            if 'critic' in optimizers:
                actor_critic.critic_opt.load_state_dict(optimizers['critic'])
        except (ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(f'checkpoint {path!r}: optimiser state does not fit the '
                                  f'model: {exc}') from exc
    world_model.to(map_location)
    actor_critic.to(map_location)
    meta = {'format_version': version, 'extra': payload.get('extra') or {},
            'has_actor_critic': payload['actor_critic'] is not None}
    return Loaded(world_model, actor_critic, cfg, int(payload['step']), meta)


_SHARED: Dict[tuple, Loaded] = {}


def load_shared(path: str) -> Loaded:
    """
    Load the checkpoint for inference: one copy of its models per process and file version.

    Vehicles composed into one process (call_bringup containers) each load the fleet's
    checkpoint in three nodes (world model, comm replica, planner): in a four-vehicle
    container one copy instead of twelve saves memory and start-up time and keeps the
    weights warm in cache (bench/bench_bringup.py). Callers must not train or modify them (they
    come in eval mode, without optimiser state). A file changed on disk (mtime, size) is
    loaded afresh; errors are those of `load`.
    """
    try:
        stat = os.stat(path)
    except OSError:
        return load(path, load_optimizers=False)     # raises CheckpointError with the reason
    key = (os.path.realpath(path), stat.st_mtime_ns, stat.st_size)
    if key not in _SHARED:
        loaded = load(path, load_optimizers=False)
        loaded.world_model.eval()
        loaded.actor_critic.eval()
        _SHARED[key] = loaded
    return _SHARED[key]


def load_shared_world_model(path: str) -> WorldModel:
    """`load_shared(path).world_model`: the loader call_comm's replicas find as an entry point."""
    return load_shared(path).world_model


def _load_state(path: str, name: str, module: torch.nn.Module, state: Any) -> None:
    if not isinstance(state, dict):
        raise CheckpointError(f'checkpoint {path!r}: {name} state is not a dict')
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(f'checkpoint {path!r}: {name} parameters do not match the '
                              f'config (shape/key mismatch): {" ".join(first[:4])}') from exc

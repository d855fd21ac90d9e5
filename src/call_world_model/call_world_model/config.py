"""
World-model and actor-critic configuration: one dataclass, filled from YAML size presets.

Every number of the model lives in ``config/presets.yaml`` (DreamerV3 2023 hyper-parameters,
paper Tables 4 and 5); code reads a :class:`WorldModelConfig` and holds no literals.
"""
import dataclasses
import math
import os
from typing import Any, Mapping, Optional

import yaml

PRESETS_FILE = 'presets.yaml'


@dataclasses.dataclass(frozen=True)
class WorldModelConfig:
    """Sizes and hyper-parameters of the RSSM, its heads and the actor-critic."""

    bev_channels: int = 7
    bev_size: int = 128
    deter: int = 256
    hidden: int = 256
    stoch: int = 32
    classes: int = 32
    cnn_depth: int = 16
    cnn_mults: tuple = (1, 2, 4, 8, 8)
    minres: int = 4
    mlp_layers: int = 2
    unimix: float = 0.01
    initial: str = 'learned'
    max_neighbours: int = 8
    intention_points: int = 10
    intention_dim: int = 32
    intention_scale: float = 50.0
    rel_pose_scale: float = 50.0
    shared_dim: int = 128
    # True = legacy CALL conditioning h_t = f(h, z, a, s, w) (checkpoints written before the
    # key existed carry no value and load with this default); presets.yaml sets false: paper
    # App. E.2 eq. 11 h_t = f(h, z, a), conditioning enters the posterior (see rssm.py).
    condition_sequence_model: bool = True
    # posterior q(z | h, x, c): hidden LinearNormAct layers before the latent logits (1 =
    # DreamerV3); 0 = one linear, the embedding's only dense map (see decoder_input)
    obs_layers: int = 1
    # BEV decoder input: 'dense' (DreamerV3: one linear from [h, z] to the minres grid) or
    # 'spatial' (z laid on the grid, networks.ConvDecoder): no second dense layer
    decoder_input: str = 'dense'
    # posterior logits from the BEV embedding: 'dense' (DreamerV3: part of one linear over
    # [h, x, c]) or 'local' (a 1x1 conv per cell of the encoder's minres grid, giving the
    # stoch / minres**2 latents the spatial decoder lays on that cell; [h, c] still enter
    # densely): categorical latents then learn vehicles in short runs
    obs_input: str = 'dense'
    free_bits: float = 1.0
    # training only: encoder and decoder convolutions in bfloat16 autocast (losses, RSSM and
    # inference stay float32); on CPUs with AMX/AVX512-BF16 the convolutions of an update run
    # ~1.2-2x faster (bench/bench_train_step.py). false = DreamerV3's float32
    train_conv_bf16: bool = False
    # BEV decoder: BCE positive weight on the sparse vehicle channels (1 = DreamerV3's plain
    # likelihood); CPU-sized runs raise it so vehicles appear before the static road is perfect
    image_pos_weight: float = 1.0
    image_weighted_channels: tuple = (3, 4)
    # and a further factor on the positives of these channels (1 = none, DreamerV3 and every
    # shipped checkpoint): vehicles only a neighbour sees are far rarer than seen ones
    image_shared_weight: float = 1.0
    image_shared_channels: tuple = (4,)
    pred_scale: float = 1.0
    dyn_scale: float = 0.5
    rep_scale: float = 0.1
    # scale of a second image likelihood, of each frame decoded from the PRIOR state (h_t and
    # z_t ~ p(z | h_t), straight-through), frames that start an episode left out. 0 = none
    # (DreamerV3: the decoder sees posterior states only, the prior learns from the KL alone)
    prior_image_scale: float = 0.0
    num_actions: int = 15
    reward_bins: int = 255
    bins_low: float = -20.0
    bins_high: float = 20.0
    lr: float = 1e-4
    eps: float = 1e-8
    grad_clip: float = 1000.0
    horizon: int = 15
    gamma: float = 0.997
    lam: float = 0.95
    critic_ema_decay: float = 0.98
    critic_ema_reg: float = 1.0
    retnorm_low: float = 5.0
    retnorm_high: float = 95.0
    retnorm_decay: float = 0.99
    retnorm_limit: float = 1.0
    entropy_scale: float = 3e-4
    ac_lr: float = 3e-5
    ac_eps: float = 1e-5
    ac_grad_clip: float = 100.0
    context_frames: int = 5
    error_horizon: int = 5
    waypoint_error_scale: float = 1.0

    @property
    def stoch_flat(self) -> int:
        """Size of the flattened one-hot latent z (stoch x classes)."""
        return self.stoch * self.classes

    @property
    def feat_dim(self) -> int:
        """Size of the model state features [h, z] the heads and the actor-critic read."""
        return self.deter + self.stoch_flat

    def to_dict(self) -> dict:
        """Plain dict (YAML/JSON friendly; tuples become lists) for checkpoints and logs."""
        out = dataclasses.asdict(self)
        out['cnn_mults'] = list(self.cnn_mults)
        out['image_weighted_channels'] = list(self.image_weighted_channels)
        out['image_shared_channels'] = list(self.image_shared_channels)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> 'WorldModelConfig':
        """Build and validate a config from a mapping; unknown keys raise ValueError."""
        return _build(dict(values))


_POSITIVE_INT = (
    'bev_channels', 'bev_size', 'deter', 'hidden', 'stoch', 'classes', 'cnn_depth', 'minres',
    'mlp_layers', 'max_neighbours', 'intention_points', 'intention_dim', 'shared_dim',
    'num_actions', 'reward_bins', 'horizon', 'context_frames', 'error_horizon')
_NON_NEGATIVE_FLOAT = (
    'free_bits', 'pred_scale', 'dyn_scale', 'rep_scale', 'prior_image_scale', 'critic_ema_reg',
    'entropy_scale', 'waypoint_error_scale')
_POSITIVE_FLOAT = (
    'lr', 'eps', 'grad_clip', 'ac_lr', 'ac_eps', 'ac_grad_clip', 'intention_scale',
    'rel_pose_scale', 'retnorm_limit', 'image_pos_weight', 'image_shared_weight')
_UNIT_INTERVAL = ('unimix', 'gamma', 'lam', 'critic_ema_decay', 'retnorm_decay')


def _build(values: dict) -> WorldModelConfig:
    fields = {f.name: f for f in dataclasses.fields(WorldModelConfig)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f'unknown world-model config keys: {unknown}')
    clean = {}
    for key, value in values.items():
        clean[key] = _coerce(key, value, fields[key].default)
    cfg = WorldModelConfig(**clean)
    _validate(cfg)
    return cfg


def _coerce(key: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f'config key {key!r}: expected true or false, got {value!r}')
        return value
    if isinstance(value, bool):
        raise ValueError(f'config key {key!r}: expected {type(default).__name__}, got {value!r}')
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ValueError(f'config key {key!r}: expected a list of integers, got {value!r}')
        return tuple(value)
    if isinstance(default, int):
        if not isinstance(value, int):
            raise ValueError(f'config key {key!r}: expected an integer, got {value!r}')
        return value
    if isinstance(default, float):
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f'config key {key!r}: expected a finite number, got {value!r}')
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ValueError(f'config key {key!r}: expected a string, got {value!r}')
        return value
    return value


def _validate(cfg: WorldModelConfig) -> None:
    for key in _POSITIVE_INT:
        if getattr(cfg, key) <= 0:
            raise ValueError(f'config key {key!r} must be > 0, got {getattr(cfg, key)}')
    for key in _POSITIVE_FLOAT:
        if getattr(cfg, key) <= 0.0:
            raise ValueError(f'config key {key!r} must be > 0, got {getattr(cfg, key)}')
    for key in _NON_NEGATIVE_FLOAT:
        if getattr(cfg, key) < 0.0:
            raise ValueError(f'config key {key!r} must be >= 0, got {getattr(cfg, key)}')
    for key in _UNIT_INTERVAL:
        if not 0.0 <= getattr(cfg, key) < 1.0:
            raise ValueError(f'config key {key!r} must be in [0, 1), got {getattr(cfg, key)}')
    if not 0.0 <= cfg.retnorm_low < cfg.retnorm_high <= 100.0:
        raise ValueError('retnorm percentiles must satisfy 0 <= low < high <= 100, got '
                         f'{cfg.retnorm_low}, {cfg.retnorm_high}')
    if any(not 0 <= c < cfg.bev_channels for c in cfg.image_weighted_channels):
        raise ValueError(f'image_weighted_channels {list(cfg.image_weighted_channels)} must '
                         f'index the {cfg.bev_channels} BEV channels')
    if any(not 0 <= c < cfg.bev_channels for c in cfg.image_shared_channels):
        raise ValueError(f'image_shared_channels {list(cfg.image_shared_channels)} must '
                         f'index the {cfg.bev_channels} BEV channels')
    if cfg.bins_low >= cfg.bins_high:
        raise ValueError(f'bins_low {cfg.bins_low} must be < bins_high {cfg.bins_high}')
    if cfg.reward_bins < 2:
        raise ValueError(f'reward_bins must be >= 2, got {cfg.reward_bins}')
    if cfg.obs_layers < 0:
        raise ValueError(f"config key 'obs_layers' must be >= 0, got {cfg.obs_layers}")
    if cfg.decoder_input not in ('dense', 'spatial'):
        raise ValueError("config key 'decoder_input' must be 'dense' or 'spatial', got "
                         f'{cfg.decoder_input!r}')
    if cfg.decoder_input == 'spatial' and cfg.stoch % (cfg.minres * cfg.minres):
        raise ValueError(f"decoder_input 'spatial' lays the stoch {cfg.stoch} latents on the "
                         f'{cfg.minres} x {cfg.minres} grid: stoch must be a multiple of '
                         f'{cfg.minres * cfg.minres}')
    if cfg.obs_input not in ('dense', 'local'):
        raise ValueError("config key 'obs_input' must be 'dense' or 'local', got "
                         f'{cfg.obs_input!r}')
    if cfg.obs_input == 'local' and cfg.decoder_input != 'spatial':
        raise ValueError("obs_input 'local' gives each cell's latents to that cell of the "
                         "decoder grid: it needs decoder_input 'spatial'")
    if cfg.initial not in ('learned', 'zeros'):
        raise ValueError(f"config key 'initial' must be 'learned' or 'zeros', got {cfg.initial!r}")
    stages = cfg.bev_size // cfg.minres
    if cfg.bev_size % cfg.minres or stages & (stages - 1):
        raise ValueError(f'bev_size {cfg.bev_size} must be minres {cfg.minres} times a power '
                         'of two (the CNN halves the resolution per stage)')
    if len(cfg.cnn_mults) != int(math.log2(stages)) or any(m <= 0 for m in cfg.cnn_mults):
        raise ValueError(f'cnn_mults {list(cfg.cnn_mults)} must hold log2(bev_size/minres) = '
                         f'{int(math.log2(stages))} positive multipliers')


def presets_path() -> str:
    """Path of presets.yaml: the installed share dir if available, else the source tree."""
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'config',
                        PRESETS_FILE)
    if os.path.exists(here):
        return here
    try:
        from ament_index_python.packages import get_package_share_directory
        return os.path.join(get_package_share_directory('call_world_model'), 'config',
                            PRESETS_FILE)
    except (ImportError, LookupError) as exc:
        raise ValueError(f'cannot find {PRESETS_FILE}: {exc}') from exc


def load_config(preset: str = 'small', overrides: Optional[Mapping[str, Any]] = None,
                path: Optional[str] = None) -> WorldModelConfig:
    """
    Load ``defaults`` + preset ``preset`` from presets.yaml, then apply ``overrides``.

    Presets: ``tiny`` (tests), ``small`` (real time on one CPU thread), ``L`` (paper Table 4).
    Raises ValueError naming the reason for an unknown preset, unknown key or bad value.
    """
    path = path or presets_path()
    try:
        with open(path, 'r', encoding='utf-8') as stream:
            doc = yaml.safe_load(stream)
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f'cannot read world-model presets {path}: {exc}') from exc
    if not isinstance(doc, dict) or not isinstance(doc.get('defaults'), dict) \
            or not isinstance(doc.get('presets'), dict):
        raise ValueError(f'{path}: expected mappings `defaults` and `presets`')
    if preset not in doc['presets']:
        raise ValueError(f'unknown world-model preset {preset!r}; '
                         f'choose one of {sorted(doc["presets"])}')
    values = dict(doc['defaults'])
    values.update(doc['presets'][preset] or {})
    if overrides:
        values.update(dict(overrides))
    return _build(values)

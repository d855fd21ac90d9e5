"""Experiment settings: config/experiments.yaml defaults + a named config + `--set` overrides."""
from pathlib import Path
import sys
from typing import Any, Dict, Mapping, Optional, Sequence

from call_sim.config import merge
import yaml

CONFIG_FILE = 'experiments.yaml'


def config_path() -> Path:
    """config/experiments.yaml of the source tree (symlink install) or the share dir."""
    here = Path(__file__).resolve().parent.parent / 'config' / CONFIG_FILE
    if here.is_file():
        return here
    return Path(sys.prefix) / 'share' / 'call_experiments' / 'config' / CONFIG_FILE


def _read(path: Path) -> Dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f'cannot read experiment config {path}: {exc}') from exc
    if not isinstance(data, dict):
        raise ValueError(f'{path}: expected a YAML mapping')
    return data


def parse_sets(items: Sequence[str]) -> Dict[str, Any]:
    """['driving.episodes=2', 'seeds=[1]'] -> nested override mapping (YAML values)."""
    out: Dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition('=')
        if not sep or not key.strip():
            raise ValueError(f'--set expects KEY.SUB=VALUE, got {item!r}')
        node = out
        parts = key.strip().split('.')
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(text)
    return out


def default_settings() -> Dict[str, Any]:
    """Return the `defaults` section of config/experiments.yaml (no named config applied)."""
    return _read(config_path())['defaults']


def load_experiment_config(name_or_path: str, sets: Sequence[str] = (),
                           file: Optional[Path] = None) -> Dict[str, Any]:
    """Resolve the settings; bad names, unknown keys or wrong types fail with the reason."""
    document = _read(file or config_path())
    defaults = document['defaults']
    configs = document.get('configs') or {}
    path = Path(name_or_path)
    if name_or_path in configs:
        overrides = configs[name_or_path] or {}
    elif path.suffix in ('.yaml', '.yml') and path.is_file():
        overrides = _read(path)
    else:
        raise ValueError(f'experiment config {name_or_path!r} is neither one of '
                         f'{sorted(configs)} nor a YAML file')
    settings = merge(defaults, overrides)
    settings = _merge_open(settings, parse_sets(sets))
    settings['name'] = name_or_path
    settings['paper_reference'] = document.get('paper_reference', {})
    validate(settings)
    return settings


def _merge_open(settings: Dict[str, Any], overrides: Mapping[str, Any]) -> Dict[str, Any]:
    """Deep merge that accepts new keys only inside open mappings (scenarios, logdirs)."""
    open_keys = {('generalisation', 'scenarios'), ('learning_curves', 'logdirs')}
    out = dict(settings)
    for key, value in overrides.items():
        if key not in out:
            raise ValueError(f'unknown experiment setting {key!r}; known: {sorted(out)}')
        if isinstance(out[key], dict) and isinstance(value, Mapping):
            inner = dict(out[key])
            for sub, sub_value in value.items():
                if sub not in inner:
                    raise ValueError(f'unknown experiment setting {key}.{sub}')
                if isinstance(inner.get(sub), dict) and isinstance(sub_value, Mapping) \
                        and (key, sub) not in open_keys:
                    inner[sub] = merge(inner[sub], sub_value, f'{key}.{sub}.')
                else:
                    inner[sub] = sub_value
            out[key] = inner
        else:
            out[key] = value
    return out


def validate(s: Mapping[str, Any]) -> None:
    """Fail fast on numbers the experiments cannot honour."""
    checks = [
        (isinstance(s['seeds'], list) and s['seeds'] and all(isinstance(v, int)
                                                             for v in s['seeds']),
         'seeds must be a non-empty list of integers'),
        (s['driving']['episodes'] >= 1, 'driving.episodes must be >= 1'),
        (set(s['driving']['modes']) <= {'local', 'lss', 'lsi', 'full'},
         'driving.modes must be among local, lss, lsi, full'),
        (set(s['prediction']['modes']) <= {'local', 'lss', 'lsi', 'full'},
         'prediction.modes must be among local, lss, lsi, full'),
        (all(int(k) >= 1 for k in s['prediction']['horizons']),
         'prediction.horizons must be >= 1'),
        (all(float(c) >= 0 for c in s['threshold_sweep']['thresholds']),
         'threshold_sweep.thresholds must be >= 0 (.inf allowed)'),
        (0.0 <= float(s['learning_curves']['ema']) < 1.0, 'learning_curves.ema in [0, 1)'),
        (float(s['metrics']['ttc_cap']) > 0, 'metrics.ttc_cap must be > 0'),
        (s['prediction']['policy'] in ('heuristic', 'actor', 'random'),
         'prediction.policy must be heuristic, actor or random'),
    ]
    for ok, reason in checks:
        if not ok:
            raise ValueError(f'invalid experiment config: {reason}')

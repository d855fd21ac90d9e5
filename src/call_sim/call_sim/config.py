"""Locate and load this package's YAML configuration (source tree or installed share dir)."""
import copy
from pathlib import Path
from typing import Any, Mapping

import yaml


def config_dir() -> Path:
    """Return the package's config/ directory (source checkout / symlink install, else share/)."""
    source = Path(__file__).resolve().parents[1] / 'config'
    if source.is_dir():
        return source
    from ament_index_python.packages import get_package_share_directory
    return Path(get_package_share_directory('call_sim')) / 'config'


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Load a YAML mapping; fails fast with the path in the message."""
    path = Path(path)
    if not path.is_absolute() and not path.is_file():
        path = config_dir() / path
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f'cannot read config {path}: {error}') from error
    if not isinstance(data, dict):
        raise ValueError(f'config {path} must hold a mapping, got {type(data).__name__}')
    return data


def merge(defaults: Mapping[str, Any], overrides: Mapping[str, Any],
          where: str = '') -> dict[str, Any]:
    """Deep-merge `overrides` into `defaults`; unknown keys are an error (typos fail fast)."""
    merged = copy.deepcopy(dict(defaults))
    for key, value in overrides.items():
        if key not in merged:
            raise ValueError(f'unknown config key {where}{key!r}; known: {sorted(merged)}')
        if isinstance(merged[key], dict):
            if not isinstance(value, Mapping):
                raise ValueError(f'config key {where}{key!r} must be a mapping')
            merged[key] = merge(merged[key], value, f'{where}{key}.')
        else:
            merged[key] = value
    return merged

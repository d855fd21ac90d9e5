"""Locate and read this package's config/*.yaml without ROS (training code uses it too)."""
import os
from pathlib import Path
import sys
from typing import Any, Dict, Optional, Union

import yaml

PACKAGE = 'call_perception'


def config_path(name: str) -> Path:
    """Path of config/<name>: the source tree (symlink installs) or the installed share dir."""
    candidates = [Path(__file__).resolve().parent.parent / 'config' / name,
                  Path(sys.prefix) / 'share' / PACKAGE / 'config' / name]
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / 'share' / PACKAGE / 'config' / name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f'{PACKAGE} config {name!r} not found in {candidates}')


def load_section(name: str, path: Optional[Union[str, Path]] = None) -> Dict[str, Any]:
    """Read a flat YAML mapping (path, or the package's config/<name>); fail fast if it is not."""
    path = Path(path) if path else config_path(name)
    with open(path, encoding='utf-8') as stream:
        data = yaml.safe_load(stream)
    if not isinstance(data, dict):
        raise ValueError(f'{path}: expected a YAML mapping, got {type(data).__name__}')
    return data

"""
A package's parameter file, read without ROS: one source for every default.

Each CALL package keeps its node's defaults in `config/<file>.yaml` under
`/**: ros__parameters` (the same file the launch file and the runner pass with
`--params-file`). The nodes declare those names (`call_common.parameters`); the ROS-free
stages that training and evaluation build (e.g. the planner's) read the same file here, so
code run without ROS plans with the nodes' numbers. A value of another type than its
default's fails with one line naming the parameter (`ParameterError`), except the one
lossless case: an integer for a float (`initial_range:=500`).
"""
import math
import os
from typing import Any, Dict, Mapping, Optional

import yaml


class ParameterError(ValueError):
    """A parameter value or a parameter file is unusable; the message names which and why."""


def package_config_path(package: str, filename: str) -> str:
    """Path of `config/<filename>` in an installed package's share directory."""
    from ament_index_python.packages import get_package_share_directory, PackageNotFoundError
    try:
        share = get_package_share_directory(package)
    except (PackageNotFoundError, LookupError) as err:
        raise ParameterError(f'package {package!r} is not installed: its parameter file '
                             f'{filename} cannot be read') from err
    return os.path.join(share, 'config', filename)


def read_node_defaults(path: str) -> Dict[str, Any]:
    """Read the `/**: ros__parameters` mapping of a ROS parameter file (fail fast if absent)."""
    try:
        with open(path, encoding='utf-8') as stream:
            document = yaml.safe_load(stream)
    except (OSError, yaml.YAMLError) as err:
        raise ParameterError(f'{path}: {err}') from err
    section = document.get('/**') if isinstance(document, dict) else None
    params = section.get('ros__parameters') if isinstance(section, dict) else None
    if not isinstance(params, dict):
        raise ParameterError(f'{path}: no "/**: ros__parameters" mapping')
    return params


def package_defaults(package: str, filename: str) -> Dict[str, Any]:
    """Return the node defaults of an installed package's `config/<filename>`."""
    return read_node_defaults(package_config_path(package, filename))


def with_overrides(defaults: Mapping[str, Any],
                   overrides: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """
    Return ``defaults`` with ``overrides`` applied, under the nodes' typing rule.

    A string override of a non-string parameter is read as YAML (``K=5`` from a command
    line); unknown names fail, as a node would not have declared them.
    """
    params = dict(defaults)
    for name, given in (overrides or {}).items():
        if name not in params:
            raise ParameterError(f'unknown parameter {name!r}')
        default = params[name]
        if isinstance(given, str) and not isinstance(default, str):
            given = yaml.safe_load(given)
        params[name] = given if type(given) is type(default) else coerced(name, given, default)
    return params


def _lossless_float(value: Any) -> Optional[float]:
    """`value` as a float if it is an integer that a float holds exactly, else None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    as_float = float(value)
    return as_float if math.isfinite(as_float) and int(as_float) == value else None


def coerced(name: str, given: Any, default: Any) -> Any:
    """Convert `given` to `default`'s type when that loses nothing, else ParameterError."""
    if isinstance(default, float):
        converted = _lossless_float(given)
        if converted is not None:
            return converted
    elif isinstance(default, (list, tuple)) and default \
            and all(isinstance(item, float) for item in default) \
            and isinstance(given, (list, tuple)):
        converted_items = [_lossless_float(item) for item in given]
        if given and None not in converted_items:
            return converted_items
    raise ParameterError(f'parameter {name}: expected {type(default).__name__} like '
                         f'{default!r}, got {given!r} ({type(given).__name__})')

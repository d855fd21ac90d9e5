"""
A node's parameters, declared from its package's YAML: one source for every default.

Each CALL package keeps its node's defaults in `config/<file>.yaml` under
`/**: ros__parameters` (the same file the launch file and the runner pass with
`--params-file`). A node declares exactly those names with exactly those defaults, so code and
YAML cannot drift apart. A value given with another type than its default's fails with one
line naming the parameter (`ParameterError`, exit code 2 through `node_main`), except the one
lossless case: an integer for a float (`initial_range:=500`).
"""
import math
import os
from typing import Any, Dict, Optional

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.node import Node
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


def _lossless_float(value: Any) -> Optional[float]:
    """`value` as a float if it is an integer that a float holds exactly, else None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    as_float = float(value)
    return as_float if math.isfinite(as_float) and int(as_float) == value else None


def _coerced(name: str, given: Any, default: Any) -> Any:
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


def declare_typed(node: Node, name: str, default: Any) -> Any:
    """
    Declare `name` with `default` (its type fixed by the default) and return the value.

    rclpy refuses an override of another type with InvalidParameterTypeException, a traceback
    that does not say what to change. Here an integer for a float is converted, anything else
    raises ParameterError naming the parameter.
    """
    try:
        return node.declare_parameter(name, default).value
    except InvalidParameterTypeException:
        pass
    given = node.declare_parameter(name, default,
                                   ParameterDescriptor(dynamic_typing=True)).value
    node.undeclare_parameter(name)
    value = _coerced(name, given, default)
    return node.declare_parameter(name, value, ignore_override=True).value


def declare_from_yaml(node: Node, package: str, filename: str) -> Dict[str, Any]:
    """Declare every parameter of the package's `config/<filename>`; return their values."""
    return declare_all(node, package_defaults(package, filename))


def declare_all(node: Node, defaults: Dict[str, Any]) -> Dict[str, Any]:
    """
    Declare each parameter of `defaults` with `declare_typed` and return their values.

    Parameters rclpy declares itself (`use_sim_time`) keep rclpy's declaration; their value is
    returned as the node has it.
    """
    values = {}
    for name, default in defaults.items():
        if node.has_parameter(name):
            values[name] = node.get_parameter(name).value
        else:
            values[name] = declare_typed(node, name, default)
    return values

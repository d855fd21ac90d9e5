"""
A node's parameters, declared from its package's YAML: one source for every default.

A node declares exactly the names of its package's `config/<file>.yaml`
(`call_common.param_files`) with exactly those defaults, so code and YAML cannot drift apart.
A value given with another type than its default's fails with one line naming the parameter
(`ParameterError`, exit code 2 through `node_main`), except the one lossless case: an integer
for a float (`initial_range:=500`).
"""
from typing import Any, Dict

from call_common.param_files import coerced, package_defaults
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.node import Node


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
    value = coerced(name, given, default)
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

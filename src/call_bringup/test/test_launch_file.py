"""
multi_vehicle.launch.py is written against launch/launch_ros; check what can be checked here.

Its structure is read with `ast` (no launch packages needed); `ros2 launch --show-args` then
imports it with the real ones where the ROS 2 CLI is installed (ros_cli.tools_env).
"""
import ast
import os
import re

from ros_cli import run, tools_env

LAUNCH_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           'launch', 'multi_vehicle.launch.py')
ARGUMENTS = {'num_vehicles', 'backend', 'scenario', 'checkpoint', 'c', 'K', 'initial_range',
             'range_step', 'use_sim_time'}


def _tree() -> ast.Module:
    with open(LAUNCH_FILE, encoding='utf-8') as stream:
        return ast.parse(stream.read(), LAUNCH_FILE)


def _called_names(tree: ast.AST) -> set:
    return {node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            for node in ast.walk(tree) if isinstance(node, ast.Call)
            and isinstance(node.func, (ast.Name, ast.Attribute))}


def test_launch_file_builds_the_graph_with_the_shared_builder():
    tree = _tree()
    imports = {(node.module, alias.name) for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert ('call_bringup.graph', 'build_graph') in imports
    assert ('call_bringup.fleet_keys', 'ensure_fleet_keys') in imports
    assert {('launch', 'LaunchDescription'), ('launch.actions', 'DeclareLaunchArgument'),
            ('launch.actions', 'GroupAction'), ('launch.actions', 'OpaqueFunction'),
            ('launch_ros.actions', 'Node'),
            ('launch_ros.actions', 'PushRosNamespace')} <= imports
    called = _called_names(tree)
    assert {'build_graph', 'Node', 'GroupAction', 'PushRosNamespace', 'OpaqueFunction',
            'DeclareLaunchArgument', 'LaunchDescription'} <= called
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert 'generate_launch_description' in functions
    build_call = next(node for node in ast.walk(tree) if isinstance(node, ast.Call)
                      and isinstance(node.func, ast.Name) and node.func.id == 'build_graph')
    assert {'num_vehicles', 'backend', 'scenario', 'checkpoint', 'c', 'K', 'initial_range',
            'range_step', 'use_sim_time', 'keys_dir'} <= {kw.arg for kw in build_call.keywords}


def test_paper_symbols_have_one_name_from_launch_argument_to_node_parameter():
    import argparse

    from call_bringup.graph import ARGUMENT_PARAMETERS
    from call_bringup.runner import add_graph_arguments
    parser = argparse.ArgumentParser()
    add_graph_arguments(parser)
    flags = {action.dest for action in parser._actions}
    for symbol in ('c', 'K', 'initial_range', 'range_step'):
        assert symbol in ARGUMENTS and symbol in flags
        assert set(ARGUMENT_PARAMETERS[symbol].values()) == {symbol}


def test_launch_file_declares_every_argument():
    tree = _tree()
    table = next(node for node in tree.body if isinstance(node, ast.Assign)
                 and node.targets[0].id == 'ARGUMENTS')
    declared = {entry.elts[0].value for entry in table.value.elts}
    assert ARGUMENTS <= declared


def test_ros2_launch_shows_every_argument():
    """`ros2 launch ... --show-args` imports the file with the real launch packages."""
    result = run(['ros2', 'launch', 'call_bringup', 'multi_vehicle.launch.py', '--show-args'],
                 tools_env(), timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
    shown = set(re.findall(r"^\s+'(\w+)':", result.stdout, re.MULTILINE))
    assert ARGUMENTS | {'compose', 'vehicles_per_process'} <= shown, result.stdout

"""
Every CALL node declares exactly its package YAML's parameters, with the YAML's defaults.

Each node is the real one, created in this process on a real rclpy context with only the
parameters it cannot start without; what it then reports through `get_parameter` must be
what its `config/*.yaml` says, and it must declare nothing the YAML does not list.
`use_sim_time` is rclpy's own parameter: the YAML's value applies when the file is passed
with `--params-file` (as the runner and the launch file do).
"""
import os

from ament_index_python.packages import get_package_share_directory
from call_bringup.fault_injection import V2vFaultRelay
from call_bringup.fleet_keys import ensure_fleet_keys
from call_carla.metrics_node import MetricsNode
from call_comm.comm_node import CommNode
from call_common.param_files import package_defaults
from call_perception.perception_node import PerceptionNode
from call_planner.planner_node import PlannerNode
from call_sim.sim_node import SimNode
from call_world_model.world_model_node import WorldModelNode
import pytest
import rclpy
from rclpy.node import Node

CHECKPOINT = os.path.join(get_package_share_directory('call_world_model'), 'checkpoints',
                          'call_small.pt')

# node class, package, parameter file, what the node needs to start (keys dir -> params)
NODES = [
    (PerceptionNode, 'call_perception', 'perception.yaml', lambda keys: {}),
    (WorldModelNode, 'call_world_model', 'world_model.yaml', lambda keys: {}),
    (CommNode, 'call_comm', 'comm.yaml', lambda keys: {
        'role_name': 'hero0', 'fleet_key_file': os.path.join(keys, 'fleet.yaml'),
        'private_key_file': os.path.join(keys, 'hero0.key.yaml')}),
    (PlannerNode, 'call_planner', 'planner.yaml', lambda keys: {'checkpoint': CHECKPOINT}),
    (SimNode, 'call_sim', 'sim_node.yaml', lambda keys: {}),
    (V2vFaultRelay, 'call_bringup', 'v2v_fault_relay.yaml', lambda keys: {}),
    (MetricsNode, 'call_carla', 'metrics_node.yaml', lambda keys: {}),
]


@pytest.fixture
def context():
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)


@pytest.mark.parametrize('node_class, package, filename, required', NODES,
                         ids=[entry[0].__name__ for entry in NODES])
def test_declared_defaults_are_the_package_yaml(context, tmp_path, node_class, package,
                                                filename, required):
    keys = str(tmp_path / 'keys')
    ensure_fleet_keys(keys, ['hero0'])
    given = required(keys)
    args = ['--ros-args'] + [item for name, value in given.items()
                             for item in ('-p', f'{name}:={value}')]
    bare = Node('bare', context=context)
    builtin = set(bare.get_parameters_by_prefix(''))     # rclpy's own (use_sim_time, ...)
    bare.destroy_node()
    node = node_class(context=context, cli_args=args)
    try:
        defaults = package_defaults(package, filename)
        declared = set(node.get_parameters_by_prefix(''))
        assert declared - builtin == set(defaults) - builtin, 'declared names != YAML names'
        for name, default in defaults.items():
            if name in given or name in builtin:
                continue
            value = node.get_parameter(name).value
            assert value == default and type(value) is type(default), \
                f'{name}: node {value!r}, {filename} {default!r}'
    finally:
        if isinstance(node, SimNode):
            node.close()
        node.destroy_node()

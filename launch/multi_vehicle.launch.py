"""
Launch a multi-vehicle CALL run: `ros2 launch call_bringup multi_vehicle.launch.py`.

The node graph comes from `call_bringup.graph.build_graph`, the same description the pip
environment's runner (`call_run`) starts, so both run the very same nodes and parameters.
Per CALL vehicle `hero<i>`: perception, world_model, comm and planner in the namespace
`/hero<i>`; plus the embedded simulator (backend:=embedded) or the carla-ros-bridge
(backend:=carla start_bridge:=true; the CARLA scenario tool spawns the actors).
Arguments left empty take the defaults of call_bringup/config/bringup.yaml (c, K, initial_range,
range_step: the packages' own configs). Works on Humble, Jazzy and later (no ForEach).

Process layout (`compose`, `vehicles_per_process`): by default the nodes of every
`vehicles_per_process` vehicles share one `vehicle_container` process, as `call_run --compose
--vehicles-per-process 0` does (0: one container per CPU core, at least four vehicles each):
torch is imported and the checkpoint loaded once per container, the world models observe
their BEVs as one batch, and each V2V sender's message is verified and its view decoded once
per container. `compose:=false` starts one process per
node (a crashing node then takes only itself down).
"""
import os
import tempfile

from call_bringup.fleet_keys import ensure_fleet_keys
from call_bringup.graph import bringup_config, build_graph
from call_bringup.runner import vehicle_groups, write_container_file
from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, GroupAction, OpaqueFunction,
                            RegisterEventHandler, Shutdown)
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node, PushRosNamespace

ARGUMENTS = (
    ('num_vehicles', '', 'number of CALL vehicles (hero0..hero<n-1>)'),
    ('backend', '', 'embedded (call_sim) or carla (carla-ros-bridge)'),
    ('scenario', '', 'call_sim scenario YAML (embedded backend)'),
    ('checkpoint', '', 'world-model checkpoint (.pt)'),
    ('c', '', 'prediction-error threshold c of the range gate (inf: no communication)'),
    ('K', '', 'prediction / look-ahead horizon K'),
    ('initial_range', '', 'communication range [m] before any growth'),
    ('range_step', '', 'range growth [m] on a step with E > c (paper: 5 m)'),
    ('use_sim_time', 'true', 'stamp and run on /clock'),
    ('start_bridge', 'true', 'backend:=carla: also start the carla_ros_bridge node'),
    ('keys_dir', '', 'V2V fleet keys (created if missing; empty: a fresh temp dir)'),
    ('compose', '', 'true: vehicles share container processes; false: one process per node'),
    ('vehicles_per_process', '', 'compose:=true: vehicles per container process '
     '(0: one container per CPU core, at least 4 vehicles each)'),
)


def _optional(text: str, kind):
    """Empty launch argument -> None (use the configured default), else the typed value."""
    return None if text == '' else kind(text)


def _boolean(text: str) -> bool:
    return text.strip().lower() in ('1', 'true', 'yes', 'on')


def _node_actions(context, *args, **kwargs):
    """Build the graph from the resolved arguments and turn each NodeSpec into a Node."""
    value = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    keys_dir = value['keys_dir'] or tempfile.mkdtemp(prefix='call_keys_')
    specs = build_graph(
        num_vehicles=_optional(value['num_vehicles'], int),
        backend=_optional(value['backend'], str),
        scenario=_optional(value['scenario'], str),
        checkpoint=_optional(value['checkpoint'], str),
        c=_optional(value['c'], float),
        K=_optional(value['K'], int),
        initial_range=_optional(value['initial_range'], float),
        range_step=_optional(value['range_step'], float),
        use_sim_time=_boolean(value['use_sim_time']),
        keys_dir=keys_dir,
        start_bridge=_boolean(value['start_bridge']))
    ensure_fleet_keys(keys_dir, sorted({spec.vehicle for spec in specs if spec.vehicle}))
    layout = bringup_config()['launch']
    compose = _boolean(value['compose']) if value['compose'] else layout['compose']
    per_process = _optional(value['vehicles_per_process'], int)
    per_process = layout['vehicles_per_process'] if per_process is None else per_process
    groups: dict = {}
    for spec in specs:
        if compose and spec.vehicle:
            continue
        node = Node(package=spec.package, executable=spec.executable, name=spec.name,
                    parameters=list(spec.parameters), remappings=list(spec.remappings),
                    output='screen', emulate_tty=True)
        groups.setdefault(spec.namespace, []).append(node)
        if spec.package == 'call_sim':
            # the simulator ending its run (max_ticks) ends the launch, as call_run does
            finish = RegisterEventHandler(OnProcessExit(
                target_action=node, on_exit=[Shutdown(reason='simulator finished')]))
            groups.setdefault('', []).append(finish)
    actions = list(groups.pop('', []))
    for namespace, nodes in groups.items():
        actions.append(GroupAction([PushRosNamespace(namespace.strip('/')), *nodes]))
    if compose:
        work_dir = tempfile.mkdtemp(prefix='call_launch_')
        for vehicles, members in vehicle_groups(specs, per_process):
            # each node keeps its own --ros-args (namespace, name, parameters) inside the
            # container, so no name or namespace is given to the container process itself
            spec_file = write_container_file(
                members, os.path.join(work_dir, '+'.join(vehicles) + '_nodes.json'))
            actions.append(Node(package='call_bringup', executable='vehicle_container',
                                arguments=[spec_file], output='screen', emulate_tty=True))
    return actions


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments; the nodes are created once they are known (OpaqueFunction)."""
    declared = [DeclareLaunchArgument(name, default_value=default, description=description)
                for name, default, description in ARGUMENTS]
    return LaunchDescription([*declared, OpaqueFunction(function=_node_actions)])

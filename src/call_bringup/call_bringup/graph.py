"""
The one description of CALL's node graph, used by the launch file and by `call_run`.

Embedded backend: the simulator plus, per CALL vehicle `hero<i>`, perception, world model,
comm and planner in the namespace `/hero<i>`. CARLA backend: the same vehicle groups plus
(optionally) the carla-ros-bridge node; the CARLA scenario tool spawns the actors.
ROS-free: only file-system look-ups, so it imports without rclpy or launch.
"""
from dataclasses import dataclass, field
import glob
import math
import os
import tempfile
from typing import Callable, Optional, Union

import yaml

BACKENDS = ('embedded', 'carla')

Parameters = list[Union[str, dict]]


@dataclass(frozen=True)
class NodeSpec:
    """One node to start: what launch_ros.actions.Node and the runner both need."""

    package: str
    executable: str
    name: str
    namespace: str = ''
    parameters: Parameters = field(default_factory=list)
    remappings: list[tuple[str, str]] = field(default_factory=list)
    module: Optional[str] = None          # `python -m <module>` fallback / composition
    vehicle: Optional[str] = None         # role name of the CALL vehicle the node belongs to

    @property
    def full_name(self) -> str:
        """Return the fully qualified node name, e.g. `/hero0/planner`."""
        if not self.namespace:
            return '/' + self.name
        return self.namespace.rstrip('/') + '/' + self.name

    def merged_parameters(self) -> dict:
        """Merge all parameters this node receives, files first then dicts (later wins)."""
        merged: dict = {}
        for entry in self.parameters:
            if isinstance(entry, dict):
                merged.update(entry)
            else:
                merged.update(read_ros_params(entry, self.full_name))
        return merged


@dataclass(frozen=True)
class NodeTemplate:
    """A node kind of the graph: package, console script, default node name, module."""

    package: str
    executable: str
    name: str
    module: str


SIMULATOR = NodeTemplate('call_sim', 'sim_node', 'carla_sim', 'call_sim.sim_node')
VEHICLE_NODES = (
    NodeTemplate('call_perception', 'perception_node', 'perception',
                 'call_perception.perception_node'),
    NodeTemplate('call_world_model', 'world_model_node', 'world_model',
                 'call_world_model.world_model_node'),
    NodeTemplate('call_comm', 'comm_node', 'comm', 'call_comm.comm_node'),
    NodeTemplate('call_planner', 'planner_node', 'planner', 'call_planner.planner_node'),
)
CARLA_BRIDGE = NodeTemplate('carla_ros_bridge', 'bridge', 'carla_ros_bridge',
                            'carla_ros_bridge.bridge')

# Launch argument -> {package: parameter name} it sets (only when the argument is given).
ARGUMENT_PARAMETERS = {
    'scenario': {'call_sim': 'scenario'},
    # call_comm uses it only with h_transport: replica (receivers rebuild h, issue 11)
    'checkpoint': {'call_world_model': 'checkpoint', 'call_planner': 'checkpoint',
                   'call_comm': 'checkpoint'},
    # the paper's symbols keep their names from the launch argument to the node parameter
    'c': {'call_comm': 'c', 'call_world_model': 'c'},
    'K': {'call_planner': 'K', 'call_world_model': 'K'},
    'initial_range': {'call_comm': 'initial_range'},
    'range_step': {'call_comm': 'range_step'},
    'fleet_key_file': {'call_comm': 'fleet_key_file'},
}
FAULT_RELAY = NodeTemplate('call_bringup', 'v2v_fault_relay', 'v2v_fault_relay',
                           'call_bringup.fault_injection')
V2V_TOPIC = '/v2v/latents'

ShareLookup = Callable[[str], str]


class GraphError(ValueError):
    """A graph argument or package configuration is unusable; the message says why."""


def ament_share(package: str) -> str:
    """Find an installed package's share directory (ament index); clear error if absent."""
    from ament_index_python.packages import get_package_share_directory, PackageNotFoundError
    try:
        return get_package_share_directory(package)
    except (PackageNotFoundError, LookupError) as err:
        raise GraphError(f'package {package!r} is not installed (ament index): build it with '
                         f'scripts/colcon_build.sh --packages-select {package}') from err


def bringup_config(share: Optional[ShareLookup] = None) -> dict:
    """Load call_bringup's config/bringup.yaml (installed copy, else the source tree's)."""
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'config')
    candidates = [os.path.join(here, 'bringup.yaml')]
    try:
        candidates.insert(0, os.path.join((share or ament_share)('call_bringup'), 'config',
                                          'bringup.yaml'))
    except GraphError:
        pass
    for path in candidates:
        if os.path.isfile(path):
            with open(path, encoding='utf-8') as stream:
                return yaml.safe_load(stream)
    raise GraphError(f'call_bringup config not found in {candidates}')


def read_ros_params(path: str, node_full_name: str = '') -> dict:
    """Read the parameters a params YAML gives a node (`/**`, then its exact name)."""
    with open(path, encoding='utf-8') as stream:
        document = yaml.safe_load(stream) or {}
    sections = {key: body['ros__parameters'] or {} for key, body in document.items()
                if isinstance(body, dict) and 'ros__parameters' in body}
    params: dict = {}
    for key in ('/**', '**', node_full_name, node_full_name.lstrip('/')):
        if key and key in sections:
            params.update(sections[key])
    return params


def ros_params_files(share_dir: str) -> list[str]:
    """List the package's ROS params files: config/*.yaml with `ros__parameters`."""
    files = []
    for path in sorted(glob.glob(os.path.join(share_dir, 'config', '*.yaml'))):
        with open(path, encoding='utf-8') as stream:
            try:
                document = yaml.safe_load(stream)
            except yaml.YAMLError as err:
                raise GraphError(f'{path}: not valid YAML: {err}') from err
        if isinstance(document, dict) and any(
                isinstance(body, dict) and 'ros__parameters' in body
                for body in document.values()):
            files.append(path)
    return files


def role_names(num_vehicles: int, prefix: str = 'hero') -> list[str]:
    """Name the CALL vehicles by CARLA role name: hero0, hero1, ..."""
    return [f'{prefix}{i}' for i in range(num_vehicles)]


def _resolve(path: Optional[str], package: str, share: ShareLookup) -> Optional[str]:
    """Make an existing path absolute, else look for it in the package's share dir."""
    if path is None:
        return None
    if os.path.isabs(path) or os.path.exists(path):
        return os.path.abspath(path)
    try:
        candidate = os.path.join(share(package), path)
    except GraphError:
        return path
    return candidate if os.path.exists(candidate) else path


def scenario_file(scenario: str, share: ShareLookup) -> Optional[str]:
    """Find the YAML of a call_sim scenario given by path or name (config/scenarios)."""
    if os.path.isfile(scenario):
        return scenario
    try:
        candidate = os.path.join(share('call_sim'), 'config', 'scenarios', scenario + '.yaml')
    except GraphError:
        return None
    return candidate if os.path.isfile(candidate) else None


def scenario_vehicles(scenario: str, share: ShareLookup) -> Optional[int]:
    """Count the CALL vehicles a call_sim scenario declares (num_controlled), if readable."""
    path = scenario_file(scenario, share)
    if path is None:
        return None
    with open(path, encoding='utf-8') as stream:
        document = yaml.safe_load(stream) or {}
    value = document.get('num_controlled')
    return int(value) if value is not None else None


def derived_scenario(scenario: str, share: ShareLookup, changes: dict,
                     work_dir: Optional[str] = None) -> str:
    """Write a copy of a scenario with `changes` (e.g. num_controlled) and return its path."""
    path = scenario_file(scenario, share)
    if path is None:
        raise GraphError(f'scenario {scenario!r} not found (a path or a call_sim scenario name)')
    with open(path, encoding='utf-8') as stream:
        document = yaml.safe_load(stream) or {}
    document.update(changes)
    work_dir = work_dir or tempfile.mkdtemp(prefix='call_scenario_')
    os.makedirs(work_dir, exist_ok=True)
    name = os.path.splitext(os.path.basename(path))[0]
    suffix = '_'.join(f'{key}{value}' for key, value in sorted(changes.items()))
    out = os.path.join(work_dir, f'{name}_{suffix}.yaml')
    with open(out, 'w', encoding='utf-8') as stream:
        yaml.safe_dump(document, stream, sort_keys=False)
    return out


def _check_arguments(num_vehicles: int, backend: str, c: Optional[float],
                     k: Optional[int], ranges: dict) -> None:
    if not isinstance(num_vehicles, int) or num_vehicles < 1:
        raise GraphError(f'num_vehicles must be a positive integer, got {num_vehicles!r}')
    if backend not in BACKENDS:
        raise GraphError(f'backend must be one of {BACKENDS}, got {backend!r}')
    if c is not None and (math.isnan(c) or c < 0):
        raise GraphError(f'c must be >= 0 (inf = no communication), got {c!r}')
    if k is not None and (not isinstance(k, int) or k < 1):
        raise GraphError(f'K must be a positive integer, got {k!r}')
    for name, value in ranges.items():
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise GraphError(f'{name} must be a finite number of metres >= 0, got {value!r}')


def fleet_key_paths(keys_dir: str, roles: list[str]) -> dict:
    """Return where call_comm.keygen puts the fleet file and each private key."""
    return {'fleet': os.path.join(keys_dir, 'fleet.yaml'),
            **{role: os.path.join(keys_dir, f'{role}.key.yaml') for role in roles}}


def checkpoint_parameters(path: str) -> dict:
    """
    Return {package: {parameter: value}} that follow from the fleet's checkpoint.

    Perception renders the BEV at the model's input size (bev.yaml's field of view) and the
    planner's TTC monitor reads it at that size, so one checkpoint argument switches the
    whole vehicle. GraphError with the reason for a file
    whose config cannot be read or that holds no actor-critic (the nodes would fail on it one
    by one; the planner's look-ahead needs the policy and the value).
    """
    from call_world_model.checkpoint_config import read_summary
    try:
        summary = read_summary(path)
    except ValueError as err:
        raise GraphError(str(err)) from err
    if not summary.has_actor_critic:
        raise GraphError(f'checkpoint {path!r} has no actor-critic: the look-ahead of the '
                         'planner needs its policy and value (a world-model-only file, e.g. '
                         'wm_small64g8c.pt; call_small64g8c.pt adds one)')
    size = {'bev_size': int(summary.cfg.bev_size)}
    return {'call_perception': size, 'call_planner': size}


def build_graph(num_vehicles: Optional[int] = None,
                backend: Optional[str] = None,
                scenario: Optional[str] = None,
                checkpoint: Optional[str] = None,
                c: Optional[float] = None,
                K: Optional[int] = None,  # noqa: N803 (the paper's name)
                initial_range: Optional[float] = None,
                range_step: Optional[float] = None,
                use_sim_time: Optional[bool] = None,
                keys_dir: Optional[str] = None,
                scenario_changes: Optional[dict] = None,
                work_dir: Optional[str] = None,
                v2v_faults: Optional[dict] = None,
                overrides: Optional[dict] = None,
                remappings: Optional[dict] = None,
                start_bridge: bool = True,
                share: Optional[ShareLookup] = None) -> list[NodeSpec]:
    """
    Describe every node of a CALL run.

    None means the default: num_vehicles from the scenario (else bringup.yaml), the rest
    from bringup.yaml, c, K, initial_range and range_step (the paper's symbols, the same
    names as the node parameters they set) from the packages' own configs.
    Embedded backend: a num_vehicles that differs from the scenario's num_controlled, or
    `scenario_changes` (e.g. {'num_background': 5}), make a derived scenario YAML in
    `work_dir` (default: a new temp dir) that the simulator loads.
    `keys_dir` holds the fleet keys (`call_bringup.fleet_keys.ensure_fleet_keys`).
    `v2v_faults` (fault_injection parameters) routes every comm node's V2V topic through a
    `v2v_fault_relay`: comm of `hero<i>` talks on `/v2v/latents/hero<i>` only, and takes the
    relay's copies reliably.
    `overrides` maps a package name, a node name (`world_model`) or a full node name
    (`/hero1/world_model`) to extra parameters; later, more specific keys win.
    `remappings` maps the same keys to extra (from, to) topic remappings.
    `share` looks up a package's share directory (default: the ament index).
    """
    share = share or ament_share
    defaults = bringup_config(share)['graph']
    backend = defaults['backend'] if backend is None else backend
    scenario = scenario or defaults['scenario']
    declared = scenario_vehicles(scenario, share) if backend == 'embedded' else None
    if num_vehicles is None:
        num_vehicles = declared if declared is not None else defaults['num_vehicles']
    use_sim_time = defaults['use_sim_time'] if use_sim_time is None else use_sim_time
    _check_arguments(num_vehicles, backend, c, K,
                     {'initial_range': initial_range, 'range_step': range_step})
    changes = dict(scenario_changes or {})
    if declared is not None and num_vehicles != declared:
        changes['num_controlled'] = num_vehicles
    if changes and backend == 'embedded':
        scenario = derived_scenario(scenario, share, changes, work_dir)
    roles = role_names(num_vehicles, defaults['role_prefix'])
    keys = fleet_key_paths(keys_dir, roles) if keys_dir else {}
    given = {
        'scenario': _resolve(scenario, 'call_sim', share),
        'checkpoint': _resolve(checkpoint or defaults['checkpoint'], 'call_world_model', share),
        'c': None if c is None else float(c),
        'K': K,
        'initial_range': None if initial_range is None else float(initial_range),
        'range_step': None if range_step is None else float(range_step),
        'fleet_key_file': keys.get('fleet'),
    }
    if not os.path.isfile(given['checkpoint']):
        raise GraphError(f'checkpoint {given["checkpoint"]!r} does not exist: train one '
                         '(call_world_model) or pass checkpoint; call_demo falls back to a '
                         'random model')
    derived = checkpoint_parameters(given['checkpoint'])
    overrides = overrides or {}
    remappings = dict(remappings or {})
    if v2v_faults is not None:
        for role in roles:
            remappings.setdefault(f'/{role}/comm', []).append(
                (V2V_TOPIC, f'{V2V_TOPIC}/{role}'))

    def spec(template: NodeTemplate, namespace: str, extra: dict,
             vehicle: Optional[str]) -> NodeSpec:
        params: dict = {'use_sim_time': bool(use_sim_time)}
        for argument, targets in ARGUMENT_PARAMETERS.items():
            if template.package in targets and given[argument] is not None:
                params[targets[template.package]] = given[argument]
        if template in VEHICLE_NODES:
            params.update(derived.get(template.package, {}))
        params.update(extra)
        full = (namespace + '/' + template.name) if namespace else '/' + template.name
        remaps: list[tuple[str, str]] = []
        for key in (template.package, template.name, full):
            params.update(overrides.get(key, {}))
            remaps.extend(tuple(pair) for pair in remappings.get(key, []))
        files = [] if template in (CARLA_BRIDGE, FAULT_RELAY) else \
            ros_params_files(share(template.package))
        return NodeSpec(template.package, template.executable, template.name, namespace,
                        [*files, params], remaps, template.module, vehicle)

    specs: list[NodeSpec] = []
    if backend == 'embedded':
        # the simulator is the /clock source: its own timers run on wall time
        specs.append(spec(SIMULATOR, '', {'role_names': roles, 'use_sim_time': False}, None))
    elif start_bridge:
        bridge = dict(defaults['carla_bridge'])
        bridge['ego_vehicle_role_name'] = roles
        specs.append(spec(CARLA_BRIDGE, '', bridge, None))
    if v2v_faults is not None:
        specs.append(spec(FAULT_RELAY, '', {'role_names': roles, **v2v_faults}, None))
    for role in roles:
        for template in VEHICLE_NODES:
            extra = {'role_name': role}
            if template.package == 'call_comm' and keys:
                extra['private_key_file'] = keys[role]
            if template.package == 'call_comm' and v2v_faults is not None:
                # the relay is the link model (loss, delay): its copies must all arrive, so
                # that it and the receivers account for the same messages
                extra['v2v_reliable'] = True
            specs.append(spec(template, '/' + role, extra, role))
    return specs

"""build_graph: the node graph both the launch file and call_run start."""
import os

from call_bringup.graph import build_graph, GraphError, read_ros_params, role_names
from call_world_model.config import load_config
import pytest
import torch
import yaml

PACKAGES = ('call_bringup', 'call_sim', 'call_perception', 'call_world_model', 'call_comm',
            'call_planner')
SOURCE_CONFIG = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'config')
with open(os.path.join(SOURCE_CONFIG, 'bringup.yaml'), encoding='utf-8') as _stream:
    DEFAULT_CHECKPOINT = os.path.basename(yaml.safe_load(_stream)['graph']['checkpoint'])


@pytest.fixture
def shares(tmp_path):
    """Make a share tree with one ROS params file and one non-params YAML per package."""
    for package in PACKAGES:
        config = tmp_path / package / 'config'
        config.mkdir(parents=True)
        if package == 'call_bringup':
            (config / 'bringup.yaml').write_text(
                open(os.path.join(SOURCE_CONFIG, 'bringup.yaml')).read())
            continue
        (config / f'{package}.yaml').write_text(yaml.safe_dump(
            {'/**': {'ros__parameters': {'rate': 10.0, 'owner': package}}}))
        (config / 'presets.yaml').write_text(yaml.safe_dump({'small': {'deter': 8}}))
    (tmp_path / 'call_world_model' / 'checkpoints').mkdir()
    # a checkpoint's config without weights: all the graph reads of it
    shipped = tmp_path / 'call_world_model' / 'checkpoints' / DEFAULT_CHECKPOINT
    torch.save({'format_version': 1, 'config': load_config('small').to_dict(),
                'actor_critic': {}}, shipped)
    return lambda package: str(tmp_path / package)


def test_perception_renders_at_the_checkpoint_bev_size(shares, tmp_path):
    def perception(specs):
        return next(s for s in specs if s.name == 'perception').merged_parameters()
    assert perception(build_graph(num_vehicles=1, share=shares))['bev_size'] == 128
    small64 = tmp_path / 'small64.pt'
    torch.save({'format_version': 1, 'config': load_config('small64g8c').to_dict(),
                'actor_critic': {}}, small64)
    specs = build_graph(num_vehicles=1, checkpoint=str(small64), share=shares)
    assert perception(specs)['bev_size'] == 64
    planner = next(s for s in specs if s.name == 'planner').merged_parameters()
    assert planner['bev_size'] == 64        # its TTC monitor reads the BEV perception renders
    assert all('bev_size' not in s.merged_parameters() for s in specs
               if s.name not in ('perception', 'planner'))
    corrupt = tmp_path / 'corrupt.pt'
    corrupt.write_bytes(b'x')
    with pytest.raises(GraphError, match='corrupt or not a CALL checkpoint'):
        build_graph(num_vehicles=1, checkpoint=str(corrupt), share=shares)
    world_model_only = tmp_path / 'wm.pt'
    torch.save({'format_version': 1, 'config': load_config('small64g8c').to_dict(),
                'actor_critic': None}, world_model_only)
    with pytest.raises(GraphError, match='has no actor-critic'):
        build_graph(num_vehicles=1, checkpoint=str(world_model_only), share=shares)


def test_embedded_graph_has_simulator_and_four_namespaced_nodes_per_vehicle(shares):
    specs = build_graph(num_vehicles=3, backend='embedded', share=shares)
    assert [s.full_name for s in specs] == ['/carla_sim'] + [
        f'/hero{i}/{name}' for i in range(3)
        for name in ('perception', 'world_model', 'comm', 'planner')]
    simulator = specs[0]
    assert simulator.package == 'call_sim' and simulator.executable == 'sim_node'
    assert simulator.vehicle is None
    assert simulator.merged_parameters()['role_names'] == ['hero0', 'hero1', 'hero2']
    assert simulator.merged_parameters()['use_sim_time'] is False     # it owns /clock
    for spec in specs[1:]:
        params = spec.merged_parameters()
        assert params['role_name'] == spec.vehicle == spec.namespace.strip('/')
        assert params['use_sim_time'] is True
        assert params['owner'] == spec.package          # the package's own params file
    executables = {s.executable for s in specs}
    assert executables == {'sim_node', 'perception_node', 'world_model_node', 'comm_node',
                           'planner_node'}


def test_only_ros_params_files_are_passed(shares):
    specs = build_graph(num_vehicles=1, share=shares)
    for spec in specs:
        files = [p for p in spec.parameters if isinstance(p, str)]
        assert [os.path.basename(f) for f in files] == [spec.package + '.yaml']


def test_arguments_set_the_mapped_parameters_and_only_when_given(shares):
    default = build_graph(num_vehicles=1, share=shares)
    comm = next(s for s in default if s.name == 'comm').merged_parameters()
    assert not {'c', 'initial_range', 'range_step', 'fleet_key_file'} & set(comm)
    world_model = next(s for s in default if s.name == 'world_model').merged_parameters()
    assert world_model['checkpoint'] == shares('call_world_model') + \
        '/checkpoints/' + DEFAULT_CHECKPOINT
    specs = build_graph(num_vehicles=2, c=float('inf'), K=7, initial_range=30.0,
                        range_step=2.5, use_sim_time=False,
                        scenario='/abs/scenario.yaml', share=shares)
    # an unreadable scenario is passed through for the simulator to reject
    by_name = {s.full_name: s.merged_parameters() for s in specs}
    # each paper symbol has the same name as launch argument and as node parameter
    assert by_name['/hero1/comm']['c'] == by_name['/hero1/world_model']['c'] == float('inf')
    assert by_name['/hero0/planner']['K'] == by_name['/hero0/world_model']['K'] == 7
    assert (by_name['/hero1/comm']['initial_range'], by_name['/hero1/comm']['range_step']) \
        == (30.0, 2.5)
    assert 'initial_range' not in by_name['/hero1/planner']
    assert by_name['/carla_sim']['scenario'] == '/abs/scenario.yaml'
    assert all(p['use_sim_time'] is False for p in by_name.values())


def test_overrides_and_remappings_from_package_to_full_name(shares):
    specs = build_graph(
        num_vehicles=2, share=shares,
        overrides={'call_comm': {'x': 1, 'y': 1}, 'comm': {'y': 2},
                   '/hero1/comm': {'x': 3}},
        remappings={'call_comm': [('/v2v/latents', '/v2v/raw')]})
    comm0, comm1 = (s for s in specs if s.name == 'comm')
    assert (comm0.merged_parameters()['x'], comm0.merged_parameters()['y']) == (1, 2)
    assert (comm1.merged_parameters()['x'], comm1.merged_parameters()['y']) == (3, 2)
    assert comm1.remappings == [('/v2v/latents', '/v2v/raw')]
    assert all(not s.remappings for s in specs if s.name != 'comm')


def test_carla_backend_has_no_simulator_and_an_optional_bridge(shares):
    specs = build_graph(num_vehicles=2, backend='carla', share=shares)
    assert 'call_sim' not in {s.package for s in specs}
    bridge = specs[0]
    assert (bridge.package, bridge.executable) == ('carla_ros_bridge', 'bridge')
    params = bridge.merged_parameters()
    assert params['ego_vehicle_role_name'] == ['hero0', 'hero1']
    assert params['fixed_delta_seconds'] == pytest.approx(0.1)
    without = build_graph(num_vehicles=2, backend='carla', start_bridge=False, share=shares)
    assert len(without) == 8 and all(s.vehicle for s in without)


@pytest.mark.parametrize('kwargs', [
    {'num_vehicles': 0}, {'backend': 'gazebo'}, {'c': -1.0}, {'c': float('nan')}, {'K': 0},
    {'initial_range': -5.0}, {'range_step': float('inf')}])
def test_bad_arguments_fail_fast(shares, kwargs):
    with pytest.raises(GraphError):
        build_graph(share=shares, **kwargs)


def test_missing_package_is_reported_by_name(shares):
    def share(package):
        if package == 'call_planner':
            raise GraphError('package call_planner is not installed')
        return shares(package)
    with pytest.raises(GraphError, match='call_planner'):
        build_graph(num_vehicles=1, share=share)
    with pytest.raises(GraphError, match='does not exist'):
        build_graph(num_vehicles=1, checkpoint='/no/such/model.pt', share=shares)


def test_read_ros_params_wildcard_then_exact_node(tmp_path):
    path = tmp_path / 'p.yaml'
    path.write_text(yaml.safe_dump({'/**': {'ros__parameters': {'a': 1, 'b': 1}},
                                    '/hero0/comm': {'ros__parameters': {'b': 2}},
                                    '/hero1/comm': {'ros__parameters': {'b': 3}}}))
    assert read_ros_params(str(path), '/hero0/comm') == {'a': 1, 'b': 2}
    assert role_names(2) == ['hero0', 'hero1']


def test_vehicle_count_comes_from_the_scenario_unless_given(shares, tmp_path):
    scenario = tmp_path / 'three.yaml'
    scenario.write_text(yaml.safe_dump({'map': 'four_lane', 'num_controlled': 3}))
    specs = build_graph(scenario=str(scenario), share=shares)
    assert sorted({s.vehicle for s in specs if s.vehicle}) == ['hero0', 'hero1', 'hero2']
    assert specs[0].merged_parameters()['scenario'] == str(scenario)
    derived = build_graph(scenario=str(scenario), num_vehicles=2, share=shares,
                          scenario_changes={'num_background': 1}, work_dir=str(tmp_path / 'w'))
    path = derived[0].merged_parameters()['scenario']
    assert path.startswith(str(tmp_path / 'w'))
    assert yaml.safe_load(open(path)) == {'map': 'four_lane', 'num_controlled': 2,
                                          'num_background': 1}
    assert sorted({s.vehicle for s in derived if s.vehicle}) == ['hero0', 'hero1']


def test_fleet_keys_are_wired_to_every_comm_node(shares, tmp_path):
    specs = build_graph(num_vehicles=2, keys_dir=str(tmp_path), share=shares)
    comm = {s.vehicle: s.merged_parameters() for s in specs if s.name == 'comm'}
    assert comm['hero1']['fleet_key_file'] == str(tmp_path / 'fleet.yaml')
    assert comm['hero1']['private_key_file'] == str(tmp_path / 'hero1.key.yaml')


def test_v2v_faults_put_a_relay_between_the_comm_nodes(shares):
    specs = build_graph(num_vehicles=3, v2v_faults={'loss_probability': 0.3}, share=shares)
    relay = next(s for s in specs if s.executable == 'v2v_fault_relay')
    assert relay.merged_parameters()['role_names'] == ['hero0', 'hero1', 'hero2']
    assert relay.merged_parameters()['loss_probability'] == 0.3
    for spec in specs:
        if spec.name == 'comm':
            assert spec.remappings == [('/v2v/latents', f'/v2v/latents/{spec.vehicle}')]

"""Role names, the topic table of both backends, bridge parameters and the spawn-objects file."""
import json
import os
import re
import subprocess
import sys
import time

from call_carla import bridge_config
from call_carla.topics import EGO, role_names, SENSOR, STACK, topic, VEHICLE_TOPICS
import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
WAIT_S = 60.0      # bound for the simulator process to start (imports SUMO) and advertise
SIM_NODE = 'carla_sim'     # call_sim.sim_node's node name


def _contract_rows():
    """Per-vehicle /carla topics and types from the DEVELOPERS.md topic table."""
    path = os.path.join(ROOT, 'DEVELOPERS.md')
    if not os.path.exists(path):
        pytest.skip('DEVELOPERS.md not found next to src/ (installed without the workspace)')
    with open(path, encoding='utf-8') as handle:
        text = handle.read()
    rows = re.findall(r'^\| `/carla/R/(\w+)` \| (\S+) ', text, flags=re.MULTILINE)
    return dict(rows)


def test_table_matches_developers_contract():
    rows = _contract_rows()
    ours = {t.suffix: t.msg_type.replace('/msg/', '/') for t in VEHICLE_TOPICS if t.in_contract}
    assert ours == rows


def test_carla_backend_provides_every_topic():
    """Pseudo-sensor ids are the topic suffixes; egos are exactly the CALL role names."""
    roles = role_names(3)
    objects = bridge_config.spawn_objects(roles, 'vehicle.tesla.model3')
    params = bridge_config.bridge_parameters(roles)
    assert params['ego_vehicle_role_name'] == ['hero0', 'hero1', 'hero2']
    vehicles = {o['id']: o for o in objects['objects'] if o['type'].startswith('vehicle.')}
    assert sorted(vehicles) == roles
    for role, vehicle in vehicles.items():
        provided = {f'/carla/{role}/{s["id"]}' for s in vehicle['sensors']}
        for entry in VEHICLE_TOPICS:
            if entry.provider == SENSOR:
                assert entry.name(role) in provided
                assert {'type': entry.sensor_type, 'id': entry.suffix}.items() <= \
                    next(s for s in vehicle['sensors'] if s['id'] == entry.suffix).items()
            elif entry.provider == EGO:
                assert role in params['ego_vehicle_role_name']
    assert topic('hero1', 'odometry') == '/carla/hero1/odometry'
    with pytest.raises(KeyError):
        topic('hero0', 'camera')


def test_embedded_backend_uses_the_same_names(tmp_path):
    """
    The running embedded simulator offers every contract topic under the table's name.

    Read from the ROS graph of a live sim_node: the topics CARLA's bridge would publish are
    published by the sim with the table's type, and the command topic is subscribed.
    """
    import rclpy

    scenario = tmp_path / 'scenario.yaml'
    scenario.write_text(yaml.safe_dump({'map': 'four_lane', 'num_controlled': 2,
                                        'num_background': 2, 'seed': 1}))
    log = (tmp_path / 'sim.log').open('w')
    sim = subprocess.Popen([sys.executable, '-m', 'call_sim.sim_node', '--ros-args',
                            '-p', f'scenario:={scenario}'],
                           stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('topic_table_probe', context=context)
    expected = {(entry.name(role), entry.msg_type, entry.provider == STACK)
                for role in role_names(2) for entry in VEHICLE_TOPICS if entry.in_contract}

    def offered() -> set:
        found = set()
        for name, _ in node.get_topic_names_and_types():
            infos = [(info, False) for info in node.get_publishers_info_by_topic(name)]
            infos += [(info, True) for info in node.get_subscriptions_info_by_topic(name)]
            for info, subscribed in infos:
                if info.node_name == SIM_NODE:
                    found.add((name, info.topic_type, subscribed))
        return found
    try:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and sim.poll() is None \
                and not expected <= offered():
            time.sleep(0.2)        # polling the graph: discovery needs no spinning
        assert sim.poll() is None, (tmp_path / 'sim.log').read_text()[-2000:]
        missing = expected - offered()
        assert not missing, f'missing from the running simulator: {sorted(missing)}'
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
        sim.terminate()
        try:
            sim.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sim.kill()
            sim.wait(timeout=10)
        log.close()


def test_bridge_parameters_are_the_paper_setting():
    params = bridge_config.bridge_parameters(['hero0'], timeout=5)
    assert params['synchronous_mode'] is True
    assert params['synchronous_mode_wait_for_vehicle_control_command'] is True
    assert params['fixed_delta_seconds'] == 0.1 and params['town'] == 'Town04'
    assert params['passive'] is False and params['register_all_sensors'] is True
    assert params['use_sim_time'] is True and params['port'] == 2000
    with pytest.raises(ValueError):
        bridge_config.bridge_parameters([])
    with pytest.raises(ValueError):
        bridge_config.bridge_parameters(['hero0'], fixed_delta_seconds=0.0)


def test_spawn_points_and_frames():
    point = bridge_config.SpawnPoint.from_carla(10.0, 5.0, 0.5, 90.0)
    assert (point.x, point.y, point.yaw) == (10.0, -5.0, -90.0)  # CARLA is left-handed
    assert point.to_carla() == (10.0, 5.0, 0.5, 90.0)
    objects = bridge_config.spawn_objects(['hero0'], 'vehicle.audi.tt', {'hero0': point},
                                          children_key='objects')
    vehicle = objects['objects'][1]
    assert vehicle['spawn_point'] == {'x': 10.0, 'y': -5.0, 'z': 0.5, 'roll': 0.0,
                                      'pitch': 0.0, 'yaw': -90.0}
    assert 'objects' in vehicle and 'sensors' not in vehicle
    with pytest.raises(ValueError, match='hero1'):
        bridge_config.spawn_objects(['hero0', 'hero1'], 'vehicle.audi.tt', {'hero0': point})
    with pytest.raises(ValueError):
        bridge_config.SpawnPoint(float('nan'), 0.0, 0.0, 0.0)


def test_console_script_writes_both_files(tmp_path):
    points = tmp_path / 'points.yaml'
    points.write_text('hero0: {x: 1.0, y: 2.0, yaw: 30.0}\nhero1: {x: 9.0, y: 2.0}\n')
    rc = bridge_config.main(['--vehicles', '2', '--out', str(tmp_path),
                             '--spawn-points', str(points)])
    assert rc == 0
    params = yaml.safe_load((tmp_path / bridge_config.PARAMS_FILE).read_text())
    assert params['/**']['ros__parameters']['ego_vehicle_role_name'] == ['hero0', 'hero1']
    objects = json.loads((tmp_path / bridge_config.OBJECTS_FILE).read_text())
    assert objects['objects'][0]['type'] == 'sensor.pseudo.actor_list'
    assert objects['objects'][1]['spawn_point']['yaw'] == 30.0
    assert bridge_config.main(['--vehicles', '0', '--out', str(tmp_path)]) == 2
    points.write_text('hero0: {y: 2.0}\n')
    assert bridge_config.main(['--vehicles', '1', '--out', str(tmp_path),
                               '--spawn-points', str(points)]) == 2

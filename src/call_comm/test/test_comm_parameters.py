"""The comm node started with parameters of the wrong type: lossless ones pass, others fail."""
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

from call_comm.keygen import write_fleet
import pytest

WAIT = 90.0  # [s] upper bound of every wait (a loaded machine); never hit when things work


@pytest.fixture(scope='module')
def keys(tmp_path_factory) -> Path:
    key_dir = tmp_path_factory.mktemp('fleet')
    write_fleet(['hero0', 'hero1'], key_dir)
    return key_dir


def _start(keys: Path, *params: str) -> subprocess.Popen:
    """Start the real comm node of hero0: the package's own defaults plus `params`."""
    args = ['-p', 'role_name:=hero0', '-p', f'fleet_key_file:={keys}/fleet.yaml',
            '-p', f'private_key_file:={keys}/hero0.key.yaml']
    for param in params:
        args += ['-p', param]
    return subprocess.Popen([sys.executable, '-m', 'call_comm.comm_node', '--ros-args',
                             '-r', '__ns:=/hero0', *args], env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _exit_2_output(proc) -> str:
    """Wait for a node that must refuse to start; return its output after checking code 2."""
    try:
        out, _ = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, out
    return out


def test_an_integer_for_a_float_parameter_is_taken_as_that_float(keys):
    proc = _start(keys, 'initial_range:=50', 'c:=30')
    try:
        lines = []
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and proc.poll() is None:
            lines.append(proc.stdout.readline())
            if 'range=' in lines[-1]:
                break
        assert proc.poll() is None, ''.join(lines)
        assert 'c=30.0 range=50.0 m' in lines[-1], ''.join(lines)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert 'Traceback' not in out


@pytest.mark.parametrize('param, expected', [
    ('initial_range:=far', "parameter initial_range: expected float like 20.0, got 'far' (str)"),
    ('initial_range:=true', 'parameter initial_range: expected float like 20.0, got True (bool)'),
    ('max_waypoints:=2.5', 'parameter max_waypoints: expected int like 5, got 2.5 (float)'),
    ('v2v_drain:=-1', 'v2v_drain must be >= 0, got -1'),
    ('z_classes:=300', 'z layout 32 x 300: needs >= 1 latent and 2..256 classes'),
])
def test_any_other_wrong_type_exits_2_with_one_line_naming_the_parameter(keys, param, expected):
    out = _exit_2_output(_start(keys, param))
    assert out.strip().splitlines() == [f'comm_node: cannot start: {expected}']


def test_a_z_layout_that_contradicts_the_checkpoint_exits_2(keys):
    """One fleet, one model: the wire's z layout is the checkpoint's, not a second setting."""
    from ament_index_python.packages import get_package_share_directory
    shipped = os.path.join(get_package_share_directory('call_world_model'), 'checkpoints',
                           'call_small.pt')
    out = _exit_2_output(_start(keys, f'checkpoint:={shipped}', 'z_latents:=128',
                                'z_classes:=16'))
    assert out.strip().splitlines()[-1] == ('comm_node: cannot start: z_latents x z_classes '
                                            '128 x 16 contradict the checkpoint (32 x 32)')

"""call_carla_metrics as a process: clean stop on SIGINT with its summary, bad types exit 2."""
import json
import os
import signal
import subprocess
import sys
import time

import rclpy

WAIT = 60.0  # [s] upper bound of every wait (a loaded machine); never hit when things work


def _start(*params: str) -> subprocess.Popen:
    args = [item for param in params for item in ('-p', param)]
    return subprocess.Popen([sys.executable, '-m', 'call_carla.metrics_node', '--ros-args',
                             *args], env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_sigint_writes_the_summary_and_exits_0(tmp_path):
    output = tmp_path / 'metrics.json'
    proc = _start(f'output:={output}', 'num_vehicles:=2')
    rclpy.init()
    probe = rclpy.create_node('metrics_probe')
    try:
        deadline = time.monotonic() + WAIT
        while probe.count_subscribers('/carla/hero1/odometry') == 0 and \
                time.monotonic() < deadline and proc.poll() is None:
            rclpy.spin_once(probe, timeout_sec=0.2)
        assert probe.count_subscribers('/carla/hero1/odometry') == 1, 'node not up'
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=WAIT)
    finally:
        probe.destroy_node()
        rclpy.shutdown()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert 'Traceback' not in out and 'KeyboardInterrupt' not in out
    assert set(json.loads(output.read_text())['vehicles']) == {'hero0', 'hero1'}


def test_a_wrong_parameter_type_exits_2_with_one_line():
    proc = _start('num_vehicles:=2.5')
    out, _ = proc.communicate(timeout=WAIT)
    assert proc.returncode == 2, out
    assert out.strip() == ('call_carla_metrics: cannot start: parameter num_vehicles: '
                           'expected int like 4, got 2.5 (float)')

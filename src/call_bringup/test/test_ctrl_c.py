"""
Ctrl-C of a running graph, as a user presses it: under `ros2 launch` and under `call_run`.

Every process must exit by itself on SIGINT (no escalation to SIGTERM), with exit code 0 and
no traceback. How long each took is printed by the tools themselves (launch's log, call_run's
`exit code N, X s after SIGINT`) and by bench/bench_bringup.py --modes launch; the deadline
here is only a generous bound so that a hang fails instead of blocking the suite.
"""
import os
import re
import sys
import time

from graph_probe import checkpoint_for_tests, GraphProbe, SCENARIO
import pytest
from ros_cli import Background, launch_command, tools_env

STARTUP_S = 120.0
TICKS = 20
EXIT_BOUND_S = 60.0


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return checkpoint_for_tests(str(tmp_path_factory.mktemp('ctrl_c_ckpt')))


def _interrupt_when_driving(job: Background) -> tuple:
    """Wait until every vehicle reports and TICKS ticks passed; Ctrl-C; return (rc, s)."""
    probe = GraphProbe()
    try:
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline and job.process.poll() is None:
            probe.executor.spin_once(timeout_sec=0.02)
            if probe.live() and len(probe.ticks) >= TICKS:
                break
        assert probe.live() and len(probe.ticks) >= TICKS, job.output()[-3000:]
        started = time.monotonic()
        code = job.interrupt(timeout=EXIT_BOUND_S)
        seconds = time.monotonic() - started
    finally:
        probe.close()       # after the graph has left (GraphProbe.close says why)
    return code, seconds


def _ctrl_c(command: list, env: dict, name: str) -> str:
    """Run `command` until the graph drives, Ctrl-C it; check exit code 0 and no traceback."""
    job = Background(command, env, name)
    try:
        code, seconds = _interrupt_when_driving(job)
        output = job.output()
    finally:
        job.kill()
    print(f'{name} ended {seconds:.2f} s after Ctrl-C', file=sys.stderr)
    assert code == 0, output[-4000:]
    for sign in ('Traceback', 'KeyboardInterrupt', 'ExternalShutdownException'):
        assert sign not in output, output[-4000:]
    return output


def test_ctrl_c_ends_ros2_launch_with_every_process_exiting_cleanly(checkpoint):
    output = _ctrl_c(launch_command(checkpoint), tools_env(), 'ros2_launch')
    started = re.findall(r'\[INFO\] \[([\w-]+)\]: process started', output)
    clean = re.findall(r'\[INFO\] \[([\w-]+)\]: process has finished cleanly', output)
    assert started and sorted(clean) == sorted(started), output[-4000:]
    assert 'SIGTERM' not in output, output[-4000:]      # launch did not have to escalate


def test_ctrl_c_ends_call_run_with_every_process_exiting_cleanly(checkpoint):
    output = _ctrl_c([sys.executable, '-m', 'call_bringup.run', '--num-vehicles', '3',
                      '--scenario', SCENARIO, '--checkpoint', checkpoint, '--compose',
                      '--vehicles-per-process', '4'], dict(os.environ), 'call_run')
    exits = re.findall(r'\[call_run\] (\S+) exit code (-?\d+), ([0-9.]+) s after SIGINT', output)
    assert sorted(label for label, _, _ in exits) == ['carla_sim', 'hero0+hero1+hero2/container']
    assert all(rc == '0' for _, rc, _ in exits), exits

"""
The ROS 2 command-line tools in tests: find them, and run `ros2 launch` of the CALL graph.

Not a test module. A full ROS 2 install has `ros2`, `launch_test` and rqt on PATH. In the
pip environment scripts/setup.sh builds them from ../shared/ros-tools into an overlay
($CALL_ROS_TOOLS, set by scripts/env.sh); commands run in subprocesses with that overlay
sourced, since pytest >= 9 cannot load launch_testing's pytest plugin in this process.
Where neither exists, `tools_env` skips the test and says why.
"""
import functools
import importlib.util
import os
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Optional

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIO = os.path.join(HERE, 'scenarios', 'three_vehicles.yaml')
NO_TOOLS = ('ROS 2 CLI tools (ros2, launch_test, rqt) not found: scripts/setup.sh builds them '
            'where ../shared/ros-tools exists; a full ROS 2 install has them')


@functools.lru_cache(maxsize=1)
def _overlay_env(setup_bash: str) -> tuple:
    """Return the environment after sourcing an overlay's setup.bash on top of this one."""
    out = subprocess.run(['bash', '-c', f'. "{setup_bash}" >/dev/null && env -0'],
                         check=True, capture_output=True, env=dict(os.environ)).stdout
    return tuple(item.split('=', 1) for item in out.decode().split('\0') if '=' in item)


def tools_env() -> dict:
    """Environment in which `ros2`, `launch_test` and rqt run, or skip the test with why."""
    overlay = os.environ.get('CALL_ROS_TOOLS', '')
    setup_bash = os.path.join(overlay, 'setup.bash')
    if overlay and os.path.isfile(setup_bash):
        env = dict(_overlay_env(setup_bash))
    elif shutil.which('ros2') and importlib.util.find_spec('launch_testing') is not None:
        env = dict(os.environ)
    else:
        pytest.skip(NO_TOOLS)
    env['PYTHONUNBUFFERED'] = '1'
    env['RCUTILS_COLORIZED_OUTPUT'] = '0'
    return env


def run(command: list, env: dict, timeout: float) -> subprocess.CompletedProcess:
    """Run a tool to its end (text output, stderr folded into stdout)."""
    return subprocess.run(command, env=env, timeout=timeout, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


class Background:
    """A tool running in its own process group (a terminal's foreground job), output to a file."""

    def __init__(self, command: list, env: dict, name: str = 'tool') -> None:
        """Start `command`; its output goes to a temporary file (`output()`)."""
        self.command = command
        self.log = tempfile.NamedTemporaryFile('w+', prefix=f'{name}_', suffix='.log',
                                               delete=False)
        self.process = subprocess.Popen(command, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        """Everything the process group printed so far."""
        with open(self.log.name, encoding='utf-8', errors='replace') as stream:
            return stream.read()

    def wait_for_text(self, text: str, timeout: float) -> bool:
        """Wait until `text` appears in the output (False on timeout or exit)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return True
            if self.process.poll() is not None:
                return text in self.output()
            time.sleep(0.2)
        return False

    def interrupt(self, timeout: float) -> Optional[int]:
        """Ctrl-C: SIGINT to the whole group; wait for the exit code (None: still running)."""
        try:
            os.killpg(self.process.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """End whatever is left of the group (teardown)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)
        self.log.close()


def launch_command(checkpoint: str, *arguments: str) -> list:
    """`ros2 launch call_bringup multi_vehicle.launch.py` of the 3-vehicle test scenario."""
    return ['ros2', 'launch', 'call_bringup', 'multi_vehicle.launch.py', 'num_vehicles:=3',
            f'scenario:={SCENARIO}', f'checkpoint:={checkpoint}', *arguments]


def stop_daemon(env: dict) -> None:
    """Stop the ros2 daemon that `ros2 node list` and friends start on the test's domain."""
    run(['ros2', 'daemon', 'stop'], env, timeout=30)

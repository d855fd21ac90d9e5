"""
The ROS 2 command-line tools in tests: find them, and run `ros2 launch` of the CALL graph.

Not a test module. `call_bringup.ros_tools` finds the tools (a full install, or the overlay
scripts/setup.sh builds from ../shared/ros-tools); they run in subprocesses. Where they are
missing, `tools_env` skips the test and says why.
"""
import os
import signal
import subprocess
import tempfile
import time
from typing import Optional

from call_bringup.ros_tools import MISSING, tools_environment
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIO = os.path.join(HERE, 'scenarios', 'three_vehicles.yaml')


def tools_env() -> dict:
    """Environment in which `ros2`, `launch_test` and rqt run, or skip the test with why."""
    env = tools_environment()
    if env is None:
        pytest.skip(MISSING)
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


def launch_command(checkpoint: str, *arguments: str, scenario: str = SCENARIO) -> list:
    """`ros2 launch call_bringup multi_vehicle.launch.py` of 3 vehicles (the test scenario)."""
    return ['ros2', 'launch', 'call_bringup', 'multi_vehicle.launch.py', 'num_vehicles:=3',
            f'scenario:={scenario}', f'checkpoint:={checkpoint}', *arguments]


def stop_daemon(env: dict) -> None:
    """Stop the ros2 daemon that `ros2 node list` and friends start on the test's domain."""
    run(['ros2', 'daemon', 'stop'], env, timeout=180)   # ros2cli starts slowly under load

"""
The launch_testing test of multi_vehicle.launch.py, run by `launch_test` as on a ROS 2 install.

`launch_test` runs the file's tests while the graph is up and its post-shutdown tests (every
process exited with code 0 after launch's SIGINT). It runs as a subprocess in the ROS tools'
environment (ros_cli.tools_env), which also keeps launch_testing's pytest plugin out of this
pytest. Skips, saying why, where the tools are not installed.
"""
import os

from graph_probe import checkpoint_for_tests
from ros_cli import run, tools_env

LAUNCH_TEST = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           'launch_test_multi_vehicle.py')


def test_launch_test_of_multi_vehicle_launch_passes(tmp_path):
    env = tools_env()
    env['CALL_TEST_CHECKPOINT'] = checkpoint_for_tests(str(tmp_path))
    result = run(['launch_test', LAUNCH_TEST], env, timeout=600)
    assert result.returncode == 0, result.stdout[-5000:]
    # both the live test and the post-shutdown exit-code test ran
    assert 'test_every_vehicle_publishes_commands_and_comm_stats' in result.stdout
    assert 'test_exit_codes' in result.stdout

"""
launch_testing: `multi_vehicle.launch.py` brings up a driving 3-vehicle CALL graph.

Runs on full ROS 2 installs (apt/Docker) where `launch_testing` exists; in the pip
environment `launch_testing` is not installable and this module is skipped with that reason.
The same behaviour is checked there by test_end_to_end.py (real DDS, runner-started nodes).
"""
import os
import time
import unittest

import pytest

launch_testing = pytest.importorskip(
    'launch_testing', reason='launch_testing is not on PyPI (full ROS 2 installs only); '
    'test_end_to_end.py covers the same graph with the call_run runner')
import launch_testing.actions  # noqa: E402, I100
import launch_testing.asserts  # noqa: E402
from launch import LaunchDescription  # noqa: E402, I100
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
import rclpy  # noqa: E402, I100

HERE = os.path.dirname(os.path.abspath(__file__))
LAUNCH_FILE = os.path.join(os.path.dirname(HERE), 'launch', 'multi_vehicle.launch.py')
SCENARIO = os.path.join(HERE, 'scenarios', 'three_vehicles.yaml')
ROLES = ('hero0', 'hero1', 'hero2')


@pytest.mark.launch_test
def generate_test_description():
    """Include the launch file with a 3-vehicle scenario, then ReadyToTest."""
    launch = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(LAUNCH_FILE),
        launch_arguments={'num_vehicles': '3', 'scenario': SCENARIO,
                          'checkpoint': os.environ.get('CALL_TEST_CHECKPOINT', '')}.items())
    return LaunchDescription([launch, launch_testing.actions.ReadyToTest()])


class TestVehiclesDrive(unittest.TestCase):
    """While the graph runs: every vehicle commands its car and reports comm stats."""

    def test_every_vehicle_publishes_commands_and_comm_stats(self, proc_output):
        from call_msgs.msg import CommStats
        from carla_msgs.msg import CarlaEgoVehicleControl
        rclpy.init()
        node = rclpy.create_node('launch_test_probe')
        seen = set()
        try:
            for role in ROLES:
                node.create_subscription(CommStats, f'/{role}/comm_stats',
                                         lambda _, r=role: seen.add(('stats', r)), 10)
                node.create_subscription(CarlaEgoVehicleControl,
                                         f'/carla/{role}/vehicle_control_cmd',
                                         lambda _, r=role: seen.add(('cmd', r)), 10)
            deadline = time.monotonic() + 120.0
            while len(seen) < 2 * len(ROLES) and time.monotonic() < deadline:
                rclpy.spin_once(node, timeout_sec=0.1)
        finally:
            node.destroy_node()
            rclpy.shutdown()
        self.assertEqual(seen, {(kind, r) for kind in ('stats', 'cmd') for r in ROLES})


@launch_testing.post_shutdown_test()
class TestCleanShutdown(unittest.TestCase):
    """Every node exits cleanly when launch shuts down (SIGINT)."""

    def test_exit_codes(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)

"""
launch_testing: `multi_vehicle.launch.py` brings up a driving 3-vehicle CALL graph.

Run with `launch_test src/call_bringup/test/launch_test_multi_vehicle.py` (what
test_launch_testing.py does, as ament_cmake's add_launch_test would); the file name keeps
pytest from collecting it directly, since pytest >= 9 cannot load launch_testing's plugin.
"""
import os
import time
import unittest

from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
import launch_testing
import launch_testing.actions
import launch_testing.asserts
import rclpy

HERE = os.path.dirname(os.path.abspath(__file__))
LAUNCH_FILE = os.path.join(os.path.dirname(HERE), 'launch', 'multi_vehicle.launch.py')
SCENARIO = os.path.join(HERE, 'scenarios', 'three_vehicles.yaml')
ROLES = ('hero0', 'hero1', 'hero2')


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

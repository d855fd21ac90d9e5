"""
A minimal CALL-vehicle controller for the multi-process tests (run as a script).

It commands exactly once per new odometry stamp, like a planner that acts once per tick.
Usage: python controller_process.py <role> [throttle]
"""
import sys

from carla_msgs.msg import CarlaEgoVehicleControl
from nav_msgs.msg import Odometry
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


class Controller(Node):
    """Answers every new odometry stamp with one control command."""

    def __init__(self, role: str, throttle: float) -> None:
        super().__init__(f'test_controller_{role}')
        self.throttle = throttle
        self.last_stamp = None
        self.pub = self.create_publisher(CarlaEgoVehicleControl,
                                         f'/carla/{role}/vehicle_control_cmd', 10)
        self.create_subscription(Odometry, f'/carla/{role}/odometry', self.on_odometry, 10)

    def on_odometry(self, msg: Odometry) -> None:
        """
        Command once per simulation step, once the simulator can hear the command.

        Discovery matches each endpoint on its own: the simulator's odometry can reach this
        node before the simulator subscribes to its commands, and a command published then
        is lost. The simulator re-sends a step's odometry while it waits, so an unheard
        step is answered at its next copy.
        """
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        if stamp == self.last_stamp or self.pub.get_subscription_count() == 0:
            return
        self.last_stamp = stamp
        command = CarlaEgoVehicleControl(throttle=self.throttle)
        command.header.stamp = msg.header.stamp
        self.pub.publish(command)


def main() -> None:
    """Spin until killed."""
    rclpy.init()
    node = Controller(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 0.05)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        if rclpy.ok():
            raise
        # Ctrl-C shut the context down while the executor was taking a message


if __name__ == '__main__':
    main()

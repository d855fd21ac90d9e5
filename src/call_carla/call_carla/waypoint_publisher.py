"""
ROS side of the scenario tool: each CALL vehicle's route as nav_msgs/Path.

Published once per vehicle on ``/carla/<role>/waypoints`` (frame ``map``) with a transient-local
QoS, like carla_waypoint_publisher and the embedded simulator, so nodes started later still
receive it.
"""
import math
from typing import Dict, Sequence

from builtin_interfaces.msg import Time
from call_carla.routes import Route, route_heading
from call_carla.topics import topic
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Path
import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

WAYPOINTS_QOS = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                           reliability=ReliabilityPolicy.RELIABLE)


def path_message(route: Route, stamp: Time, frame_id: str = 'map') -> Path:
    """Convert a route to a Path: positions in the map frame, yaw along the polyline."""
    path = Path()
    path.header.frame_id = frame_id
    path.header.stamp = stamp
    for (x, y), yaw in zip(route.waypoints, route_heading(route.waypoints)):
        pose = PoseStamped()
        pose.header = path.header
        pose.pose.position.x, pose.pose.position.y = float(x), float(y)
        pose.pose.orientation.z = math.sin(0.5 * yaw)
        pose.pose.orientation.w = math.cos(0.5 * yaw)
        path.poses.append(pose)
    return path


class WaypointPublisher(Node):
    """Latches one Path per CALL vehicle."""

    def __init__(self, routes: Sequence[Route]) -> None:
        """Create one transient-local publisher per route and publish it."""
        super().__init__('call_carla_scenario',
                         parameter_overrides=[Parameter('use_sim_time', value=True)])
        self.path_publishers: Dict[str, object] = {}
        stamp = self.get_clock().now().to_msg()
        for route in routes:
            publisher = self.create_publisher(Path, topic(route.role, 'waypoints'),
                                              WAYPOINTS_QOS)
            publisher.publish(path_message(route, stamp))
            self.path_publishers[route.role] = publisher
        self.get_logger().info(f'published waypoints of {len(routes)} CALL vehicles')


def start(routes: Sequence[Route]) -> WaypointPublisher:
    """Initialise rclpy (if needed) and return the publishing node."""
    if not rclpy.ok():
        rclpy.init()
    return WaypointPublisher(routes)

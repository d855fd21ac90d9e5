"""
Node ``call_carla_metrics``: the paper's metrics from carla-ros-bridge topics.

Per CALL vehicle it reads ``/carla/<role>/odometry`` (one message per simulation step),
``objects``, ``collision`` and ``waypoints`` and feeds ``call_carla.metrics.EpisodeMetrics``;
on shutdown it writes a JSON summary per vehicle (parameter ``output``).
"""
import json
import math
from typing import Any, Dict, List

from call_carla.metrics import EpisodeMetrics
from call_carla.topics import role_names, topic
from call_common.msg_conversions import yaw_from_quaternion
from call_common.node_main import spin_until_signal
from call_common.parameters import declare_from_yaml
from carla_msgs.msg import CarlaCollisionEvent
from derived_object_msgs.msg import ObjectArray
from nav_msgs.msg import Odometry, Path
import numpy as np
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile

DEFAULT_LENGTH, DEFAULT_WIDTH = 4.8, 2.0  # [m] CALL vehicle box (odometry carries no size)


def odometry_row(msg: Odometry) -> np.ndarray:
    """Return (x, y, yaw, speed, length, width) of the ego from odometry."""
    pose, twist = msg.pose.pose, msg.twist.twist
    speed = math.hypot(twist.linear.x, twist.linear.y)
    return np.array([pose.position.x, pose.position.y, yaw_from_quaternion(pose.orientation),
                     speed, DEFAULT_LENGTH, DEFAULT_WIDTH])


def object_rows(msg: ObjectArray) -> np.ndarray:
    """Return rows of all finite objects (box dimensions: x length, y width)."""
    rows = []
    for obj in msg.objects:
        dims = list(obj.shape.dimensions) + [DEFAULT_LENGTH, DEFAULT_WIDTH]
        row = [obj.pose.position.x, obj.pose.position.y, yaw_from_quaternion(obj.pose.orientation),
               math.hypot(obj.twist.linear.x, obj.twist.linear.y), dims[0], dims[1]]
        if all(math.isfinite(v) for v in row):
            rows.append(row)
    return np.array(rows, dtype=np.float64).reshape(-1, 6)


class MetricsNode(Node):
    """Accumulates EpisodeMetrics per CALL vehicle from the bridge topics."""

    def __init__(self, **node_options: Any) -> None:
        """Declare parameters (config/metrics_node.yaml), subscribe to each vehicle's topics."""
        super().__init__('call_carla_metrics', **node_options)
        # the bridge stamps with CARLA's simulation time: the metrics always run on /clock
        self.set_parameters([Parameter('use_sim_time', value=True)])
        p = declare_from_yaml(self, 'call_carla', 'metrics_node.yaml')
        count, prefix, self.output = p['num_vehicles'], p['role_prefix'], p['output']
        self.metrics: Dict[str, EpisodeMetrics] = {}
        self._objects: Dict[str, np.ndarray] = {}
        self._collided: Dict[str, bool] = {}
        self._goal: Dict[str, np.ndarray] = {}
        self.dropped = 0
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        for role in role_names(count, prefix):
            self.metrics[role] = EpisodeMetrics()
            self._objects[role] = np.zeros((0, 6))
            self._collided[role] = False
            self.create_subscription(Odometry, topic(role, 'odometry'),
                                     lambda m, r=role: self._on_odometry(r, m), 10)
            self.create_subscription(ObjectArray, topic(role, 'objects'),
                                     lambda m, r=role: self._on_objects(r, m), 10)
            self.create_subscription(CarlaCollisionEvent, topic(role, 'collision'),
                                     lambda m, r=role: self._collided.__setitem__(r, True), 10)
            self.create_subscription(Path, topic(role, 'waypoints'),
                                     lambda m, r=role: self._on_waypoints(r, m), latched)

    def _on_objects(self, role: str, msg: ObjectArray) -> None:
        self._objects[role] = object_rows(msg)

    def _on_waypoints(self, role: str, msg: Path) -> None:
        if msg.poses:
            last = msg.poses[-1].pose.position
            self._goal[role] = np.array([last.x, last.y])

    def _on_odometry(self, role: str, msg: Odometry) -> None:
        ego = odometry_row(msg)
        if not np.all(np.isfinite(ego)):
            self.dropped += 1
            return
        self.metrics[role].step(ego, self._objects[role], self._collided[role],
                                self._goal.get(role))
        self._collided[role] = False

    def summaries(self) -> Dict[str, dict]:
        """Return per-vehicle summaries plus the fleet mean of each figure."""
        per_vehicle = {role: m.summary() for role, m in self.metrics.items()}
        keys: List[str] = ['success', 'average_ttc_s', 'collision_rate_pct']
        fleet = {k: float(np.nanmean([s[k] for s in per_vehicle.values()])) for k in keys}
        return {'vehicles': per_vehicle, 'fleet': fleet, 'dropped_messages': self.dropped}

    def write(self) -> None:
        """Write the JSON summary."""
        with open(self.output, 'w', encoding='utf-8') as handle:
            json.dump(self.summaries(), handle, indent=2)


def main(args=None) -> int:
    """Spin until SIGINT/SIGTERM (exit 0), then write the summary; bad parameters exit 2."""
    return spin_until_signal(MetricsNode, args, 'call_carla_metrics',
                             on_stop=lambda node: node.write())


if __name__ == '__main__':
    raise SystemExit(main())

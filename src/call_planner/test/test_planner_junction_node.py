"""
The planner node's junction gate over real DDS, with a tiny random checkpoint.

A harness plays simulator, perception and world model on the crossroad's map: it publishes
the map's OpenDRIVE on /carla/world_info (latched, as the simulator and CARLA do), the ego's
waypoints north over the junction, and odometry of the ego driving north towards it at
5 m/s; perception's BEV shows a car standing just past the junction in the ego's exit lane,
or nothing. With the car the node must brake before the junction and say why in
/diagnostics; without it the gate holds nothing. A malformed map is dropped, not a crash.
The same harness drives the ego through the junction's right turn, tighter than the action
set turns: the node must steer beyond the set's largest steer (the turn assist).
"""
import math

from call_perception.bev_raster import BevConfig, BevRasterizer
from call_perception.road_map import RoadMap
from call_sim.road_network import RoadNetwork
from call_sim.types import VehicleState
from carla_msgs.msg import CarlaWorldInfo
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry, Path
import numpy as np
import pytest
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from test_planner_node import _stamp, Harness, ROLE, run_planner_harness

SPEED = 5.0
TURN_SPEED = 3.4        # the route cost's curve speed for the 5.75 m turn
LANE_X = 1.75           # the inner lane of `south_in` and `north_out`
START_Y = -40.0
EXIT_CAR_Y = 15.6       # a car standing on `north_out` just past the junction's edge (y = 11)
JUNCTION_EDGE_Y = -11.0
#: the right turn from `south_in`'s right lane to `east_out`'s: a quarter circle of 5.75 m
TURN_CENTRE, TURN_RADIUS = (11.0, -11.0), 5.75


class JunctionHarness(Harness):
    """Harness on the crossroad: map, route, odometry and BEV of an ego driving north."""

    def __init__(self, deter: int):
        super().__init__(deter)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                             reliability=ReliabilityPolicy.RELIABLE)
        self.world_pub = self.create_publisher(CarlaWorldInfo, '/carla/world_info', latched)
        self.route_pub = self.create_publisher(Path, f'/carla/{ROLE}/waypoints', 10)
        self.bev_pub = self.create_publisher(Image, f'/{ROLE}/bev', 10)
        self.raster = BevRasterizer(BevConfig(), RoadMap.empty())
        self.opendrive = RoadNetwork('crossroad').opendrive()
        self.exit_car = True
        self.ego_y = START_Y
        self.turn_angle = None      # set: the ego is on the right turn's arc

    def speed_now(self) -> float:
        """Return the ego's speed: the approach's, or the turn's."""
        return SPEED if self.turn_angle is None else TURN_SPEED

    def publish_map(self, text: str) -> None:
        self.world_pub.publish(CarlaWorldInfo(map_name='crossroad', opendrive=text))

    def pose_and_route(self) -> tuple:
        """Return the ego's pose (x, y, yaw) and its route ahead: north, or on the turn."""
        if self.turn_angle is None:
            return ((LANE_X, self.ego_y, math.pi / 2),
                    [(LANE_X, y) for y in np.arange(self.ego_y, self.ego_y + 60.0, 2.0)])
        # on the right turn's arc at `turn_angle` (0 at its start, pi / 2 at its end)
        cx, cy = TURN_CENTRE
        arc = [(cx - TURN_RADIUS * math.cos(a), cy + TURN_RADIUS * math.sin(a))
               for a in np.linspace(self.turn_angle, math.pi / 2, 12)]
        east = [(cx + x, cy + TURN_RADIUS) for x in np.arange(2.0, 40.0, 2.0)]
        return (*arc[0], math.pi / 2 - self.turn_angle), arc + east

    def tick(self, **_) -> None:
        """One step: clock, odometry, route, BEV, then the latent state."""
        self.advance_clock()
        if self.turn_angle is None:
            self.ego_y += SPEED * 0.1
        else:
            self.turn_angle = min(self.turn_angle + TURN_SPEED * 0.1 / TURN_RADIUS,
                                  math.pi / 2 - 0.3)
        (x, y, yaw), points = self.pose_and_route()
        odom = Odometry()
        odom.header.stamp = _stamp(self.sim_time)
        odom.header.frame_id = 'map'
        odom.child_frame_id = ROLE
        odom.pose.pose.position.x, odom.pose.pose.position.y = float(x), float(y)
        odom.pose.pose.orientation.z = math.sin(yaw / 2)
        odom.pose.pose.orientation.w = math.cos(yaw / 2)
        odom.twist.twist.linear.x = self.speed_now()
        self.odom_pub.publish(odom)
        route = Path()
        route.header = odom.header
        for px, py in points:
            pose = PoseStamped()
            pose.header = odom.header
            pose.pose.position.x, pose.pose.position.y = float(px), float(py)
            route.poses.append(pose)
        self.route_pub.publish(route)
        ego = VehicleState(1, ROLE, x, y, yaw, self.speed_now(), 4.8, 2.0, 0.0)
        others = [VehicleState(2, '', LANE_X, EXIT_CAR_Y, math.pi / 2, 0.0, 4.8, 2.0, 0.0)] \
            if self.exit_car else []
        pixels = np.ascontiguousarray(self.raster.render(ego, others).transpose(1, 2, 0))
        msg = Image(height=pixels.shape[0], width=pixels.shape[1],
                    encoding=f'8UC{pixels.shape[2]}', step=pixels.shape[1] * pixels.shape[2])
        msg.header.stamp = _stamp(self.sim_time)
        msg.data = pixels.tobytes()
        self.bev_pub.publish(msg)
        self.spin_for(0.05)
        self.publish_latent()


@pytest.fixture(scope='module')
def harness(tmp_path_factory):
    yield from run_planner_harness(tmp_path_factory, JunctionHarness,
                                   {'K': 3, 'junction_enabled': 'true'})


def _approach(harness, exit_car: bool) -> list:
    """Drive from START_Y until the ego's front is 1 m from the junction; the holds seen."""
    harness.exit_car = exit_car
    harness.ego_y = START_Y
    harness.clear()
    front = JUNCTION_EDGE_Y - 1.0 - 2.4
    while harness.ego_y < front:
        harness.tick()
        harness.wait_for_answer()
    harness.spin_for(0.5)
    return [s for s in harness.diagnostics
            if s.level == DiagnosticStatus.WARN and 'junction hold' in s.message]


def _wait_for_the_node(harness) -> None:
    """Tick until the node has started (torch import) and answers."""
    for _ in range(600):
        if harness.controls:
            return
        harness.tick()
        harness.spin_for(0.2)
    assert harness.controls, 'the planner never answered'


def test_a_car_in_the_exit_makes_the_node_brake_before_the_junction_and_says_why(harness):
    harness.exit_car = False
    _wait_for_the_node(harness)
    harness.publish_map('<OpenDRIVE><road/></OpenDRIVE>')   # malformed: dropped, no crash
    harness.spin_for(0.5)
    harness.publish_map(harness.opendrive)
    harness.spin_for(1.0)
    holds = _approach(harness, exit_car=True)
    assert holds, 'no junction hold with a car standing in the exit'
    assert any(c.brake > 0.0 and c.throttle == 0.0 for c in harness.controls)
    assert not _approach(harness, exit_car=False)


def test_the_node_steers_a_right_turn_tighter_than_the_action_set_turns(harness):
    harness.exit_car = False
    _wait_for_the_node(harness)
    harness.turn_angle = 0.0
    harness.clear()
    for _ in range(12):         # 1.2 s along the arc, 0.7 rad of the quarter turn
        harness.tick()
        harness.wait_for_answer()
    harness.spin_for(0.5)
    harness.turn_angle = None
    planned = [c for c in harness.controls if c.brake < 1.0]
    assert planned, 'the node sent no control on the turn'
    # the action set's steers are -0.6 ... 0.6: beyond is the turn assist's pursuit
    assert min(c.steer for c in planned) < -0.7

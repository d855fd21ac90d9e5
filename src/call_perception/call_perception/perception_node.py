"""
ROS 2 node: the vehicle's BEV at the simulation rate, from CARLA-bridge topics + shared info.

Only translates messages and parameters: visibility, fusion and rasterisation live in the
ROS-free modules. One BEV is published per odometry message, stamped with its sim time.
The accepted neighbours' decoded views (masks the comm node fills in `shared_info`) join the
shared-vehicles channel through the same perception stage as in the ROS-free pipeline.
Its own topics (`bev`, `bev_color`, `plan`, `shared_info`) are relative, in the vehicle's
namespace; the bridge's are `/carla/<role_name>/...`. Parameters: config/perception.yaml.
"""
import array
import math
from typing import Any, List, Optional

from builtin_interfaces.msg import Time
from call_common.msg_conversions import (stamp_nanoseconds, stamp_seconds, unpack_mask,
                                         yaw_from_xyzw)
from call_common.nav_cdr import (NavCdrError, odometry_fields, path_xy, RawOdometry,
                                 read_odometry, read_path_xy)
from call_common.node_main import spin_until_signal
from call_common.parameters import declare_from_yaml
from call_common.qos_events import QUIET_PUB, QUIET_SUB
from call_common.recent_steps import RecentSteps
from call_msgs.msg import SharedInformation
from call_perception.bev_raster import BevConfig, CHANNEL_INDEX, CHANNELS
from call_perception.colorize import colorize
from call_perception.fusion import FusionConfig, parse_intention, SharedNeighbour
from call_perception.neighbour_views import NeighbourView
from call_perception.object_cdr import ObjectCdrError, RawObject, read_object_array
from call_perception.perception_stage import Box, PerceptionStage
from call_perception.road_map import RoadMap
from carla_msgs.msg import CarlaWorldInfo
from derived_object_msgs.msg import ObjectArray
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from nav_msgs.msg import Odometry, Path
import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

LOG_THROTTLE_S = 5.0  # [s] at most one warning per kind in this period
SHARED_KEPT = 8       # steps of shared information (and step order) kept by stamp


def checked_yaw(q) -> float:
    """Heading about +z [rad] of a geometry_msgs/Quaternion; ValueError if not a rotation."""
    return checked_yaw_xyzw(q.x, q.y, q.z, q.w)


def checked_yaw_xyzw(x: float, y: float, z: float, w: float) -> float:
    """Heading about +z [rad] of the quaternion (x, y, z, w); ValueError if not a rotation."""
    norm = math.sqrt(x * x + y * y + z * z + w * w)
    if not math.isfinite(norm) or norm < 1e-6:
        raise ValueError('orientation is not a unit quaternion')
    return yaw_from_xyzw(x, y, z, w)


def fields_of(obj) -> RawObject:
    """Return what perception reads of a deserialised derived_object_msgs/Object."""
    p, q = obj.pose.position, obj.pose.orientation
    return RawObject(obj.id, p.x, p.y, q.x, q.y, q.z, q.w, tuple(obj.shape.dimensions))


def box_from_fields(obj: RawObject) -> Box:
    """Make a Box of an Object's fields (dimensions: x = length, y = width); ValueError if none."""
    dims = obj.dimensions
    if len(dims) < 2:
        raise ValueError('object has no box dimensions')
    box = Box(float(obj.x), float(obj.y), checked_yaw_xyzw(obj.qx, obj.qy, obj.qz, obj.qw),
              float(dims[0]), float(dims[1]))
    if not all(math.isfinite(v) for v in (box.x, box.y, box.length, box.width)):
        raise ValueError('object pose or size is not finite')
    if box.length <= 0.0 or box.width <= 0.0:
        raise ValueError('object size must be positive')
    return box


def path_points(msg: Path) -> np.ndarray:
    """nav_msgs/Path -> (M, 2) map-frame points; ValueError on non-finite points."""
    return finite_points(path_xy(msg))


def finite_points(points: np.ndarray) -> np.ndarray:
    """Return the (M, 2) points of a path; ValueError on non-finite points."""
    if not np.all(np.isfinite(points)):
        raise ValueError('path holds non-finite points')
    return points


class PerceptionNode(Node):
    """Subscribes to one vehicle's odometry, objects, map, route/plan and shared info."""

    def __init__(self, **node_options: Any) -> None:
        """Declare parameters (defaults from config/perception.yaml) and wire the topics."""
        super().__init__('perception', **node_options)   # composition: cli_args
        p = declare_from_yaml(self, 'call_perception', 'perception.yaml')
        self.role = p['role_name']
        self.sensor_range = p['sensor_range']
        self.occlusion = p['occlusion']
        self.full_observation = p['full_observation']
        self.ego_size = (p['ego_length'], p['ego_width'])
        self.shared_max_age = p['shared_max_age']
        self.diagnostics_period = max(1, p['diagnostics_period'])
        if not self.role or not (self.sensor_range > 0.0) or min(self.ego_size) <= 0.0:
            raise ValueError(f'bad perception parameters: role={self.role!r} '
                             f'sensor_range={self.sensor_range} ego_size={self.ego_size}')
        self.bev_config = BevConfig.from_yaml(p['bev_config'] or None).at_size(p['bev_size'])
        self.fusion_config = FusionConfig.from_yaml(p['fusion_config'] or None)
        self.stage = PerceptionStage(self.bev_config, RoadMap.empty(), self.sensor_range,
                                     self.occlusion, self.full_observation, self.fusion_config)
        self.map_name: Optional[str] = None
        self.objects: List[Box] = []
        # odometry triggers the render, which must see the same step's objects: the bridge
        # sends the two in no fixed order, so an odometry that is ahead of them waits
        self.objects_stamp: Optional[int] = None
        self.last_odometry_stamp: Optional[int] = None
        self.pending_odometry: Optional[RawOdometry] = None
        self.route = np.zeros((0, 2))
        self.route_received = False
        self.plan = np.zeros((0, 2))
        self.shared: Optional[SharedInformation] = None
        self.used_shared: Optional[SharedInformation] = None   # what the last render fused
        self.shared_by_stamp: RecentSteps[int, SharedInformation] = RecentSteps(SHARED_KEPT)
        self.step_before: RecentSteps[int, Optional[int]] = RecentSteps(SHARED_KEPT)
        self.expect_objects = self.expect_shared = self.expect_plan = False
        self.plans: RecentSteps[int, np.ndarray] = RecentSteps(SHARED_KEPT)   # the planner's
        self.last_bev: Optional[Image] = None
        self.counts = {'published': 0, 'malformed_odometry': 0, 'malformed_objects': 0,
                       'malformed_paths': 0, 'malformed_shared': 0, 'malformed_map': 0,
                       'malformed_views': 0, 'stale_shared': 0, 'stale_inputs': 0,
                       'unmatched_shared': 0, 'repeated_odometry': 0}
        self.last_seen = 0
        self.last_shared_only = 0
        self.last_view_vehicles = 0

        role = self.role
        self.bev_pub = self.create_publisher(Image, 'bev', 10, event_callbacks=QUIET_PUB)
        self.color_pub = self.create_publisher(Image, 'bev_color', 10,
                                               event_callbacks=QUIET_PUB)
        # what the ego sees without sharing, for viewers comparing it with the fused BEV
        self.local_color_pub = self.create_publisher(Image, 'bev_local_color', 10,
                                                     event_callbacks=QUIET_PUB)
        self.diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10,
                                              event_callbacks=QUIET_PUB)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                             reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(CarlaWorldInfo, '/carla/world_info', self.on_world_info, latched,
                                 event_callbacks=QUIET_SUB)
        self.create_subscription(ObjectArray, f'/carla/{role}/objects', self.on_objects_raw,
                                 10, event_callbacks=QUIET_SUB, raw=True)
        # Path and Odometry are taken raw: the few numbers read from the bytes (`nav_cdr`)
        self.create_subscription(Path, f'/carla/{role}/waypoints', self.on_route_raw, 10,
                                 event_callbacks=QUIET_SUB, raw=True)
        self.create_subscription(Path, 'plan', self.on_plan_raw, 10,
                                 event_callbacks=QUIET_SUB, raw=True)
        self.create_subscription(SharedInformation, 'shared_info', self.on_shared, 10,
                                 event_callbacks=QUIET_SUB)
        self.create_subscription(Odometry, f'/carla/{role}/odometry', self.on_odometry_raw, 10,
                                 event_callbacks=QUIET_SUB, raw=True)
        self.get_logger().info(
            f'BEV {self.bev_config.size}px @ {self.bev_config.metres_per_pixel} m/px for '
            f'{role}: sensor_range={self.sensor_range} m occlusion={self.occlusion} '
            f'full_observation={self.full_observation}; no road layer until /carla/world_info')

    def _drop(self, kind: str, reason: str) -> None:
        self.counts[kind] += 1
        self.get_logger().warning(f'dropped {kind.replace("malformed_", "")}: {reason} '
                                  f'({self.counts[kind]} so far)',
                                  throttle_duration_sec=LOG_THROTTLE_S)

    def on_world_info(self, msg: CarlaWorldInfo) -> None:
        """Build the road map from the OpenDRIVE text (once per map)."""
        if msg.map_name == self.map_name and self.map_name is not None:
            return
        try:
            road = RoadMap.from_opendrive(msg.opendrive)
        except Exception as error:  # a broken map must not take the vehicle down
            self._drop('malformed_map', f'{msg.map_name!r}: {type(error).__name__}: {error}')
            return
        self.stage.set_road_map(road)
        self.map_name = msg.map_name
        self.get_logger().info(f'road map {msg.map_name!r}: {len(road.lanes)} lanes')
        self._render_pending()

    def on_objects_raw(self, raw: bytes) -> None:
        """
        Take a serialized ObjectArray: the subscription's callback.

        Reading the five numbers per object from the bytes (`object_cdr`) gives the same
        floats as the deserialised message without building its dozen Python objects per
        object; bytes that are no ObjectArray are dropped and counted.
        """
        try:
            sec, nanosec, objects = read_object_array(raw)
        except ObjectCdrError as error:
            self._drop('malformed_objects', f'message: {error}')
            return
        self._take_objects(sec * 10**9 + nanosec, objects)

    def on_objects(self, msg: ObjectArray) -> None:
        """Take a deserialised ObjectArray (same result as `on_objects_raw` on its bytes)."""
        self._take_objects(stamp_nanoseconds(msg.header.stamp),
                           [fields_of(obj) for obj in msg.objects])

    def _take_objects(self, stamp: int, objects: List[RawObject]) -> None:
        """Keep the latest other actors; drop malformed ones individually."""
        boxes = []
        for obj in objects:
            try:
                boxes.append(box_from_fields(obj))
            except ValueError as error:
                self._drop('malformed_objects', f'object {obj.object_id}: {error}')
        self.objects = boxes
        self.objects_stamp = stamp
        self._render_pending()

    def on_route_raw(self, raw: bytes) -> None:
        """Take a serialized route Path (same result as `on_route` on its bytes)."""
        try:
            _, _, points = read_path_xy(raw)
        except NavCdrError as error:
            self._drop('malformed_paths', f'route: {error}')
            return
        self._take_route(points)

    def on_route(self, msg: Path) -> None:
        """Route from the planning module (carla_waypoint_publisher contract)."""
        self._take_route(path_xy(msg))

    def _take_route(self, points: np.ndarray) -> None:
        try:
            self.route = finite_points(points)
        except ValueError as error:
            self._drop('malformed_paths', f'route: {error}')
            return
        self.route_received = True
        self._render_pending()

    def on_plan_raw(self, raw: bytes) -> None:
        """Take a serialized plan Path (same result as `on_plan` on its bytes)."""
        try:
            sec, nanosec, points = read_path_xy(raw)
        except NavCdrError as error:
            self._drop('malformed_paths', f'plan: {error}')
            return
        self._take_plan(sec * 10**9 + nanosec, points)

    def on_plan(self, msg: Path) -> None:
        """Ego planned waypoints (the intention); preferred over the route when non-empty."""
        self._take_plan(stamp_nanoseconds(msg.header.stamp), path_xy(msg))

    def _take_plan(self, stamp: int, points: np.ndarray) -> None:
        try:
            self.plan = finite_points(points)
        except ValueError as error:
            self._drop('malformed_paths', f'plan: {error}')
            return
        self.plans[stamp] = self.plan
        self._render_pending()

    def on_shared(self, msg: SharedInformation) -> None:
        """Keep comm's accepted shared information; a step waiting for it renders now."""
        self.shared = msg
        self.shared_by_stamp[stamp_nanoseconds(msg.header.stamp)] = msg
        self._render_pending()

    def _neighbours(self, now: float, previous: Optional[int]
                    ) -> List[SharedNeighbour]:
        """
        Return the neighbours comm accepted at the previous step (the pipeline's step semantics).

        Without that step's shared information (comm silent or late past the wait), the
        latest one still younger than shared_max_age is taken and counted `unmatched_shared`.
        """
        self.used_shared = None
        msg = self.shared_by_stamp.get(previous) if previous is not None else None
        if msg is None:
            msg = self.shared
            if msg is None:
                return []
            self.counts['unmatched_shared'] += 1
        if now - stamp_seconds(msg.header.stamp) > self.shared_max_age:
            self.counts['stale_shared'] += 1
            return []
        self.used_shared = msg
        length, width = self.fusion_config.default_length, self.fusion_config.default_width
        out = []
        for n in msg.neighbours:
            try:
                if not all(math.isfinite(v) for v in (n.x, n.y, n.yaw)):
                    raise ValueError('pose is not finite')
                out.append(SharedNeighbour(n.sender_id, float(n.x), float(n.y), float(n.yaw),
                                           parse_intention(n.intention_xy), length, width))
            except ValueError as error:
                self._drop('malformed_shared', f'neighbour {n.sender_id!r}: {error}')
        return out

    def _views(self) -> List[NeighbourView]:
        """Return the decoded views of the shared info `_neighbours` used (malformed: dropped)."""
        msg = self.used_shared
        if msg is None:
            return []
        out = []
        for n in msg.neighbours:
            if not n.view_size:
                continue
            try:
                if not all(math.isfinite(v) for v in (n.x, n.y, n.yaw)):
                    raise ValueError('pose is not finite')
                mask = unpack_mask(bytes(n.view_mask), n.view_size)
                out.append(NeighbourView(n.sender_id, Box(float(n.x), float(n.y), float(n.yaw),
                                                          0.0, 0.0), mask))
            except ValueError as error:
                self._drop('malformed_views', f'neighbour {n.sender_id!r}: {error}')
        return out

    def on_odometry_raw(self, raw: bytes) -> None:
        """Take a serialized Odometry (same result as `on_odometry` on its bytes)."""
        try:
            odometry = read_odometry(raw)
        except NavCdrError as error:
            self._drop('malformed_odometry', f'message: {error}')
            return
        self._take_odometry(odometry)

    def on_odometry(self, msg: Odometry) -> None:
        """Take a deserialised Odometry: one simulation step (`_take_odometry`)."""
        self._take_odometry(odometry_fields(msg))

    def _take_odometry(self, msg: RawOdometry) -> None:
        """
        One simulation step: render its BEV once the step's objects and shared info are in.

        Step t renders with the step's objects, the plan the planner declared at step t - 1
        and the neighbours comm accepted at step t - 1 (its shared information stamped
        t - 1; `call_learning.pipeline`, semantics 1).
        While an input keeps up (it came for the previous step), an odometry ahead of it
        waits for it. If it stops coming, the waiting step is rendered with the latest one
        when the next odometry arrives (counted `stale_inputs`), and later steps no longer
        wait, so a missing topic costs one step, not the pipeline. A re-sent step (same
        stamp) re-publishes its BEV rather than rendering it again.
        """
        stamp = msg.stamp_ns
        if stamp == self.last_odometry_stamp:
            # the simulator re-sent a step it waits on (late joiners): the same BEV again,
            # so each step is observed once with the inputs it was first rendered with
            self.counts['repeated_odometry'] += 1
            if self.last_bev is not None and self.pending_odometry is None:
                self.bev_pub.publish(self.last_bev)
            return
        previous, self.last_odometry_stamp = self.last_odometry_stamp, stamp
        if self.pending_odometry is not None:
            self.counts['stale_inputs'] += 1
            pending, self.pending_odometry = self.pending_odometry, None
            self._render(pending)
        self.step_before[stamp] = previous
        # wait for inputs that keep up (they came for the previous step): objects of this
        # step, and comm's shared information of the previous step
        self.expect_objects = self.objects_stamp is not None and self.objects_stamp == previous
        self.expect_shared = previous is not None and \
            self.step_before.get(previous) in self.shared_by_stamp
        self.expect_plan = previous is not None and self.step_before.get(previous) in self.plans
        if not self._inputs_ready(msg):
            self.pending_odometry = msg
            return
        self._render(msg)

    def _render_pending(self) -> None:
        """Render the step that waits for an input, once this input completed it."""
        pending = self.pending_odometry
        if pending is not None and self._inputs_ready(pending):
            self.pending_odometry = None
            self._render(pending)

    def _inputs_ready(self, msg: RawOdometry) -> bool:
        """Tell whether the step's awaited map, objects and shared information are in."""
        stamp = msg.stamp_ns
        if self.counts['published'] == 0 and (
                self.map_name is None or not self.route_received
                or self.objects_stamp is None or self.objects_stamp < stamp):
            # the first step waits for the road, its route and its objects (at start-up a
            # topic may be matched after the odometry; the simulator re-sends the step)
            return False
        if self.expect_objects and (self.objects_stamp is None or self.objects_stamp < stamp):
            return False
        previous = self.step_before.get(stamp)
        if self.expect_plan and previous not in self.plans:
            return False
        return not self.expect_shared or previous in self.shared_by_stamp

    def _render(self, msg: RawOdometry) -> None:
        """Render and publish the BEV stamped with the odometry's time."""
        try:
            ego = Box(float(msg.x), float(msg.y),
                      checked_yaw_xyzw(msg.qx, msg.qy, msg.qz, msg.qw), *self.ego_size)
            if not (math.isfinite(ego.x) and math.isfinite(ego.y)):
                raise ValueError('position is not finite')
        except ValueError as error:
            self._drop('malformed_odometry', str(error))
            return
        now = msg.stamp_seconds
        previous = self.step_before.get(msg.stamp_ns)
        neighbours = self._neighbours(now, previous)
        perceived = self.stage.render(ego, self.objects, neighbours,
                                      self.plans.get(previous, self.plan), self.route,
                                      self._views())
        bev = perceived.bev
        stamp = Time(sec=msg.sec, nanosec=msg.nanosec)
        self.last_bev = self._image(stamp, bev.transpose(1, 2, 0),
                                    f'8UC{len(CHANNELS)}')
        self.bev_pub.publish(self.last_bev)
        if self.color_pub.get_subscription_count() > 0:    # viewers only: skip when unseen
            self.color_pub.publish(self._image(stamp, colorize(bev), 'rgb8'))
        if self.local_color_pub.get_subscription_count() > 0:
            local = bev.copy()
            local[[CHANNEL_INDEX['shared_vehicles'], CHANNEL_INDEX['shared_waypoints']]] = 0
            self.local_color_pub.publish(self._image(stamp, colorize(local), 'rgb8'))
        self.counts['published'] += 1
        self.last_seen, self.last_shared_only = perceived.seen, perceived.shared_only
        self.last_view_vehicles = perceived.view_vehicles
        if self.counts['published'] % self.diagnostics_period == 1 % self.diagnostics_period:
            self._publish_diagnostics(stamp)

    def _image(self, stamp, pixels: np.ndarray, encoding: str) -> Image:
        """(H, W, C) uint8 -> sensor_msgs/Image with interleaved channels."""
        image = Image()
        image.header.stamp = stamp
        image.header.frame_id = f'{self.role}/bev'
        image.height, image.width = pixels.shape[0], pixels.shape[1]
        image.encoding = encoding
        image.is_bigendian = 0
        image.step = pixels.shape[1] * pixels.shape[2]
        image.data = array.array('B', np.ascontiguousarray(pixels).tobytes())
        return image

    def _publish_diagnostics(self, stamp) -> None:
        problems = sum(v for k, v in self.counts.items() if k.startswith('malformed'))
        status = DiagnosticStatus()
        status.name = f'call_perception: {self.role}'
        status.hardware_id = self.role
        if self.map_name is None:
            status.level, status.message = DiagnosticStatus.WARN, 'no road map yet'
        elif problems:
            status.level, status.message = DiagnosticStatus.WARN, 'malformed inputs dropped'
        else:
            status.level, status.message = DiagnosticStatus.OK, 'ok'
        values = dict(self.counts, map=self.map_name or '', seen=self.last_seen,
                      shared_only=self.last_shared_only, objects=len(self.objects),
                      view_vehicles=self.last_view_vehicles)
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        array_msg = DiagnosticArray()
        array_msg.header.stamp = stamp
        array_msg.status = [status]
        self.diag_pub.publish(array_msg)


def main(args=None) -> int:
    """Spin the node until SIGINT/SIGTERM (call_common.node_main)."""
    return spin_until_signal(PerceptionNode, args, 'perception_node')


if __name__ == '__main__':
    raise SystemExit(main())

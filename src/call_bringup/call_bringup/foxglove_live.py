"""
`--foxglove`: a live view of a CALL run in Foxglove, on ws://localhost:8765.

The server (PyPI `foxglove-sdk`) forwards ROS topics as they are on the wire: schema
`ros2msg`, message encoding `cdr`, the same topic names and schemas that `foxglove_bridge`
serves on a full ROS 2 install and that `call_record` writes to MCAP, so one layout file
(`share/call_bringup/config/foxglove_layout.json`) opens all three. Per CALL vehicle R:
`/R/bev_local_color` (what it sees), `/R/bev_color` (its fused BEV: shared-only vehicles in
yellow), `/R/prediction_color` (decoded K-step prediction), `/R/comm_stats` (CommStats:
plot `prediction_error` against `threshold`, i.e. E against c, and `comm_range`); and
`/call/scene` (visualization_msgs/MarkerArray, frame `map`): road, vehicles, communication
ranges and the step's V2V links, published by this node for any subscriber.

Nothing is subscribed while nobody looks: a ROS topic is taken only while a WebSocket client
subscribes to its channel, and the scene's inputs only while `/call/scene` has a subscriber,
so the server idles at a timer when no client is connected (bench/bench_foxglove.py).
"""
import argparse
import math
import queue
import sys
import time
from typing import Optional

from call_bringup.record import message_class, message_definition
from call_common.node_main import spin_until_signal
import foxglove
from foxglove.websocket import ServerListener
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

DEFAULT_PORT = 8765
IDLE_PERIOD_S = 0.5     # [s] how often subscription changes are applied (wall clock)
SCENE_TOPIC = '/call/scene'
IMAGE = 'sensor_msgs/msg/Image'
VEHICLE_TOPICS = (('bev_local_color', IMAGE), ('bev_color', IMAGE),
                  ('prediction_color', IMAGE), ('comm_stats', 'call_msgs/msg/CommStats'))
HERO_RGB = ((0.9, 0.24, 0.24), (0.24, 0.55, 0.9), (0.94, 0.78, 0.16), (0.31, 0.78, 0.35),
            (0.78, 0.35, 0.86), (0.16, 0.78, 0.78), (0.94, 0.55, 0.16), (1.0, 1.0, 1.0))


def live_topics(roles: list) -> dict:
    """{topic: ROS type} the live view serves, in layout order."""
    topics = {f'/{role}/{name}': kind for role in roles for name, kind in VEHICLE_TOPICS}
    topics[SCENE_TOPIC] = 'visualization_msgs/msg/MarkerArray'
    return topics


def add_foxglove_argument(parser: argparse.ArgumentParser) -> None:
    """`--foxglove [--foxglove-port N]` of call_run and call_demo."""
    parser.add_argument('--foxglove', action='store_true',
                        help='live view: Foxglove WebSocket server on ws://localhost:8765 '
                        '(open with share/call_bringup/config/foxglove_layout.json)')
    parser.add_argument('--foxglove-port', type=int, default=DEFAULT_PORT)


def foxglove_unit(roles: list, port: int = DEFAULT_PORT, serve: bool = True):
    """
    Describe the runner's process unit of the live view.

    `serve=False` runs only the /call/scene publisher (for `--record` without a viewer), so a
    recording holds every topic of the layout.
    """
    from call_bringup.runner import ProcessUnit
    return ProcessUnit('foxglove', [sys.executable, '-m', 'call_bringup.foxglove_live',
                                    '--roles', ','.join(roles), '--port', str(port)]
                       + ([] if serve else ['--no-server']))


def layout(roles: list) -> dict:
    """Foxglove layout: per vehicle its three images; the 3D scene; E against c; ranges."""
    config, rows = {}, []
    for role in roles:
        cells = []
        for name in ('bev_local_color', 'bev_color', 'prediction_color'):
            key = f'Image!{role}_{name}'
            config[key] = {'imageMode': {'imageTopic': f'/{role}/{name}'}}
            cells.append(key)
        rows.append({'first': cells[0], 'second': {'first': cells[1], 'second': cells[2],
                                                   'direction': 'row'},
                     'direction': 'row', 'splitPercentage': 33})
    config['3D!scene'] = {'followTf': 'map', 'topics': {SCENE_TOPIC: {'visible': True}},
                          'cameraState': {'distance': 120, 'perspective': False,
                                          'phi': 0, 'thetaOffset': 0}}

    def plot(fields: list, title: str) -> dict:
        paths = [{'value': f'/{role}/comm_stats.{name}', 'enabled': True,
                  'timestampMethod': 'headerStamp'} for role, name in fields]
        return {'title': title, 'paths': paths, 'showLegend': True}
    config['Plot!error'] = plot([(r, 'prediction_error') for r in roles]
                                + [(roles[0], 'threshold')], 'E against c')
    config['Plot!range'] = plot([(r, 'comm_range') for r in roles], 'communication range [m]')
    images = rows[0] if len(rows) == 1 else None
    for row in rows[1:] if len(rows) > 1 else []:
        images = {'first': images or rows[0], 'second': row, 'direction': 'column'}
    right = {'first': '3D!scene', 'second': {'first': 'Plot!error', 'second': 'Plot!range',
                                             'direction': 'row'},
             'direction': 'column', 'splitPercentage': 60}
    return {'configById': config, 'globalVariables': {}, 'userNodes': {},
            'layout': {'first': images, 'second': right, 'direction': 'row',
                       'splitPercentage': 50}}


class LiveView(Node):
    """Serves the live topics on a Foxglove WebSocket and publishes the 3D scene."""

    def __init__(self, roles: list, port: Optional[int], host: str = '127.0.0.1'):
        super().__init__('foxglove_live')
        from visualization_msgs.msg import MarkerArray
        self.roles = roles
        self.topics = live_topics(roles)
        self.requests: queue.Queue = queue.Queue()   # (topic, +1/-1) from the server thread
        self.wanted: dict = dict.fromkeys(self.topics, 0)
        self.forwarders: dict = {}
        self.channels = {
            topic: foxglove.Channel(topic, message_encoding='cdr', schema=foxglove.Schema(
                name=kind, encoding='ros2msg', data=message_definition(kind).encode()))
            for topic, kind in self.topics.items()}
        self.scene_pub = self.create_publisher(MarkerArray, SCENE_TOPIC, 2)
        self.scene = SceneSource(self, roles, on_step=self._publish_scene)
        self.server = None if port is None else foxglove.start_server(
            host=host, port=port, server_listener=_Listener(self.requests))
        self.create_timer(IDLE_PERIOD_S, self._tick)
        self.get_logger().info(f'Foxglove live view on ws://localhost:{port} '
                               f'({len(self.channels)} channels)' if self.server else
                               f'{SCENE_TOPIC} publisher (no WebSocket server)')

    def _tick(self) -> None:
        """Apply subscription changes from the server; follow the scene's subscribers."""
        while True:
            try:
                topic, change = self.requests.get_nowait()
            except queue.Empty:
                break
            if topic in self.wanted:
                self.wanted[topic] = max(0, self.wanted[topic] + change)
                self._forward(topic, self.wanted[topic] > 0)
        self.scene.follow(self.scene_pub.get_subscription_count() > 0)

    def _publish_scene(self) -> None:
        markers = self.scene.markers()
        if markers is not None:
            self.scene_pub.publish(markers)

    def _forward(self, topic: str, on: bool) -> None:
        if on and topic not in self.forwarders:
            channel = self.channels[topic]
            qos = QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST,
                             reliability=ReliabilityPolicy.BEST_EFFORT)
            self.forwarders[topic] = self.create_subscription(
                message_class(self.topics[topic]), topic,
                lambda data, channel=channel: channel.log(data, log_time=time.time_ns()),
                qos, raw=True)
        elif not on and topic in self.forwarders:
            self.destroy_subscription(self.forwarders.pop(topic))

    def close(self) -> None:
        """Stop the WebSocket server."""
        if self.server is not None:
            self.server.stop()


class _Listener(ServerListener):
    """Relays the server thread's subscribe events to the node's timer (thread-safe queue)."""

    def __init__(self, requests: queue.Queue):
        super().__init__()
        self.requests = requests

    def on_subscribe(self, client, channel) -> None:
        self.requests.put((channel.topic, 1))

    def on_unsubscribe(self, client, channel) -> None:
        self.requests.put((channel.topic, -1))


class SceneSource:
    """Poses, objects, ranges and links of the latest step, as a MarkerArray for /call/scene."""

    def __init__(self, node: Node, roles: list, on_step):
        self.node = node
        self.roles = roles
        self.on_step = on_step          # called once per step (the last role's odometry)
        self.subscriptions: list = []
        self.poses: dict = {}
        self.objects: dict = {}
        self.comm: dict = {}
        self.road = None
        self.stamp = None

    def follow(self, active: bool) -> None:
        """Take the inputs while the scene is wanted, release them otherwise."""
        if active == bool(self.subscriptions):
            return
        if not active:
            for subscription in self.subscriptions:
                self.node.destroy_subscription(subscription)
            self.subscriptions = []
            return
        from call_msgs.msg import CommStats
        from carla_msgs.msg import CarlaWorldInfo
        from derived_object_msgs.msg import ObjectArray
        from nav_msgs.msg import Odometry
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                             reliability=ReliabilityPolicy.RELIABLE)
        best_effort = QoSProfile(depth=2, history=HistoryPolicy.KEEP_LAST,
                                 reliability=ReliabilityPolicy.BEST_EFFORT)
        make = self.node.create_subscription
        self.subscriptions.append(make(CarlaWorldInfo, '/carla/world_info', self._on_world,
                                       latched))
        for role in self.roles:
            self.subscriptions += [
                make(Odometry, f'/carla/{role}/odometry',
                     lambda m, r=role: self._on_odometry(r, m), best_effort),
                make(ObjectArray, f'/carla/{role}/objects',
                     lambda m, r=role: self.objects.__setitem__(r, m.objects), best_effort),
                make(CommStats, f'/{role}/comm_stats',
                     lambda m, r=role: self.comm.__setitem__(r, m), 10)]

    def _on_odometry(self, role: str, msg) -> None:
        self.poses[role] = msg.pose.pose
        self.stamp = msg.header.stamp
        if role == self.roles[-1]:
            self.on_step()

    def _on_world(self, msg) -> None:
        try:
            from call_perception.road_map import RoadMap
            self.road = RoadMap.from_opendrive(msg.opendrive).lanes
        except Exception as err:  # noqa: B902 - the scene works without a road
            self.node.get_logger().warning(f'no road in the scene: {err}')

    def markers(self):
        """Build the scene of the latest step (None before the first odometry)."""
        if self.stamp is None:
            return None
        return scene_markers(self.stamp, self.roles, self.poses, self.objects, self.comm,
                             self.road or [])


def _colour(rgb, alpha: float = 1.0):
    from std_msgs.msg import ColorRGBA
    return ColorRGBA(r=float(rgb[0]), g=float(rgb[1]), b=float(rgb[2]), a=float(alpha))


def scene_markers(stamp, roles: list, poses: dict, objects: dict, comm: dict, lanes: list):
    """
    Build the MarkerArray of one step.

    Lane edges, background vehicles (grey), CALL vehicles (coloured, labelled), each one's
    communication range (circle) and its accepted V2V links (lines).
    """
    from geometry_msgs.msg import Point
    from visualization_msgs.msg import Marker, MarkerArray
    import numpy as np
    out = MarkerArray()
    clear = Marker(action=Marker.DELETEALL)
    clear.header.frame_id = 'map'
    out.markers.append(clear)

    def marker(ns: str, ident: int, kind: int, rgb, alpha: float = 1.0) -> Marker:
        item = Marker(ns=ns, id=ident, type=kind, action=Marker.ADD)
        item.header.frame_id = 'map'
        item.header.stamp = stamp
        item.color = _colour(rgb, alpha)
        item.pose.orientation.w = 1.0
        out.markers.append(item)
        return item
    for index, lane in enumerate(lanes):
        line = np.asarray(lane.centerline, dtype=np.float64).reshape(-1, 2)
        if len(line) < 2:
            continue
        line = line[sorted(set(range(0, len(line), 3)) | {len(line) - 1})]   # keep the ends
        d = np.gradient(line, axis=0)
        normal = np.stack([-d[:, 1], d[:, 0]], axis=1)
        normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-9)
        for side, sign in enumerate((0.5, -0.5)):
            edge = marker('road', 2 * index + side, Marker.LINE_STRIP, (0.7, 0.7, 0.7))
            edge.scale.x = 0.15
            edge.points = [Point(x=float(x), y=float(y)) for x, y in
                           line + sign * float(lane.width) * normal]
    seen = set()
    for role in roles:
        for obj in objects.get(role, []):
            if obj.id in seen or len(obj.shape.dimensions) < 3:
                continue
            seen.add(obj.id)
            box = marker('vehicles', int(obj.id), Marker.CUBE, (0.6, 0.6, 0.6))
            box.pose = obj.pose
            box.scale.x, box.scale.y, box.scale.z = (float(v) for v in obj.shape.dimensions[:3])
    for rank, role in enumerate(roles):
        pose = poses.get(role)
        if pose is None:
            continue
        rgb = HERO_RGB[rank % len(HERO_RGB)]
        box = marker('call_vehicles', rank, Marker.CUBE, rgb)
        box.pose = pose
        box.scale.x, box.scale.y, box.scale.z = 4.6, 2.0, 1.6
        label = marker('labels', rank, Marker.TEXT_VIEW_FACING, (1.0, 1.0, 1.0))
        label.pose.position.x, label.pose.position.y = pose.position.x, pose.position.y
        label.pose.position.z = 3.0
        label.scale.z = 2.0
        stats = comm.get(role)
        label.text = role if stats is None else \
            f'{role} E={stats.prediction_error:.0f} c={stats.threshold:.0f}'
        if stats is None:
            continue
        radius = float(stats.comm_range)
        if 0.0 < radius < 1e6:
            circle = marker('ranges', rank, Marker.LINE_STRIP, rgb, 0.8)
            circle.scale.x = 0.3
            circle.points = [Point(x=pose.position.x + radius * math.cos(a),
                                   y=pose.position.y + radius * math.sin(a), z=0.2)
                             for a in np.linspace(0.0, 2.0 * math.pi, 49)]
        links = [n for n in stats.neighbours if n in poses]
        if links:
            line = marker('v2v_links', rank, Marker.LINE_LIST, (0.0, 1.0, 1.0))
            line.scale.x = 0.4
            for sender in links:
                line.points += [Point(x=poses[sender].position.x, y=poses[sender].position.y,
                                      z=1.0),
                                Point(x=pose.position.x, y=pose.position.y, z=1.0)]
    return out


def main(argv: Optional[list] = None) -> int:
    """`python -m call_bringup.foxglove_live --roles hero0,hero1 [--port 8765]`."""
    parser = argparse.ArgumentParser(prog='foxglove_live', description=__doc__.splitlines()[1])
    parser.add_argument('--roles', required=True, help='comma-separated CALL role names')
    parser.add_argument('--port', type=int, default=DEFAULT_PORT)
    parser.add_argument('--no-server', action='store_true',
                        help='only publish /call/scene (e.g. for a recording)')
    parser.add_argument('--write-layout', metavar='PATH',
                        help='write the Foxglove layout for these roles and exit')
    args, ros_args = parser.parse_known_args(argv)
    roles = [r for r in args.roles.split(',') if r]
    if args.write_layout:
        import json
        with open(args.write_layout, 'w', encoding='utf-8') as stream:
            json.dump(layout(roles), stream, indent=2)
            stream.write('\n')
        return 0
    port = None if args.no_server else args.port
    return spin_until_signal(lambda: LiveView(roles, port), ros_args or None,
                             'foxglove_live', start_errors=(OSError, RuntimeError),
                             on_stop=lambda node: node.close())


if __name__ == '__main__':
    sys.exit(main())

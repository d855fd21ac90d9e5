"""The perception node over real DDS: CARLA-bridge inputs in, 8UC7 and rgb8 BEVs out."""
import os
import signal
import subprocess
import sys
import time

from builtin_interfaces.msg import Time
from call_common.msg_conversions import pack_mask
from call_msgs.msg import NeighbourLatent, SharedInformation
from call_perception.bev_raster import BevConfig, BevRasterizer, CHANNEL_INDEX, CHANNELS
from call_perception.colorize import COLOURS
from call_perception.neighbour_views import VIEW_CHANNELS
from call_perception.package_config import config_path
from call_perception.perception_stage import Box
from carla_msgs.msg import CarlaWorldInfo
from derived_object_msgs.msg import Object, ObjectArray
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry, Path as PathMsg
import numpy as np
import pytest
import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

ROLE = 'hero7'
CFG = BevConfig.from_yaml()
WAIT_S = 30.0  # upper bound for discovery + first BEV; the test ends as soon as data arrives
XODR = """<?xml version="1.0"?>
<OpenDRIVE><header revMajor="1" revMinor="4"/>
<road name="r" length="200" id="1" junction="-1">
<planView><geometry s="0" x="-100" y="0" hdg="0" length="200"><line/></geometry></planView>
<lanes><laneSection s="0">
<left><lane id="1" type="driving" level="false"><width sOffset="0" a="3.5" b="0" c="0" d="0"/>
</lane></left>
<center><lane id="0" type="none" level="false"/></center>
<right><lane id="-1" type="driving" level="false"><width sOffset="0" a="3.5" b="0" c="0" d="0"/>
</lane></right>
</laneSection></lanes></road></OpenDRIVE>"""


def pixel(metres_ahead, metres_left=0.0):
    return (int(CFG.ego_row - metres_ahead / CFG.metres_per_pixel),
            int(CFG.ego_col - metres_left / CFG.metres_per_pixel))


def vehicle(obj_id, x, y, length, width):
    obj = Object()
    obj.id = obj_id
    obj.pose.position.x, obj.pose.position.y = x, y
    obj.pose.orientation.w = 1.0
    obj.shape.type = obj.shape.BOX
    obj.shape.dimensions = [length, width, 1.5]
    return obj


@pytest.fixture
def perception_process():
    cmd = [sys.executable, '-m', 'call_perception.perception_node', '--ros-args',
           '-r', f'__ns:=/{ROLE}',
           '--params-file', str(config_path('perception.yaml')), '-p', f'role_name:={ROLE}']
    proc = subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def test_node_publishes_the_fused_bev(perception_process):
    rclpy.init()
    node = rclpy.create_node('perception_test_driver')
    try:
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                             reliability=ReliabilityPolicy.RELIABLE)
        world_pub = node.create_publisher(CarlaWorldInfo, '/carla/world_info', latched)
        objects_pub = node.create_publisher(ObjectArray, f'/carla/{ROLE}/objects', 10)
        odom_pub = node.create_publisher(Odometry, f'/carla/{ROLE}/odometry', 10)
        plan_pub = node.create_publisher(PathMsg, f'/{ROLE}/plan', 10)
        shared_pub = node.create_publisher(SharedInformation, f'/{ROLE}/shared_info', 10)
        received = {'bev': [], 'bev_color': [], 'bev_local_color': [], 'diagnostics': []}
        node.create_subscription(Image, f'/{ROLE}/bev', received['bev'].append, 10)
        node.create_subscription(Image, f'/{ROLE}/bev_color', received['bev_color'].append, 10)
        node.create_subscription(Image, f'/{ROLE}/bev_local_color',
                                 received['bev_local_color'].append, 10)
        node.create_subscription(DiagnosticArray, '/diagnostics',
                                 received['diagnostics'].append, 10)

        stamp = Time(sec=5, nanosec=100_000_000)
        ego_y = -1.75  # right lane of the test road
        objects = ObjectArray()
        objects.objects = [vehicle(1, 12.0, ego_y, 12.0, 2.6),  # truck ahead: seen
                           vehicle(2, 26.0, ego_y, 4.6, 2.0),  # behind the truck: occluded
                           vehicle(3, float('nan'), 0.0, 4.6, 2.0)]  # malformed: dropped
        odom = Odometry()
        odom.header.stamp = stamp
        odom.header.frame_id = 'map'
        odom.child_frame_id = ROLE
        odom.pose.pose.position.y = ego_y
        odom.pose.pose.orientation.w = 1.0
        shared = SharedInformation()
        shared.header.stamp = stamp
        shared.neighbours = [NeighbourLatent(sender_id='hero8', x=26.0, y=ego_y, yaw=0.0,
                                             intention_xy=[26.0, ego_y, 40.0, ego_y]),
                             NeighbourLatent(sender_id='hero9', x=50.0, y=ego_y, yaw=0.0,
                                             intention_xy=[1.0, 2.0, 3.0])]  # malformed
        plan = PathMsg()
        for x in (0.0, 8.0):
            pose = PoseStamped()
            pose.pose.position.x, pose.pose.position.y = x, ego_y
            plan.poses.append(pose)

        def publish_step():
            # a new step each time: its objects, then comm's shared information and the
            # planner's plan of the step before (what the step renders with), then odometry
            previous = Time(sec=odom.header.stamp.sec, nanosec=odom.header.stamp.nanosec)
            nanoseconds = previous.sec * 10**9 + previous.nanosec + 100_000_000
            odom.header.stamp = Time(sec=nanoseconds // 10**9, nanosec=nanoseconds % 10**9)
            objects.header.stamp = odom.header.stamp
            shared.header.stamp = previous
            plan.header.stamp = previous
            objects_pub.publish(objects)
            shared_pub.publish(shared)
            plan_pub.publish(plan)
            odom_pub.publish(odom)
            end = time.monotonic() + 0.2
            while time.monotonic() < end:
                rclpy.spin_once(node, timeout_sec=0.05)

        def latest_bev():
            last = received['bev'][-1]
            data = np.frombuffer(bytes(last.data), np.uint8)
            return data.reshape(last.height, last.width, -1).transpose(2, 0, 1)

        def own_diagnostics():
            return [msg.status[0] for msg in received['diagnostics']
                    if msg.status and msg.status[0].name.endswith(ROLE)]

        def map_in_diagnostics():
            return any(kv.key == 'map' and kv.value == 'straight'
                       for status in own_diagnostics() for kv in status.values)

        # before the map arrives: vehicles and waypoints, no road layer, no crash
        # (topics are discovered one by one: wait for a BEV that already shows the objects)
        deadline = time.monotonic() + WAIT_S
        bev = None
        while time.monotonic() < deadline and perception_process.poll() is None:
            publish_step()
            if received['bev'] and latest_bev()[CHANNEL_INDEX['seen_vehicles']].any():
                bev = latest_bev()
                break
        assert bev is not None, 'no BEV with vehicles arrived'
        assert not bev[CHANNEL_INDEX['drivable']].any()
        assert not bev[CHANNEL_INDEX['lane_markings']].any()
        assert bev[CHANNEL_INDEX['seen_vehicles']][pixel(12.0)] == 255

        world_pub.publish(CarlaWorldInfo(map_name='straight', opendrive=XODR))
        bev = None
        while time.monotonic() < deadline and perception_process.poll() is None:
            publish_step()
            if received['bev_color'] and received['bev_local_color'] and map_in_diagnostics():
                candidate = latest_bev()
                if candidate[CHANNEL_INDEX['drivable']].any():  # the map has arrived
                    bev = candidate
                    break
        assert perception_process.poll() is None, perception_process.stdout.read()
        assert bev is not None, 'no BEV with a road layer arrived'

        msg = received['bev'][-1]
        assert msg.encoding == f'8UC{len(CHANNELS)}'
        assert (msg.height, msg.width, msg.step) == (128, 128, 128 * len(CHANNELS))
        # stamped with a step's odometry (steps advance 0.1 s from 5.1 s in publish_step)
        tenths = msg.header.stamp.sec * 10 + msg.header.stamp.nanosec / 100_000_000
        assert tenths > 51 and tenths == round(tenths)
        assert bev[CHANNEL_INDEX['ego']][pixel(0.0)] == 255
        assert bev[CHANNEL_INDEX['seen_vehicles']][pixel(12.0)] == 255
        assert bev[CHANNEL_INDEX['seen_vehicles']][pixel(26.0)] == 0
        assert bev[CHANNEL_INDEX['shared_vehicles']][pixel(26.0)] == 255
        assert bev[CHANNEL_INDEX['shared_waypoints']][pixel(35.0)] == 255
        assert bev[CHANNEL_INDEX['ego_waypoints']][pixel(4.0)] == 255
        assert bev[CHANNEL_INDEX['drivable']][pixel(0.0)] == 255
        row, col = pixel(20.0, 1.75)  # the centre line, 1.75 m left: column 60.5
        assert bev[CHANNEL_INDEX['lane_markings']][row, col:col + 2].any()

        color = received['bev_color'][-1]
        assert color.encoding == 'rgb8' and color.step == 128 * 3
        rgb = np.frombuffer(bytes(color.data), np.uint8).reshape(128, 128, 3)
        assert tuple(rgb[pixel(12.0)]) == COLOURS['seen_vehicles']
        assert tuple(rgb[pixel(26.0)]) == COLOURS['shared_vehicles']
        # what the ego sees by itself: the same BEV without what sharing added
        local = received['bev_local_color'][-1]
        rgb = np.frombuffer(bytes(local.data), np.uint8).reshape(128, 128, 3)
        assert tuple(rgb[pixel(12.0)]) == COLOURS['seen_vehicles']
        assert tuple(rgb[pixel(26.0)]) != COLOURS['shared_vehicles']
        assert tuple(rgb[pixel(35.0)]) != COLOURS['shared_waypoints']

        status = own_diagnostics()[-1]
        values = {kv.key: kv.value for kv in status.values}
        assert status.name.endswith(ROLE)
        assert int(values['malformed_objects']) >= 1
        assert int(values['malformed_shared']) >= 1
        assert values['map'] == 'straight'
    finally:
        node.destroy_node()
        rclpy.shutdown()


def test_an_odometry_ahead_of_its_objects_waits_for_them(perception_process):
    """The bridge sends odometry and objects in no fixed order; the BEV is of one step."""
    rclpy.init()
    node = rclpy.create_node('perception_order_driver')
    try:
        objects_pub = node.create_publisher(ObjectArray, f'/carla/{ROLE}/objects', 10)
        odom_pub = node.create_publisher(Odometry, f'/carla/{ROLE}/odometry', 10)
        bevs = []
        node.create_subscription(Image, f'/{ROLE}/bev', bevs.append, 10)

        def stamped(msg, tenths):
            msg.header.stamp = Time(sec=tenths // 10, nanosec=(tenths % 10) * 100_000_000)
            return msg

        def odometry(tenths):
            odom = stamped(Odometry(), tenths)
            odom.pose.pose.orientation.w = 1.0
            return odom

        def spin(seconds):
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                rclpy.spin_once(node, timeout_sec=0.02)

        def seen(msg, metres_ahead):
            data = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, -1)
            return bool(data[pixel(metres_ahead) + (CHANNEL_INDEX['seen_vehicles'],)])

        # steps in order (objects, then odometry) until a BEV shows their vehicle 20 m ahead:
        # both topics are matched and objects keep up
        tenths, deadline = 10, time.monotonic() + WAIT_S
        while time.monotonic() < deadline and perception_process.poll() is None and not any(
                seen(b, 20.0) for b in bevs):
            tenths += 1
            steady = stamped(ObjectArray(), tenths)
            steady.objects = [vehicle(1, 20.0, 0.0, 4.6, 2.0)]
            objects_pub.publish(steady)
            odom_pub.publish(odometry(tenths))
            spin(0.2)
        assert any(seen(b, 20.0) for b in bevs), 'no BEV with the objects arrived'
        # the node has caught up once the last step's BEV is out (a loaded node lags behind
        # the steps sent): only then do this step's objects keep up, so its odometry waits
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and not any(_stamp_tenths(b) == tenths for b in bevs):
            spin(0.1)
        # next step: its odometry first; its objects (the vehicle now 12 m ahead) a while later
        tenths += 1
        odom_pub.publish(odometry(tenths))
        spin(0.5)
        assert not any(_stamp_tenths(b) == tenths for b in bevs), 'rendered without its objects'
        ahead = stamped(ObjectArray(), tenths)
        ahead.objects = [vehicle(1, 12.0, 0.0, 4.6, 2.0)]
        objects_pub.publish(ahead)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and not any(_stamp_tenths(b) == tenths for b in bevs):
            spin(0.1)
        step_bevs = [b for b in bevs if _stamp_tenths(b) == tenths]
        assert len(step_bevs) == 1
        assert seen(step_bevs[0], 12.0) and not seen(step_bevs[0], 20.0)
    finally:
        node.destroy_node()
        rclpy.shutdown()


def _stamp_tenths(msg) -> int:
    return msg.header.stamp.sec * 10 + round(msg.header.stamp.nanosec / 100_000_000)


def test_a_vehicle_only_a_neighbours_decoded_view_holds_joins_the_shared_channel(
        perception_process):
    """shared_info carries each neighbour's decoded vehicle mask (paper Fig. 4c)."""
    rclpy.init()
    node = rclpy.create_node('perception_view_driver')
    try:
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                             reliability=ReliabilityPolicy.RELIABLE)
        world_pub = node.create_publisher(CarlaWorldInfo, '/carla/world_info', latched)
        world_pub.publish(CarlaWorldInfo(map_name='straight', opendrive=XODR))
        objects_pub = node.create_publisher(ObjectArray, f'/carla/{ROLE}/objects', 10)
        odom_pub = node.create_publisher(Odometry, f'/carla/{ROLE}/odometry', 10)
        shared_pub = node.create_publisher(SharedInformation, f'/{ROLE}/shared_info', 10)
        bevs, diagnostics = [], []
        node.create_subscription(Image, f'/{ROLE}/bev', bevs.append, 10)
        node.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append, 10)
        ego_y = -1.75
        truck = vehicle(1, 12.0, ego_y, 12.0, 2.6)             # seen; hides what is behind
        sender = Box(30.0, 5.25, 0.0, 4.6, 2.0)                # the neighbour, two lanes left
        hidden = Box(30.0, ego_y, 0.0, 4.6, 2.0)               # behind the truck
        # what the neighbour's decoded latent holds: itself and the car it sees, its frame
        view = BevRasterizer(CFG).render(sender, [hidden])
        mask = np.max(view[list(VIEW_CHANNELS)], axis=0)

        def neighbour(**fields):
            return NeighbourLatent(sender_id='hero8', x=sender.x, y=sender.y, yaw=sender.yaw,
                                   **fields)

        def step(tenths, neighbours):
            stamp = Time(sec=tenths // 10, nanosec=(tenths % 10) * 100_000_000)
            objects = ObjectArray()
            objects.header.stamp = stamp
            objects.objects = [truck, vehicle(2, sender.x, sender.y, 4.6, 2.0)]
            shared = SharedInformation()
            shared.header.stamp = stamp
            shared.neighbours = neighbours
            odom = Odometry()
            odom.header.stamp = stamp
            odom.pose.pose.position.y = ego_y
            odom.pose.pose.orientation.w = 1.0
            objects_pub.publish(objects)
            shared_pub.publish(shared)
            end = time.monotonic() + 0.1
            while time.monotonic() < end:
                rclpy.spin_once(node, timeout_sec=0.02)
            odom_pub.publish(odom)
            end = time.monotonic() + 0.2
            while time.monotonic() < end:
                rclpy.spin_once(node, timeout_sec=0.02)

        def bev_of(msg):
            data = np.frombuffer(bytes(msg.data), np.uint8)
            return data.reshape(msg.height, msg.width, -1).transpose(2, 0, 1)

        sent = [10]      # the last step sent: each run's steps come after the previous run's

        def run(neighbours, done):
            # a step renders the shared information of the step before: from the run's second
            # step on, every BEV holds `neighbours`, however far a loaded node lags behind
            first, deadline = sent[0] + 2, time.monotonic() + WAIT_S
            while time.monotonic() < deadline and perception_process.poll() is None:
                sent[0] += 1
                step(sent[0], neighbours)
                for msg in reversed(bevs):
                    if _stamp_tenths(msg) >= first and done(bev_of(msg)):
                        return bev_of(msg)
            return None

        car = pixel(30.0)
        # without a view: the car behind the truck is nowhere (wait for a BEV of the truck and
        # the neighbour that the sensors see)
        alone = run([neighbour()], lambda b: b[CHANNEL_INDEX['seen_vehicles']][pixel(12.0)]
                    and b[CHANNEL_INDEX['seen_vehicles']][pixel(30.0, 7.0)])
        assert alone is not None, 'no BEV with the seen vehicles arrived'
        assert not any(alone[CHANNEL_INDEX[c]][car] for c in ('seen_vehicles', 'shared_vehicles'))
        # with the neighbour's decoded view (and a malformed one, dropped and counted)
        broken = NeighbourLatent(sender_id='hero9', x=0.0, y=40.0, yaw=0.0, view_size=CFG.size,
                                 view_mask=pack_mask(mask)[:-1])
        fused = run([neighbour(view_size=CFG.size, view_mask=pack_mask(mask)), broken],
                    lambda b: b[CHANNEL_INDEX['shared_vehicles']][car])
        assert fused is not None, 'the decoded view did not reach the BEV'
        assert fused[CHANNEL_INDEX['seen_vehicles']][car] == 0
        # the neighbour and the truck the ego sees itself are not drawn twice
        assert not fused[CHANNEL_INDEX['shared_vehicles']][pixel(30.0, 7.0)]
        assert not fused[CHANNEL_INDEX['shared_vehicles']][pixel(12.0)]

        def counted():
            for msg in diagnostics:
                for status in msg.status:
                    values = {kv.key: kv.value for kv in status.values}
                    if status.name.endswith(ROLE) and int(values.get('malformed_views', 0)):
                        return True
            return False
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and not counted():
            step(10 * len(bevs) + 900, [broken])
        assert counted(), 'the malformed view was not counted'
    finally:
        node.destroy_node()
        rclpy.shutdown()

"""
sim_node's per-vehicle topics, published as CDR bytes, carry the messages it built as types.

The node steps in-process; a listener takes every vehicle's status, objects, waypoints and
odometry over DDS as typed messages and compares them, field by field, with the messages
built from the same step's state the way the node built them as Python objects.
"""
from collections import defaultdict
import math
import time

from builtin_interfaces.msg import Time
from call_sim.sim_node import SimNode
from call_vehicle.carla_wire import yaw_quaternion_zw
from call_vehicle.vehicle_control import VehicleControl
from carla_msgs.msg import CarlaEgoVehicleControl, CarlaEgoVehicleStatus
from derived_object_msgs.msg import Object, ObjectArray
from geometry_msgs.msg import PoseStamped, Quaternion
from nav_msgs.msg import Odometry, Path
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.serialization import deserialize_message, serialize_message
from shape_msgs.msg import SolidPrimitive
from wire_compare import assert_same_message
import yaml

SCENARIO = {'map': 'four_lane', 'num_controlled': 3, 'num_background': 8, 'seed': 6,
            'respawn_done': True,
            'termination': {'on_collision': False, 'on_off_road': False}}
TOPICS = {'vehicle_status': CarlaEgoVehicleStatus, 'objects': ObjectArray,
          'waypoints': Path, 'odometry': Odometry}
RADIUS = 30.0


def _quaternion(yaw: float) -> Quaternion:
    z, w = yaw_quaternion_zw(yaw)
    return Quaternion(z=z, w=w)


def _object(state, stamp: Time) -> Object:
    obj = Object()
    obj.header.stamp, obj.header.frame_id = stamp, 'map'
    obj.id = state.actor_id
    obj.detection_level = Object.OBJECT_TRACKED
    obj.object_classified = True
    obj.pose.position.x, obj.pose.position.y = state.x, state.y
    obj.pose.orientation = _quaternion(state.yaw)
    obj.twist.linear.x = state.speed * math.cos(state.yaw)
    obj.twist.linear.y = state.speed * math.sin(state.yaw)
    obj.accel.linear.x = state.accel * math.cos(state.yaw)
    obj.accel.linear.y = state.accel * math.sin(state.yaw)
    obj.shape.type = SolidPrimitive.BOX
    obj.shape.dimensions = [state.length, state.width, 1.5]
    obj.classification = Object.CLASSIFICATION_CAR
    obj.classification_certainty = 255
    return obj


def typed_messages(sim: SimNode, role: str, stamp: Time) -> dict:
    """Build one vehicle's messages of the current step as Python messages (the reference)."""
    obs = sim.env.observe(role)
    ego = obs.ego
    status = CarlaEgoVehicleStatus(velocity=float(ego.speed), orientation=_quaternion(ego.yaw))
    status.header.stamp, status.header.frame_id = stamp, 'map'
    status.acceleration.linear.x = float(ego.accel)
    applied = sim.applied.get(role, VehicleControl())
    status.control = CarlaEgoVehicleControl(throttle=applied.throttle, steer=applied.steer,
                                            brake=applied.brake, hand_brake=applied.hand_brake)
    array = ObjectArray(objects=[
        _object(s, stamp) for s in sim.env.vehicle_states() if s.actor_id != ego.actor_id
        and (s.x - ego.x) ** 2 + (s.y - ego.y) ** 2 <= RADIUS ** 2])
    array.header.stamp, array.header.frame_id = stamp, 'map'
    path = Path()
    path.header.stamp, path.header.frame_id = stamp, 'map'
    for x, y in obs.route:
        pose = PoseStamped()
        pose.header = path.header
        pose.pose.position.x, pose.pose.position.y = float(x), float(y)
        pose.pose.orientation.w = 1.0
        path.poses.append(pose)
    odom = Odometry()
    odom.header.stamp, odom.header.frame_id, odom.child_frame_id = stamp, 'map', role
    odom.pose.pose.position.x, odom.pose.pose.position.y = ego.x, ego.y
    odom.pose.pose.orientation = _quaternion(ego.yaw)
    odom.twist.twist.linear.x = ego.speed
    # as a subscriber gets it: float32 fields rounded by rclpy's serialization
    return {topic: deserialize_message(serialize_message(msg), type(msg)) for topic, msg in
            (('vehicle_status', status), ('objects', array), ('waypoints', path),
             ('odometry', odom))}


def _stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def test_subscribers_receive_the_messages_the_node_built_as_types(tmp_path):
    """Eight steps (one a re-publication), commands applied: every message equals the typed."""
    scenario = tmp_path / 'scenario.yaml'
    scenario.write_text(yaml.safe_dump(SCENARIO))
    rclpy.init()
    try:
        sim = SimNode(parameter_overrides=[Parameter('scenario', value=str(scenario)),
                                           Parameter('objects_radius', value=RADIUS)])
        listener = rclpy.create_node('sim_wire_listener')
        executor = SingleThreadedExecutor()
        executor.add_node(listener)             # the simulator is stepped here, not spun
        got = defaultdict(list)
        for role in sim.env.possible_agents:
            for topic, msg_type in TOPICS.items():
                listener.create_subscription(msg_type, f'/carla/{role}/{topic}',
                                             got[role, topic].append, 100)
        publishers = [pub for pubs in sim.pubs.values() for name, pub in pubs.items()
                      if name != 'info']
        deadline = time.monotonic() + 60.0
        while any(pub.get_subscription_count() < 1 for pub in publishers) \
                and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        expected = {}
        for tick in range(8):
            if tick:
                actions = {'hero0': VehicleControl(throttle=0.1 * tick, steer=-0.07 * tick,
                                                   brake=0.05 * tick, hand_brake=tick % 2 == 0)}
                sim.applied.update(actions)
                _, sim.rewards, _, _, sim.infos = sim.env.step(actions)
            stamp = Time(sec=sim.now_nanoseconds() // 10**9,
                         nanosec=sim.now_nanoseconds() % 10**9)
            for role in sim.env.agents:
                for topic, msg in typed_messages(sim, role, stamp).items():
                    expected[role, topic, sim.now_nanoseconds()] = msg
            sim.publish_world(republish=tick == 4)
        wanted = [(role, topic, stamp) for role, topic, stamp in expected
                  if topic != 'waypoints']
        while time.monotonic() < deadline + 60.0 and not all(
                stamp in {_stamp_ns(m) for m in got[role, topic]}
                for role, topic, stamp in wanted):
            executor.spin_once(timeout_sec=0.05)
        while time.monotonic() < deadline + 90.0 and not all(
                got[role, 'waypoints'] for role in sim.env.agents):
            executor.spin_once(timeout_sec=0.05)
        listener.destroy_node()
        sim.close()
        sim.destroy_node()
    finally:
        rclpy.shutdown()
    for role, topic, stamp in wanted:
        assert stamp in {_stamp_ns(m) for m in got[role, topic]}, (role, topic, stamp)
    for (role, topic), messages in got.items():
        for msg in messages:
            assert_same_message(msg, expected[role, topic, _stamp_ns(msg)], f'{role} {topic}')
    # waypoints: the re-published step's (and any route change's)
    assert all(got[role, 'waypoints'] for role in sim.env.agents)
    assert any(len(got[role, 'objects'][-1].objects) for role in sim.env.agents)
    assert any(m.control.throttle > 0.0 for m in got['hero0', 'vehicle_status'])

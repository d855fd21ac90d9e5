"""
ROS 2 wrapper of MultiVehicleEnv speaking the CARLA ROS bridge contract (see DEVELOPERS.md).

Per CALL vehicle R: publishes /carla/R/odometry, /carla/R/vehicle_status, /carla/R/objects,
/carla/R/waypoints, /carla/R/vehicle_info (once); subscribes /carla/R/vehicle_control_cmd.
Global: /carla/world_info (transient local, OpenDRIVE map), /carla/status, /clock,
/diagnostics (per-vehicle measures + lockstep counters); /carla/control pauses/steps.
The node is the clock source: it runs on wall-time timers and stamps with simulation time.
`objects_radius` > 0 limits /carla/R/objects to nearby actors (the bridge sends all of them).
While a tick waits for commands the current step is re-published every `republish_period`
(same stamps) so late-joining controllers get an observation; controllers should command
once per new stamp. Waypoints are sent when the route changes (every K steps, as the
waypoint publisher does) and with every re-publication.
Lockstep: a command completes the open tick only when its header.stamp is the published sim
time (the step it answers) or zero (unstamped external controllers, e.g. manual control).
Commands stamped for another step (a pipeline that fell behind, a controlled stop for a
stale state) are still applied (a stopping vehicle must brake) but the tick waits for the
current answer or the lockstep timeout; they are counted as `stale_commands`.
"""
import math
import time
from typing import Any

from builtin_interfaces.msg import Time
from call_common.nav_cdr import serialize_odometry, serialize_path_xy
from call_common.node_main import spin_until_signal
from call_common.parameters import declare_from_yaml
from call_common.qos_events import QUIET_PUB, QUIET_SUB
from call_sim.bridge_cdr import (EncodedObject, serialize_object_array,
                                 serialize_vehicle_status, WireObject)
from call_sim.env import MultiVehicleEnv
from call_sim.lockstep import Lockstep
from call_sim.types import VehicleState
from call_vehicle.carla_wire import yaw_quaternion_zw
from call_vehicle.vehicle_control import sanitize, VehicleControl
from carla_msgs.msg import (CarlaControl, CarlaEgoVehicleControl, CarlaEgoVehicleInfo,
                            CarlaEgoVehicleInfoWheel, CarlaEgoVehicleStatus, CarlaStatus,
                            CarlaWorldInfo)
from derived_object_msgs.msg import Object, ObjectArray
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from nav_msgs.msg import Odometry, Path
import numpy as np
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from rclpy.time import Time as RosTime
from rosgraph_msgs.msg import Clock
from shape_msgs.msg import SolidPrimitive

VEHICLE_HEIGHT = 1.5
MAP_FRAME = 'map'
NO_CONTROL = VehicleControl()     # status of a vehicle not yet commanded

try:  # Kilted and newer: dispatches ready entities from C++ (no Python wait set per wake-up)
    from rclpy.experimental import EventsExecutor as SimExecutor
except ImportError:  # Humble, Jazzy
    SimExecutor = SingleThreadedExecutor


def sim_nanoseconds(seconds: float) -> int:
    """Convert simulation seconds to integer nanoseconds (the unit stamps are compared in)."""
    return int(round(seconds * 1e9))


def sim_stamp(nanoseconds: int) -> Time:
    """Convert simulation nanoseconds to a builtin_interfaces/Time."""
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def control_from_msg(msg: CarlaEgoVehicleControl) -> VehicleControl:
    """CARLA control message -> core type (validated later by `sanitize`)."""
    return VehicleControl(throttle=float(msg.throttle), steer=float(msg.steer),
                          brake=float(msg.brake), hand_brake=bool(msg.hand_brake),
                          reverse=bool(msg.reverse))


def wire_object(state: VehicleState) -> WireObject:
    """Describe a vehicle as a tracked, classified car (derived_object_msgs/Object, map)."""
    z, w = yaw_quaternion_zw(state.yaw)
    cos, sin = math.cos(state.yaw), math.sin(state.yaw)
    return WireObject(object_id=state.actor_id, detection_level=Object.OBJECT_TRACKED,
                      object_classified=True, pose=(state.x, state.y, 0.0, 0.0, 0.0, z, w),
                      twist=(state.speed * cos, state.speed * sin, 0.0, 0.0, 0.0, 0.0),
                      accel=(state.accel * cos, state.accel * sin, 0.0, 0.0, 0.0, 0.0),
                      shape_type=SolidPrimitive.BOX,
                      dimensions=(state.length, state.width, VEHICLE_HEIGHT),
                      classification=Object.CLASSIFICATION_CAR, classification_certainty=255)


class SimNode(Node):
    """Steps the embedded simulator in lockstep with the CALL vehicles' commands."""

    def __init__(self, **node_options: Any) -> None:
        """Declare the parameters (config/sim_node.yaml), load the scenario, wire the topics."""
        super().__init__('carla_sim', **node_options)
        p = declare_from_yaml(self, 'call_sim', 'sim_node.yaml')
        self.max_ticks = p['max_ticks']
        self.republish_period = p['republish_period']
        self.objects_radius = p['objects_radius']
        if not p['start_time'] > 0.0:
            raise ValueError(f'start_time must be > 0 s (a zero stamp is unset in ROS), '
                             f'got {p["start_time"]}')
        self.start_nanoseconds = sim_nanoseconds(p['start_time'])
        self.env = MultiVehicleEnv.from_scenario(p['scenario'])
        _, self.infos = self.env.reset()
        self.lockstep = Lockstep(list(self.env.agents), p['lockstep_timeout'],
                                 startup_timeout=p['startup_timeout'])
        self.commands: dict[str, VehicleControl] = {}
        self.applied: dict[str, VehicleControl] = {}
        self.bad_commands = {'rejected': 0, 'clamped': 0}
        self.rewards: dict[str, float] = {}
        self.routes_sent: dict[str, np.ndarray] = {}     # last /carla/R/waypoints per role
        self.paused = False
        self.step_once = False
        self.finished = False
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.clock_pub = self.create_publisher(Clock, '/clock', 10, event_callbacks=QUIET_PUB)
        self.status_pub = self.create_publisher(CarlaStatus, '/carla/status', 10,
                                                event_callbacks=QUIET_PUB)
        self.diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10,
                                              event_callbacks=QUIET_PUB)
        world_pub = self.create_publisher(CarlaWorldInfo, '/carla/world_info', latched,
                                          event_callbacks=QUIET_PUB)
        world_pub.publish(CarlaWorldInfo(map_name=self.env.road.name,
                                         opendrive=self.env.opendrive()))
        self.world_pub = world_pub
        self.create_subscription(CarlaControl, '/carla/control', self.on_carla_control, 10,
                                 event_callbacks=QUIET_SUB)
        self.pubs = {}
        for role in self.env.possible_agents:
            prefix = f'/carla/{role}'
            self.pubs[role] = {
                'odometry': self.create_publisher(Odometry, f'{prefix}/odometry', 10,
                                                  event_callbacks=QUIET_PUB),
                'status': self.create_publisher(CarlaEgoVehicleStatus,
                                                f'{prefix}/vehicle_status', 10,
                                                event_callbacks=QUIET_PUB),
                'objects': self.create_publisher(ObjectArray, f'{prefix}/objects', 10,
                                                 event_callbacks=QUIET_PUB),
                'waypoints': self.create_publisher(Path, f'{prefix}/waypoints', 10,
                                                   event_callbacks=QUIET_PUB),
                'info': self.create_publisher(CarlaEgoVehicleInfo, f'{prefix}/vehicle_info',
                                              latched, event_callbacks=QUIET_PUB),
            }
            self.pubs[role]['info'].publish(self.vehicle_info(role))
            self.create_subscription(
                CarlaEgoVehicleControl, f'{prefix}/vehicle_control_cmd',
                lambda msg, role=role: self.on_command(role, msg), 10, event_callbacks=QUIET_SUB)
        self.publish_world()
        self.lockstep.open_tick(time.monotonic(), stamp=self.now_nanoseconds())
        self.create_timer(p['publish_period'], self.on_timer)
        self.get_logger().info(
            f'scenario {p["scenario"]!r}: map {self.env.road.name}, '
            f'CALL vehicles {self.env.agents}, '
            f'{len(self.env.states) - len(self.env.agents)} background; lockstep timeout '
            f'{self.lockstep.timeout} s')

    def now_nanoseconds(self) -> int:
        """Return the simulation time of the current step [ns]: start_time + step * dt."""
        return self.start_nanoseconds + sim_nanoseconds(self.env.time)

    def vehicle_info(self, role: str) -> CarlaEgoVehicleInfo:
        """Describe the vehicle as the bridge does (wheel steer limits in radians)."""
        info = CarlaEgoVehicleInfo(type='vehicle.call.kinematic_bicycle', rolename=role)
        info.id = self.env.possible_agents.index(role) + 1
        for front in (True, True, False, False):
            info.wheels.append(CarlaEgoVehicleInfoWheel(
                max_steer_angle=float(self.env.bicycle.max_steer_angle if front else 0.0)))
        return info

    def on_command(self, role: str, msg: CarlaEgoVehicleControl) -> None:
        """Validate and store (apply) a command; it completes the tick if it answers it."""
        clean, reasons = sanitize(control_from_msg(msg))
        stamp = RosTime.from_msg(msg.header.stamp).nanoseconds
        if stamp not in (0, self.lockstep.stamp) and role in self.lockstep.commanded:
            # an answer to another step (e.g. to a re-sent one) never replaces the one held
            # for the open tick
            self.lockstep.command(role, stamp)
            return
        if clean is None:
            self.bad_commands['rejected'] += 1
            self.get_logger().warning(f'{role}: command {reasons[0]}; keeping the last one')
        else:
            if reasons:
                self.bad_commands['clamped'] += 1
                self.get_logger().warning(f'{role}: command {"; ".join(reasons)}')
            self.commands[role] = clean
        if self.lockstep.command(role, stamp):
            self.on_timer()     # step as soon as the last answer arrives, not at the next poll

    def on_carla_control(self, msg: CarlaControl) -> None:
        """PLAY / PAUSE / STEP_ONCE as the bridge's /carla/control."""
        if msg.command == CarlaControl.PAUSE:
            self.paused = True
        elif msg.command == CarlaControl.PLAY:
            self.paused = False
        elif msg.command == CarlaControl.STEP_ONCE:
            self.step_once = True

    def on_timer(self) -> None:
        """Step when the lockstep tick is due (never blocks); also called on each answer."""
        if self.finished:
            return
        if self.paused and not self.step_once:
            self.lockstep.open_tick(time.monotonic())
            return
        now = time.monotonic()
        if not self.lockstep.due(now):
            if now - self.published_at >= self.republish_period:
                self.publish_world(republish=True)  # same step again, for late joiners
            return
        self.step_once = False
        if self.lockstep.last_missing:
            self.get_logger().warning(
                f'missed tick {self.env.step_count + 1}: no command from '
                f'{self.lockstep.last_missing} within {self.lockstep.timeout} s')
        actions = {role: self.commands.pop(role) for role in list(self.commands)
                   if role in self.env.agents}
        self.applied.update(actions)
        _, self.rewards, _, _, self.infos = self.env.step(actions)
        self.publish_world()
        self.lockstep.open_tick(time.monotonic(), list(self.env.agents),
                                self.now_nanoseconds())
        if not self.env.agents or (self.max_ticks and self.env.step_count >= self.max_ticks):
            self.finished = True
            self.get_logger().info(f'finished after {self.env.step_count} ticks '
                                   f'({self.lockstep.missed_ticks} missed)')

    def publish_world(self, republish: bool = False) -> None:
        """Publish /clock, status, per-vehicle topics and diagnostics of the current step."""
        self.published_at = time.monotonic()
        stamp = sim_stamp(self.now_nanoseconds())
        self.clock_pub.publish(Clock(clock=stamp))
        self.status_pub.publish(CarlaStatus(frame=self.env.step_count,
                                            fixed_delta_seconds=self.env.dt,
                                            synchronous_mode=True,
                                            synchronous_mode_running=not self.paused))
        sec, nanosec = stamp.sec, stamp.nanosec
        states = self.env.vehicle_states()
        objects: dict[int, EncodedObject] = {}  # made once, and only for vehicles someone sees
        radius_sq = self.objects_radius ** 2 if self.objects_radius > 0.0 else math.inf
        for role in self.env.agents:
            if republish and role in self.lockstep.commanded:
                continue    # it answered this step: a re-sent one would only be answered again
            obs = self.env.observe(role)
            ego = obs.ego
            near = [index for index, s in enumerate(states) if s.actor_id != ego.actor_id
                    and (s.x - ego.x) ** 2 + (s.y - ego.y) ** 2 <= radius_sq]
            for index in near:
                if index not in objects:
                    objects[index] = EncodedObject(sec, nanosec, MAP_FRAME,
                                                   wire_object(states[index]))
            self.publish_vehicle(role, obs, sec, nanosec, [objects[index] for index in near],
                                 republish)
        self.diag_pub.publish(self.diagnostics(stamp))

    def publish_vehicle(self, role, obs, sec: int, nanosec: int, others: list[EncodedObject],
                        republish: bool = False) -> None:
        """
        Vehicle status, objects, (new or re-sent) waypoints, then odometry of one vehicle.

        Odometry goes last: it is the step's trigger for perception, which then already holds
        the same step's objects and route. Each is published as the CDR bytes of the typed
        message (`bridge_cdr`, `nav_cdr`): the same message on the topic, without building
        its Python objects.
        """
        ego, pubs = obs.ego, self.pubs[role]
        z, w = yaw_quaternion_zw(ego.yaw)
        applied = self.applied.get(role, NO_CONTROL)
        pubs['status'].publish(serialize_vehicle_status(
            sec, nanosec, MAP_FRAME, velocity=float(ego.speed),
            acceleration=(float(ego.accel), 0.0, 0.0, 0.0, 0.0, 0.0),
            orientation=(0.0, 0.0, z, w),
            control=(applied.throttle, applied.steer, applied.brake, applied.hand_brake,
                     False, 0, False)))
        pubs['objects'].publish(serialize_object_array(sec, nanosec, MAP_FRAME, others))
        # the route changes every K steps: as the waypoint publisher, send changes
        if republish or not np.array_equal(self.routes_sent.get(role), obs.route):
            self.routes_sent[role] = obs.route
            pubs['waypoints'].publish(serialize_path_xy(sec, nanosec, MAP_FRAME, obs.route))
        pubs['odometry'].publish(serialize_odometry(
            sec, nanosec, MAP_FRAME, role, pose=(ego.x, ego.y, 0.0, 0.0, 0.0, z, w),
            twist=(ego.speed, 0.0, 0.0, 0.0, 0.0, 0.0)))

    def diagnostics(self, stamp: Time) -> DiagnosticArray:
        """Per-step measures per vehicle plus global lockstep and command counters."""
        def kv(key, value):
            return KeyValue(key=key, value=str(value))
        array = DiagnosticArray()
        array.header.stamp = stamp
        array.status.append(DiagnosticStatus(
            level=DiagnosticStatus.WARN if self.lockstep.last_missing else DiagnosticStatus.OK,
            name='call_sim: lockstep', hardware_id='call_sim', message='running',
            values=[kv('step', self.env.step_count),
                    kv('time', f'{self.now_nanoseconds() * 1e-9:.1f}'),
                    kv('missed_ticks', self.lockstep.missed_ticks),
                    kv('last_missing', ','.join(self.lockstep.last_missing)),
                    kv('stale_commands', self.lockstep.stale_commands),
                    kv('rejected_commands', self.bad_commands['rejected']),
                    kv('clamped_commands', self.bad_commands['clamped']),
                    kv('vehicles', len(self.env.states)),
                    kv('active_agents', ','.join(self.env.agents))]))
        for role, info in self.infos.items():
            level = DiagnosticStatus.ERROR if info['collision'] or info['off_road'] else \
                DiagnosticStatus.OK
            array.status.append(DiagnosticStatus(
                level=level, name=f'call_sim: {role}', hardware_id=role, message='measures',
                values=[kv('ttc', f'{info["ttc"]:.3f}'), kv('collision', info['collision']),
                        kv('off_road', info['off_road']), kv('jerk', f'{info["jerk"]:.3f}'),
                        kv('reached', info['reached']), kv('speed', f'{info["speed"]:.3f}'),
                        kv('progress', f'{info["progress"]:.1f}'),
                        kv('route_length', f'{info["route_length"]:.1f}'),
                        kv('accel', f'{info["accel"]:.3f}'),
                        kv('reward', f'{self.rewards.get(role, 0.0):.4f}')]))
        return array

    def close(self) -> None:
        """Release SUMO."""
        self.env.close()


def main(args: list[str] | None = None) -> int:
    """Run until max_ticks or SIGINT/SIGTERM (exit 0); a bad scenario or parameter exits 2."""
    # one executor for the whole run: rclpy.spin_once(node) adds and removes the node (and
    # rebuilds its wait set) on every call
    return spin_until_signal(SimNode, args, 'sim_node', start_errors=(ValueError, OSError),
                             on_stop=lambda node: node.close(),
                             finished=lambda node: node.finished, make_executor=SimExecutor)


if __name__ == '__main__':
    raise SystemExit(main())

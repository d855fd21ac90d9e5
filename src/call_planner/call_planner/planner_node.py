"""
ROS 2 node: plan from each LatentState, command the vehicle, publish plan and diagnostics.

Only translates messages and parameters; the planning step is `plan_stage.PlanStage` (the
look-ahead of `replanning` and the driver, the same object the fleet pipeline plans with),
the fallback in `safety`, the TTC safety monitor in `ttc_monitor` (it reads the vehicle
channels of the fused BEV, `/<role>/bev`), the junction gate in `junction_gate` (the map's
junctions from `/carla/world_info`'s OpenDRIVE), the control mapping in `control_output`, the
waypoints in `intention`, the accepted neighbours' tracks in `shared_tracks` (from
`shared_info`: step t plans with the neighbours comm accepted at step t - 1, those the world
model observed step t with).

Stamps: a command answers the model state it was computed for, so a planned command carries
its latent state's stamp, and a controlled stop carries the stamp of the newest latent state
the planner processed (the stale one). The lockstep simulator steps only on commands that
answer the step it published; stamping watchdog stops with the clock would let it run ahead
of a slow pipeline. A world model that has been silent past the wall-time deadline (2 s, twice
the lockstep timeout) is presumed gone, not slow: its stops then answer the current step, so
the other vehicles keep their pace instead of waiting out the lockstep timeout every tick.
Before the first latent state there is nothing to answer: the watchdog then reports the stop
but does not command the vehicle.
"""
import math
import time
from typing import Any, Optional

from call_common.batch_timer import BatchTimer
from call_common.msg_conversions import stamp_nanoseconds, stamp_seconds, yaw_from_xyzw
from call_common.nav_cdr import (NavCdrError, odometry_fields, path_xy, RawOdometry,
                                 read_odometry, read_path_xy, serialize_path_xy)
from call_common.node_main import spin_until_signal
from call_common.parameters import declare_from_yaml
from call_common.qos_events import QUIET_PUB, QUIET_SUB
from call_common.recent_steps import RecentSteps
from call_msgs.msg import Action, LatentState, SharedInformation
from call_perception.bev_raster import BevConfig, CHANNEL_INDEX, CHANNELS
from call_planner.junction_gate import after_monitor, gate_from_params, GateVerdict
from call_planner.lookahead_batch import LookaheadBatcher, Outcome
from call_planner.plan_stage import PlanStage
from call_planner.replanning import Decision
from call_planner.route_cost import RouteContext
from call_planner.safety import InputWatchdog, model_state_fault, SafetyConfig
from call_planner.shared_tracks import shared_tracks, SharedState
from call_planner.ttc_monitor import (Assessment, BevGeometry, COMFORTABLE, MonitorConfig,
                                      override_accel, TtcMonitor)
from call_planner.turn_assist import turn_assist_from_params
from call_vehicle.carla_wire import float32
from call_vehicle.driver import Command
from call_vehicle.intention import intention_waypoints
from call_world_model import checkpoint
from carla_msgs.msg import CarlaEgoVehicleControl, CarlaEgoVehicleStatus, CarlaWorldInfo
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point
from nav_msgs.msg import Odometry, Path
import numpy as np
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header
import torch
from visualization_msgs.msg import Marker, MarkerArray

LATENT = 'latent_state'
ODOMETRY = 'odometry'
BEV = 'bev'
POSES_KEPT = 50         # odometry poses remembered by stamp (the BEV's pose is looked up)
SHARED_KEPT = 8         # steps of shared information kept by stamp (as the world model)


class PlannerNode(Node):
    """
    One vehicle's planner: `latent_state` -> /carla/<role>/vehicle_control_cmd.

    Its own topics (`latent_state`, `action`, `plan`, `plan_markers`, `shared_info`) are
    relative, in the vehicle's namespace. Parameters and defaults: config/planner.yaml.
    """

    def __init__(self, **node_options: Any) -> None:
        """Read parameters, load the checkpoint, create topics and the watchdog timer."""
        super().__init__('planner', **node_options)   # composition: cli_args
        self.batch: Optional[BatchTimer] = None   # destroy_node reads it after any failure
        # stamps must match the simulator's ticks: the planner always runs on /clock time
        self.set_parameters([Parameter('use_sim_time', value=True)])
        p = declare_from_yaml(self, 'call_planner', 'planner.yaml')
        self.role = p['role_name']
        torch.set_num_threads(int(p['threads']))
        if not p['checkpoint']:
            raise ValueError('parameter checkpoint is empty: the planner needs a world model')
        loaded = checkpoint.load_shared(str(p['checkpoint']))
        if not loaded.meta.get('has_actor_critic', False):
            raise ValueError(f'checkpoint {p["checkpoint"]!r} has no actor-critic: the '
                             'look-ahead needs its policy and value')
        self.world_model = loaded.world_model.eval()
        self.actor_critic = loaded.actor_critic.eval()
        self.cfg = loaded.cfg
        self.stage = PlanStage(self.world_model, self.actor_critic, p)
        self.driver = self.stage.driver
        self.actions, self.bicycle = self.driver.actions, self.driver.bicycle
        self.control_model = self.driver.control_model
        self.lookahead = self.stage.lookahead
        self.policy = self.stage.policy
        self.safety = SafetyConfig(deadline_sim=float(p['deadline_sim']),
                                   deadline_wall=float(p['deadline_wall']),
                                   comfortable_decel=float(p['comfortable_decel']))
        # the size perception renders at (the world model's input), same field of view
        bev_cfg = BevConfig.from_yaml(str(p['bev_config']) or None).at_size(p['bev_size'])
        self.monitor_config = MonitorConfig.from_params(p)
        self.bev_size = bev_cfg.size
        self.monitor = TtcMonitor(self.monitor_config, BevGeometry(
            bev_cfg.metres_per_pixel, bev_cfg.ego_row, bev_cfg.ego_col))
        self.verdict: Optional[Assessment] = None
        # the junction gate needs the monitor's tracks and the map (/carla/world_info): until
        # the map arrives it knows no junction
        self.params = p
        self.gate = gate_from_params(p, None) if self.monitor_config.enabled else None
        self.gate_verdict: Optional[GateVerdict] = None
        self.turn_assist = turn_assist_from_params(p)
        # with the monitor on, a stale BEV is a stale input: the monitor would be blind
        watched = [LATENT, ODOMETRY] + ([BEV] if self.monitor_config.enabled else [])
        self.watchdog = InputWatchdog(watched, self.safety, time.monotonic())
        self.poses: RecentSteps[int, tuple[float, float, float]] = RecentSteps(POSES_KEPT)

        self.pose: Optional[tuple[float, float, float]] = None
        self.speed = 0.0
        self.yaw_rate = 0.0
        self.status_speed: Optional[float] = None
        # stamp [ns] -> the speed vehicle_status / odometry gave for that step
        self.status_speeds: RecentSteps[int, float] = RecentSteps(POSES_KEPT)
        self.odometry_speeds: RecentSteps[int, float] = RecentSteps(POSES_KEPT)
        self.pending_latent: Optional[LatentState] = None
        # stamp [ns] -> message, in arrival order (the last one is the markers')
        self.shared_by_stamp: RecentSteps[int, SharedInformation] = RecentSteps(SHARED_KEPT)
        # the monitor and the conflict cost take the neighbours' stated tracks
        self.uses_shared = self.monitor_config.enabled and self.monitor_config.shared_tracks
        self.waypoints = np.zeros((0, 2))
        self.route = np.zeros((0, 2))   # the planning module's waypoints ahead (route cost)
        self.stop_reason = ''
        self.answered_stamp = None      # stamp of the newest latent state processed
        # (sec, nanosec) of the newest latent state, its Action and control (re-sent states)
        self.last_answer: tuple = (None, None, None)
        # overrides are counted apart from the planned steps, so the learned planner's share
        # of the driving stays visible: planned / (planned + overrides)
        self.counts = {'ticks': 0, 'stops': 0, 'dropped': 0, 'plan_errors': 0, 'planned': 0,
                       'overrides_comfortable': 0, 'overrides_emergency': 0,
                       'dropped_bev': 0, 'stale_inputs': 0, 'dropped_shared': 0,
                       'unmatched_shared': 0, 'junction_holds': 0, 'dropped_map': 0,
                       'turn_assisted': 0}
        # /diagnostics is for people and monitors (~1 Hz); a change of level or message
        # (a stop and its reason) still goes out on the step it happens
        self.diagnostics_period = float(p['diagnostics_period'])
        self._diag_last: Optional[tuple] = None     # (level, message, sim time [s])

        role = self.role
        self.control_pub = self.create_publisher(
            CarlaEgoVehicleControl, f'/carla/{role}/vehicle_control_cmd', 10,
            event_callbacks=QUIET_PUB)
        self.action_pub = self.create_publisher(Action, 'action', 10,
                                                event_callbacks=QUIET_PUB)
        self.plan_pub = self.create_publisher(Path, 'plan', 10,
                                              event_callbacks=QUIET_PUB)
        self.marker_pub = self.create_publisher(MarkerArray, 'plan_markers', 10,
                                                event_callbacks=QUIET_PUB)
        self.diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10,
                                              event_callbacks=QUIET_PUB)
        self.create_subscription(LatentState, 'latent_state', self.on_latent, 10,
                                 event_callbacks=QUIET_SUB)
        self.shared_sub = None          # see follow_shared
        # Path and Odometry are taken raw: the few numbers read from the bytes (`nav_cdr`)
        self.create_subscription(Odometry, f'/carla/{role}/odometry', self.on_odometry_raw,
                                 10, event_callbacks=QUIET_SUB, raw=True)
        self.create_subscription(CarlaEgoVehicleStatus, f'/carla/{role}/vehicle_status',
                                 self.on_status, 10, event_callbacks=QUIET_SUB)
        self.create_subscription(Path, f'/carla/{role}/waypoints', self.on_route_raw, 10,
                                 event_callbacks=QUIET_SUB, raw=True)
        if self.monitor_config.enabled:
            self.create_subscription(Image, 'bev', self.on_bev, 10,
                                     event_callbacks=QUIET_SUB)
        if self.gate is not None:
            latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                                 reliability=ReliabilityPolicy.RELIABLE)
            self.create_subscription(CarlaWorldInfo, '/carla/world_info', self.on_world,
                                     latched, event_callbacks=QUIET_SUB)
        self.follow_shared(False)
        # steady clock: the watchdog must fire even when /clock has stopped
        self.create_timer(float(p['watchdog_period']), self.on_watchdog,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        # the planners of a container that share the model plan their look-aheads of one
        # tick together (call_planner.lookahead_batch), as the world-model nodes observe:
        # armed by the step that opens a batch, the zero-period timer fires after the latent
        # states already waiting in the executor
        self.batch = BatchTimer(self, LookaheadBatcher.for_model(self.world_model))

    # -- inputs -------------------------------------------------------------------------
    def _sim_now(self) -> Optional[float]:
        now = self.get_clock().now().nanoseconds * 1e-9
        return now if now > 0.0 else None

    def on_odometry_raw(self, raw: bytes) -> None:
        """Take a serialized Odometry (same result as `on_odometry` on its bytes)."""
        try:
            odometry = read_odometry(raw)
        except NavCdrError:
            self.counts['dropped'] += 1
            return
        self._take_odometry(odometry)

    def on_odometry(self, msg: Odometry) -> None:
        """Keep the pose and speed used by the control mapping and the waypoints."""
        self._take_odometry(odometry_fields(msg))

    def _take_odometry(self, odometry: RawOdometry) -> None:
        values = (odometry.x, odometry.y, odometry.vx, odometry.vy)
        if not all(math.isfinite(v) for v in values):
            self.counts['dropped'] += 1
            return
        self.pose = (odometry.x, odometry.y,
                     yaw_from_xyzw(odometry.qx, odometry.qy, odometry.qz, odometry.qw))
        # float32 as vehicle_status carries it, so either source gives the same speed
        self.speed = float32(math.hypot(odometry.vx, odometry.vy))
        yaw_rate = odometry.wz
        self.yaw_rate = yaw_rate if math.isfinite(yaw_rate) else 0.0
        self.poses[odometry.stamp_ns] = self.pose
        self.odometry_speeds[odometry.stamp_ns] = self.speed
        self.watchdog.feed(ODOMETRY, odometry.stamp_seconds, time.monotonic())
        self._take_pending()

    def on_status(self, msg: CarlaEgoVehicleStatus) -> None:
        """Prefer the bridge's speed when vehicle_status is published."""
        if math.isfinite(msg.velocity):
            self.status_speed = abs(float(msg.velocity))
            stamp = msg.header.stamp
            self.status_speeds[stamp_nanoseconds(stamp)] = self.status_speed
        else:
            self.counts['dropped'] += 1
        self._take_pending()

    def _inputs_of(self, msg: LatentState) -> Optional[tuple]:
        """Return the (pose, speed) of the state's step, None while one is missing."""
        stamp = stamp_nanoseconds(msg.header.stamp)
        pose = self.poses.get(stamp)
        speed = self.status_speeds.get(stamp) if self.status_speed is not None \
            else self.odometry_speeds.get(stamp)
        return None if pose is None or speed is None else (pose, speed)

    def _take_pending(self) -> None:
        """Plan a state that waited for its step's odometry or status, now that they came."""
        pending = self.pending_latent
        if pending is not None and self._inputs_of(pending) is not None:
            self.pending_latent = None
            self.on_latent(pending)

    def on_bev(self, msg: Image) -> None:
        """Give the vehicle channels of the fused BEV to the TTC monitor (malformed: dropped)."""
        channels = len(CHANNELS)
        size = self.bev_size
        if (msg.encoding != f'8UC{channels}' or msg.height != size or msg.width != size
                or len(msg.data) != size * size * channels):
            self.counts['dropped_bev'] += 1
            return
        stamp = msg.header.stamp
        pose = self.poses.get(stamp_nanoseconds(stamp), self.pose)
        if pose is None:
            self.counts['dropped_bev'] += 1
            return
        pixels = np.frombuffer(msg.data, dtype=np.uint8).reshape(size, size, channels)
        self.monitor.observe(stamp_seconds(stamp),
                             pixels[:, :, CHANNEL_INDEX['seen_vehicles']] > 127,
                             pixels[:, :, CHANNEL_INDEX['shared_vehicles']] > 127, pose)
        self.watchdog.feed(BEV, stamp_seconds(stamp), time.monotonic())

    def on_world(self, msg: CarlaWorldInfo) -> None:
        """Take the map's junctions for the junction gate (malformed: dropped and counted)."""
        try:
            self.gate = gate_from_params(self.params, msg.opendrive)
        except ValueError as error:
            self.counts['dropped_map'] += 1
            self.get_logger().warning(f'map of /carla/world_info dropped: {error}')

    def on_route_raw(self, raw: bytes) -> None:
        """Take a serialized route Path (same result as `on_route` on its bytes)."""
        try:
            _, _, points = read_path_xy(raw)
        except NavCdrError:
            self.counts['dropped'] += 1
            return
        self._take_route(points)

    def on_route(self, msg: Path) -> None:
        """Keep the route ahead (map frame) for the look-ahead's route cost."""
        self._take_route(path_xy(msg))

    def _take_route(self, points: np.ndarray) -> None:
        self.route = points[np.isfinite(points).all(1)]

    def on_shared(self, msg: SharedInformation) -> None:
        """Keep the accepted shared information by stamp (tracks; markers show intentions)."""
        key = stamp_nanoseconds(msg.header.stamp)
        self.shared_by_stamp.pop(key, None)         # a re-sent step arrives last again
        self.shared_by_stamp[key] = msg

    def _neighbour_tracks(self, stamp, previous) -> tuple:
        """
        Return the stated tracks of the neighbours accepted at the step before `stamp`.

        That is the shared information stamped `previous` (the step answered before), as the
        world model observed step `stamp` with; missing, the newest older one (counted).
        """
        now = stamp_nanoseconds(stamp)
        key = None if previous is None else stamp_nanoseconds(previous)
        msg = self.shared_by_stamp.get(key)
        if msg is None:
            older = [k for k in self.shared_by_stamp if k < now]
            if not older:
                return ()
            self.counts['unmatched_shared'] += 1
            msg = self.shared_by_stamp[max(older)]
        states = [SharedState(n.x, n.y, n.yaw, n.speed, stamp_seconds(n.stamp),
                              np.asarray(n.intention_xy, dtype=np.float64).reshape(-1, 2)
                              if len(n.intention_xy) % 2 == 0 else np.zeros((0, 2)))
                  for n in msg.neighbours]
        tracks, dropped = shared_tracks(states, stamp_seconds(stamp), self.monitor_config)
        self.counts['dropped_shared'] += dropped
        return tracks

    def on_latent(self, msg: LatentState) -> None:
        """
        Plan one step from the world model's state and command the vehicle.

        The step plans and drives from its own step's pose and speed (odometry and
        vehicle_status of the state's stamp): a state that arrives before them waits for
        them; if they never come, it is planned with the latest ones when the next state
        arrives (counted `stale_inputs`).
        """
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        pending, self.pending_latent = self.pending_latent, None
        if pending is not None and pending is not msg:
            self.counts['stale_inputs'] += 1
            self._plan(pending, (self.pose, self.current_speed()))
        if stamp == self.last_answer[0]:
            # a re-sent state (the simulator re-sends a step it waits on): the same answer
            # again, so each step is planned once
            for publisher, answer in zip((self.action_pub, self.control_pub),
                                         self.last_answer[1:]):
                if answer is not None:
                    publisher.publish(answer)
            return
        inputs = self._inputs_of(msg)
        if inputs is None and self.pose is not None:
            self.pending_latent = msg
            return
        self._plan(msg, inputs or (self.pose, self.current_speed()))

    def _plan(self, msg: LatentState, inputs: tuple) -> None:
        """Plan (or stop) one state with its step's (pose, speed)."""
        if self.batch.waiting:  # a second state before the batch ran: the first one first
            self.batch.flush()
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        self.last_answer = (stamp, None, None)
        self.pose, speed = inputs
        self.counts['ticks'] += 1
        previous, self.answered_stamp = self.answered_stamp, msg.header.stamp
        self.watchdog.feed(LATENT, stamp_seconds(msg.header.stamp), time.monotonic())
        z = np.frombuffer(bytes(msg.z_indices), dtype=np.uint8)
        h = np.asarray(msg.h, dtype=np.float32)
        fault = model_state_fault(msg.valid, z, h, self.cfg.stoch, self.cfg.classes,
                                  self.cfg.deter)
        if fault is None and self.pose is None:
            fault = 'no odometry received yet'
        if fault is None:
            stale = self.watchdog.stale_reasons(self._sim_now(), time.monotonic())
            fault = '; '.join(stale) if stale else None
        if fault is not None:
            if msg.valid:
                self.counts['dropped'] += 1
            self.command_stop(fault, msg.header.stamp, speed)
            return
        start = time.perf_counter()
        # the route (its cost charges nothing without one) and the monitor's tracks of the
        # latest fused BEV with the neighbours' stated ones, which the conflict cost charges
        if self.uses_shared:
            self.monitor.share(self._neighbour_tracks(msg.header.stamp, previous))
        tracks = self.monitor.moving_tracks() if self.monitor_config.enabled else ()
        route = RouteContext(self.pose, speed, self.route, tracks)
        try:
            request = self.stage.lookahead_request(z, h) \
                if self.batch.batcher.members > 1 else None
            if request is None:     # alone, or no batchable look-ahead due: plan at once
                decision = self.stage.decide(z, h, route)
        except (FloatingPointError, RuntimeError, ValueError) as error:
            self._planning_failed(error, msg, speed)
            return
        if request is None:
            self._act(msg, self.pose, speed, decision, start)
            return
        pose = self.pose
        self.batch.submit(request, lambda outcome: self._planned(
            msg, pose, speed, z, h, route, start, outcome))

    def destroy_node(self) -> None:
        """Run what is queued (this node's timer may be the armed one), leave the batcher."""
        if self.batch is not None:
            self.batch.close()
        super().destroy_node()

    def _planning_failed(self, error: Exception, msg: LatentState, speed: float) -> None:
        self.counts['plan_errors'] += 1
        self.command_stop(f'planning failed: {error}', msg.header.stamp, speed)

    def _planned(self, msg: LatentState, pose: tuple, speed: float, z: np.ndarray,
                 h: np.ndarray, route: Optional[RouteContext], start: float,
                 outcome: Outcome) -> None:
        """Finish a step whose look-ahead ran in a batch with other planners'."""
        if isinstance(outcome, Exception):
            self._planning_failed(outcome, msg, speed)
            return
        try:
            decision = self.stage.decide(z, h, route, planned=outcome)
        except (FloatingPointError, RuntimeError, ValueError) as error:
            self._planning_failed(error, msg, speed)
            return
        self._act(msg, pose, speed, decision, start)

    def _act(self, msg: LatentState, pose: tuple, speed: float, decision: Decision,
             start: float) -> None:
        """Command the decided action (or the TTC monitor's override) from the step's pose."""
        latency_ms = (time.perf_counter() - start) * 1e3
        accel, steer = self.actions.action(decision.action)
        action_index, refreshed = decision.action, decision.refreshed
        override = None
        if self.monitor_config.enabled:
            path = None if self.turn_assist is None else self.turn_assist.predicted_path(
                pose, speed, self.route, self.monitor.path_length(speed))
            self.verdict = self.monitor.assess(stamp_seconds(msg.header.stamp), pose,
                                               speed, self.yaw_rate, path)
            override = override_accel(self.verdict, accel)
            level = self.verdict.level
        reason = self.verdict.reason if override is not None else ''
        if self.gate is not None:
            # the junction gate may lower the planner's or the monitor's acceleration
            override, self.gate_verdict, gate_only = after_monitor(
                self.gate, pose, speed, self.route, self.monitor.moving_tracks(), accel,
                override)
            if gate_only:
                level, reason = COMFORTABLE, self.gate_verdict.reason
                self.counts['junction_holds'] += 1
        assisted = (None if self.turn_assist is None
                    else self.turn_assist.steer(pose, speed, self.route, steer))
        if assisted is not None:
            # a bend tighter than the action set turns: the route's pursuit steers
            # (turn_assist); the world model is told the nearest discrete action
            steer = assisted
            action_index = self.actions.index(accel, steer)
            self.counts['turn_assisted'] += 1
        if override is not None:
            # the planner's steer stays, the longitudinal command is the monitor's (or the
            # gate's); the world model is told the nearest discrete action (a tie goes to the
            # harder braking)
            accel = override
            action_index = self.actions.index(accel, steer)
            self.counts[f'overrides_{level}'] += 1
            self.policy.reset()     # re-plan from the state the override leads to
            braking = [(accel, steer)] * self.lookahead.K
            self.waypoints = intention_waypoints(self.bicycle, pose, speed, braking)
            refreshed = True
            command = self.control_model.to_control(accel, steer, max(speed, 0.0))
        else:
            self.counts['planned'] += 1
            driven = self.driver.drive(decision.action, decision.intention.actions
                                       if decision.refreshed else None, pose, speed)
            if driven.waypoints is not None:
                self.waypoints = driven.waypoints
            command = driven.control
            if assisted is not None:
                command = self.control_model.to_control(accel, steer, max(speed, 0.0))
        self.stop_reason = ''
        # plan and action before the control: the next step's BEV and observe take them, and
        # that step can only come after the simulator has stepped on the control
        self.publish_plan(msg.header.stamp)
        self.publish_action(action_index, accel, steer, msg.header.stamp)
        self.publish_control(command, msg.header.stamp)
        values = {
            'latency_ms': f'{latency_ms:.3f}', 'action': str(action_index),
            'plan_value': f'{decision.active.value:.4f}',
            'replanned': str(decision.replanned), 'intention_refreshed': str(refreshed),
            'learned_share': f'{self.learned_share():.4f}',
            # look-aheads per imagination in this process (1.00: not batched)
            'lookahead_batch_mean': self.batch.batcher.mean(),
        }
        if self.verdict is not None:
            values['monitor_ttc'] = f'{self.verdict.ttc:.2f}'
        if assisted is not None:
            values['turn_assist_steer'] = f'{steer:.3f}'
        if override is not None:
            self.publish_diagnostics(DiagnosticStatus.WARN, f'safety override: {reason}',
                                     values)
        else:
            self.publish_diagnostics(DiagnosticStatus.OK, 'planning', values)

    def learned_share(self) -> float:
        """Fraction of commanded (non-stop) steps whose action the learned planner chose."""
        overrides = self.counts['overrides_comfortable'] + self.counts['overrides_emergency']
        total = self.counts['planned'] + overrides
        return self.counts['planned'] / total if total else 1.0

    def on_watchdog(self) -> None:
        """Command a stop while inputs are stale, even when no message arrives at all."""
        if self.batch.waiting:
            # a step was just fed and waits for its batch (the flush timer runs it): running
            # the batch here would split it, as the watchdog fires several times a tick
            return
        stale = self.watchdog.stale_reasons(self._sim_now(), time.monotonic())
        if stale:
            stamp = self.answered_stamp
            if stamp is not None and self.watchdog.silent(LATENT, time.monotonic()):
                stamp = self.get_clock().now().to_msg()    # gone, not slow: answer this step
            self.command_stop('; '.join(stale), stamp)

    # -- outputs ------------------------------------------------------------------------
    def current_speed(self) -> float:
        """Speed from vehicle_status when available, else from odometry."""
        return self.status_speed if self.status_speed is not None else self.speed

    def command_stop(self, reason: str, stamp, speed: Optional[float] = None) -> None:
        """
        Stop in a controlled way (comfortable deceleration, steer 0) and report why.

        `stamp` is the latent state's the stop answers; None (no state yet): report only.
        `speed`: the answered step's (default: the latest).
        """
        if not self.stop_reason:
            self.get_logger().warning(f'controlled stop: {reason}')
        else:
            self.get_logger().warning(f'controlled stop: {reason}', throttle_duration_sec=2.0)
        self.stop_reason = reason
        self.counts['stops'] += 1
        self.policy.reset()
        # the honest intention of a stopping vehicle: braking straight ahead
        command = self.driver.stop(self.pose,
                                   self.current_speed() if speed is None else speed)
        if command.waypoints is not None:      # the plan first, as a planned step's
            self.waypoints = command.waypoints
            self.publish_plan(stamp if stamp is not None else self.get_clock().now().to_msg())
        if stamp is not None:
            self.execute(command, stamp)
        self.publish_diagnostics(DiagnosticStatus.ERROR, f'controlled stop: {reason}',
                                 {'stop_reason': reason})

    def execute(self, command: Command, stamp) -> None:
        """
        Publish the stop's action, then its control.

        The action first: the world model conditions its next step on it, and that step can
        only come after the simulator has stepped on the control.
        """
        accel, steer = self.actions.action(command.action)
        self.publish_action(command.action, accel, steer, stamp)
        self.publish_control(command.control, stamp)

    def publish_control(self, command, stamp) -> None:
        """Publish the mapped throttle / steer / brake as CarlaEgoVehicleControl."""
        msg = CarlaEgoVehicleControl()
        msg.header.stamp = stamp
        msg.header.frame_id = self.role
        msg.throttle = float(command.throttle)
        msg.steer = float(command.steer)
        msg.brake = float(command.brake)
        msg.hand_brake = bool(command.hand_brake)
        msg.reverse = bool(command.reverse)
        if (stamp.sec, stamp.nanosec) == self.last_answer[0]:
            self.last_answer = (self.last_answer[0], self.last_answer[1], msg)
        self.control_pub.publish(msg)

    def publish_action(self, index: int, accel: float, steer: float, stamp) -> None:
        """Publish the discrete action the world model conditions its next step on."""
        msg = Action()
        msg.header.stamp = stamp
        msg.index = int(index)
        msg.accel = float(accel)
        msg.steer = float(steer)
        if (stamp.sec, stamp.nanosec) == self.last_answer[0]:
            self.last_answer = (self.last_answer[0], msg, self.last_answer[2])
        self.action_pub.publish(msg)

    def publish_plan(self, stamp, changed: bool = True) -> None:
        """
        Publish the kept intention as a Path (comm, perception) and markers (viewers).

        The Path goes out every step, stamped with the step it answers, also when the kept
        intention did not change: perception and the world model take the plan of the step
        before theirs by stamp and wait for it, so what they use does not depend on delivery
        order (`changed` False: markers only).
        """
        header = Header(stamp=stamp, frame_id='map')
        if changed:
            # serialized as rclpy would serialize the Path of PoseStamped (`nav_cdr`)
            self.plan_pub.publish(serialize_path_xy(stamp.sec, stamp.nanosec, 'map',
                                                    self.waypoints))
        viewers = self.marker_pub.get_subscription_count() > 0
        self.follow_shared(viewers)
        if viewers:                                         # skip the markers when unseen
            self.publish_markers(header)

    def follow_shared(self, wanted: bool) -> None:
        """
        Subscribe to shared_info while the tracks use it or the markers have viewers.

        Without the neighbours' tracks only the markers read it, and every subscription is a
        message taken and deserialised per step (bench/bench_bringup.py counts the CPU).
        """
        wanted = wanted or self.uses_shared
        if wanted and self.shared_sub is None:
            self.shared_sub = self.create_subscription(
                SharedInformation, 'shared_info', self.on_shared, 10,
                event_callbacks=QUIET_SUB)
        elif not wanted and self.shared_sub is not None:
            self.destroy_subscription(self.shared_sub)
            self.shared_sub = None
            self.shared_by_stamp.clear()

    def publish_markers(self, header) -> None:
        """Ego plan and accepted neighbours' intentions as line strips (rviz)."""
        line = Marker()
        line.header = header
        line.ns = f'{self.role}/plan'
        line.id = 0
        line.type = Marker.LINE_STRIP
        line.action = Marker.ADD
        line.pose.orientation.w = 1.0
        line.scale.x = 0.3
        line.color.b, line.color.a = 1.0, 1.0
        line.points = [Point(x=float(x), y=float(y), z=0.2) for x, y in self.waypoints]
        markers = [line]
        latest = next(reversed(self.shared_by_stamp.values()), None)
        for i, neighbour in enumerate(latest.neighbours if latest else []):
            xy = np.asarray(neighbour.intention_xy, dtype=np.float64)
            if xy.size < 4 or xy.size % 2 or not np.all(np.isfinite(xy)):
                continue
            other = Marker()
            other.header = header
            other.ns = f'{self.role}/shared_intentions'
            other.id = i
            other.type = Marker.LINE_STRIP
            other.action = Marker.ADD
            other.pose.orientation.w = 1.0
            other.scale.x = 0.2
            other.color.r, other.color.g, other.color.a = 1.0, 1.0, 1.0
            other.points = [Point(x=float(x), y=float(y), z=0.2) for x, y in xy.reshape(-1, 2)]
            markers.append(other)
        # one DELETEALL first: a neighbour that left the range loses its line
        clear = Marker(action=Marker.DELETEALL)
        clear.header = header
        self.marker_pub.publish(MarkerArray(markers=[clear] + markers))

    def publish_diagnostics(self, level: bytes, message: str, values: dict) -> None:
        """One DiagnosticStatus for this planner, with counters (throttled, see __init__)."""
        now = self.get_clock().now().nanoseconds * 1e-9
        last = self._diag_last
        if last is not None and last[:2] == (level, message) \
                and 0.0 <= now - last[2] < self.diagnostics_period:
            return
        self._diag_last = (level, message, now)
        status = DiagnosticStatus()
        status.level = level
        status.name = f'{self.role}/planner'
        status.hardware_id = self.role
        status.message = message
        merged = {**{k: str(v) for k, v in self.counts.items()}, **values}
        status.values = [KeyValue(key=k, value=v) for k, v in merged.items()]
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [status]
        self.diag_pub.publish(array)


def main(args=None) -> int:
    """Spin the node until SIGINT/SIGTERM; a bad checkpoint or config exits with code 2."""
    return spin_until_signal(PlannerNode, args, 'planner_node',
                             start_errors=(checkpoint.CheckpointError, ValueError))


if __name__ == '__main__':
    raise SystemExit(main())

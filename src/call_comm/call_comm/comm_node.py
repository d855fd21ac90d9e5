"""
ROS 2 node: publish the ego's signed latent, receive everyone's, gate by range, report.

Topics (relative ones in the vehicle's namespace, role R = parameter role_name): subscribes
latent_state, plan, /carla/R/odometry, /v2v/latents, /v2v/keyframe_requests; publishes
/v2v/latents, /v2v/keyframe_requests (replica mode), shared_info, comm_stats. Parameters and
their defaults: config/comm.yaml. Each own LatentState is one step: the range gate takes its
prediction error, the own message goes out (its intention: the plan the planner declared
at the previous step, by stamp; a state waits for it while plans keep coming), and the
other vehicles' newest messages stamped before the step that lie
inside the range become the step's shared information: a step takes the previous step's
messages even when the same step's already arrived, so what a vehicle accepts does not depend
on DDS delivery order (the one-step V2V latency of `call_learning.pipeline`).

`h_transport: replica` (issue 11) loads the fleet's world-model `checkpoint` and sends h only
as keyframes; receivers rebuild it (call_comm.replica). Without a checkpoint it falls back to
`full` (h with every message). A neighbour whose h cannot be rebuilt yet is delivered with an
empty h (pose, z and intention still count). With the checkpoint and `neighbour_views`, each
delivered neighbour also carries its decoded vehicle mask (call_comm.view_decoding, paper
Fig. 4c) for the ego's perception.

Both V2V topics are taken raw: the node decodes the bytes itself (`wire_codec.decode_cdr`),
so a sample rclpy could not deserialize is counted rather than silently lost, and the
sample's DDS writer (publisher GID) keys the receive budgets (`call_comm.budget`). Both drain
(`call_common.draining`): a callback takes every sample already waiting, so a flood of
forgeries does not push honest samples out of the reader's history before the cheap checks
see them. Every received message ends in one CommStats counter (`call_comm.inbox`).
"""
import array
import math
from typing import Any, Callable, Hashable, Optional

from call_comm import wire_codec
from call_comm.auth import Fleet, Signer
from call_comm.comm_stage import CommStage
from call_comm.inbox import DropReason, InboxConfig, Outcome
from call_comm.keyframes import (KeyframeConfig, KeyframeRequester, KeyframeRequestWire,
                                 KeyframeSender, request_size)
from call_comm.range_gate import check_c, RangeGate
from call_comm.replica import load_fleet_model, load_sequence_model, ReplicaBank
from call_comm.replica_link import LinkReceiver, LinkSender, RequestOutcome
from call_comm.stamped_poses import Pose, StampedPoses
from call_comm.view_decoding import load_view_decoder, ViewBatcher, ViewDecoder, ViewRequest
from call_common.batch_timer import BatchTimer
from call_common.draining import drain
from call_common.msg_conversions import stamp_seconds, yaw_from_xyzw
from call_common.nav_cdr import (NavCdrError, odometry_fields, path_xy, RawOdometry,
                                 read_odometry, read_path_xy)
from call_common.node_main import spin_until_signal
from call_common.parameters import declare_from_yaml
from call_common.qos_events import QUIET_PUB, QUIET_SUB
from call_msgs.msg import (CommStats, KeyframeRequest, LatentMessage, LatentState,
                           NeighbourLatent, SharedInformation)
from nav_msgs.msg import Odometry, Path
import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from rclpy.subscription import Subscription
from rclpy.time import Time as RosTime

V2V_TOPIC = '/v2v/latents'
REQUEST_TOPIC = '/v2v/keyframe_requests'
REQUEST_MAX_BYTES = 1024   # a request is ~120 B with short role names; larger is malformed
CONTENT_FILTER = 'x >= %0 AND x <= %1 AND y >= %2 AND y <= %3'
THRESHOLD_PARAMETER = 'c'   # the paper's prediction-error threshold; tunable while running
PLANS_KEPT = 4              # latest plans kept by stamp (a step's message takes the one before)


def _ns(stamp: tuple) -> int:
    """Return a (sec, nanosec) stamp in nanoseconds."""
    return stamp[0] * 1_000_000_000 + stamp[1]


def _fixed(data: bytes, size: int, name: str) -> np.ndarray:
    """Return the uint8[size] field value; CodecError for another length."""
    if len(data) != size:
        raise wire_codec.CodecError(f'{name} must be {size} bytes, got {len(data)}')
    return np.frombuffer(bytes(data), dtype=np.uint8).copy()


def to_msg(wire: wire_codec.WireMessage) -> LatentMessage:
    """Convert a WireMessage to call_msgs/LatentMessage (CodecError for bad fixed sizes)."""
    msg = LatentMessage()
    msg.stamp.sec = wire.stamp_sec
    msg.stamp.nanosec = wire.stamp_nanosec
    msg.sender_key_id = wire.sender_key_id
    msg.sequence = wire.sequence
    msg.x, msg.y, msg.yaw, msg.speed = wire.x, wire.y, wire.yaw, wire.speed
    msg.z_packed = bytes(wire.z_packed)
    msg.action = wire.action
    msg.h_encoding = wire.encoding_byte
    msg.h_data = bytes(wire.h_data)
    msg.intention_packed = bytes(wire.intention_packed)
    if wire.signature:      # unsigned: the fixed-size field stays all zeros
        msg.signature = _fixed(wire.signature, wire_codec.SIGNATURE_BYTES, 'signature')
    return msg


def from_msg(msg: LatentMessage) -> wire_codec.WireMessage:
    """Convert call_msgs/LatentMessage to a WireMessage (byte fields as bytes)."""
    return wire_codec.WireMessage(
        sender_key_id=msg.sender_key_id, sequence=msg.sequence, stamp_sec=msg.stamp.sec,
        stamp_nanosec=msg.stamp.nanosec, x=msg.x, y=msg.y, yaw=msg.yaw, speed=msg.speed,
        z_packed=bytes(msg.z_packed), action=msg.action,
        h_encoding=msg.h_encoding & wire_codec.ENCODING_MASK,
        h_data=bytes(msg.h_data), intention_packed=bytes(msg.intention_packed),
        signature=bytes(msg.signature), epoch=msg.h_encoding >> wire_codec.EPOCH_SHIFT)


def request_to_msg(req: KeyframeRequestWire) -> KeyframeRequest:
    """Convert a KeyframeRequestWire to call_msgs/KeyframeRequest."""
    msg = KeyframeRequest()
    msg.header.stamp.sec, msg.header.stamp.nanosec = req.stamp_sec, req.stamp_nanosec
    msg.requester_id, msg.target_id = req.requester_id, req.target_id
    msg.sequence, msg.last_sequence = req.sequence, req.last_sequence
    msg.signature = bytes(req.signature)
    return msg


def request_from_msg(msg: KeyframeRequest) -> KeyframeRequestWire:
    """Convert call_msgs/KeyframeRequest to a KeyframeRequestWire."""
    return KeyframeRequestWire(msg.requester_id, msg.target_id, msg.sequence,
                               msg.last_sequence, msg.header.stamp.sec,
                               msg.header.stamp.nanosec, bytes(msg.signature))


def z_layout(p: dict) -> wire_codec.ZLayout:
    """
    Return the fleet model's z layout: the checkpoint's (stoch, classes), else z_latents/z_classes.

    A z_latents/z_classes that contradicts the checkpoint is a configuration error (one
    fleet, one model): ValueError with both layouts.
    """
    given = (int(p['z_latents']), int(p['z_classes']))
    if p['checkpoint']:
        layout = wire_codec.ZLayout.of(load_fleet_model(p['checkpoint']).cfg)
        if given != (0, 0) and given != (layout.latents, layout.classes):
            raise ValueError(f'z_latents x z_classes {given[0]} x {given[1]} contradict the '
                             f'checkpoint ({layout.latents} x {layout.classes})')
        return layout
    default = wire_codec.DEFAULT_LAYOUT
    return wire_codec.ZLayout(given[0] or default.latents, given[1] or default.classes)


def _finite_f32(value: float, fallback: float) -> float:
    """Keep float32 fields finite on the wire (receivers drop NaN/inf as malformed)."""
    limit = float(np.finfo(np.float32).max)
    if math.isnan(value):
        return fallback
    return max(-limit, min(limit, value))


class CommNode(Node):
    """One vehicle's V2V latent exchange."""

    def __init__(self, **node_options: Any) -> None:
        """Read parameters, load keys (fail fast), create the gate, inbox and topics."""
        super().__init__('comm', **node_options)   # composition: cli_args
        self.view_batch: Optional[BatchTimer] = None   # destroy_node reads it after any failure
        p = declare_from_yaml(self, 'call_comm', 'comm.yaml')
        self.role = p['role_name']
        if not self.role:
            raise ValueError('parameter role_name must be set (e.g. hero0)')
        if p['h_encoding'] not in wire_codec.H_ENCODINGS:
            raise ValueError(f'h_encoding must be one of {sorted(wire_codec.H_ENCODINGS)}')
        if not p['fleet_key_file']:
            raise ValueError('parameter fleet_key_file must be set')
        if p['v2v_drain'] < 0:
            raise ValueError(f'v2v_drain must be >= 0, got {p["v2v_drain"]}')
        self.fleet = Fleet.load(p['fleet_key_file'])
        self.signer = Signer.load(self.role, p['private_key_file'], self.fleet)
        decay = p['range_decay'] if p['range_decay'] >= 0 else None
        self.gate = RangeGate(p['initial_range'], p['range_step'], p['max_range'],
                              p['c'], decay)
        self.stage = CommStage(self.gate)
        if p['h_transport'] not in ('full', 'replica'):
            raise ValueError("h_transport must be 'full' or 'replica'")
        if p['keyframe_encoding'] not in ('fp16', 'int8'):
            raise ValueError("keyframe_encoding must be 'fp16' or 'int8'")
        self.h_encoding = wire_codec.H_ENCODINGS[p['h_encoding']]
        self.max_waypoints = p['max_waypoints']
        self.z_layout = z_layout(p)
        keyframes, bank, requester = None, None, None
        self.replica_mode = p['h_transport'] == 'replica' and bool(p['checkpoint'])
        if p['h_transport'] == 'replica' and not p['checkpoint']:
            self.get_logger().warning('h_transport replica needs the world-model checkpoint; '
                                      'no checkpoint given: sending full h')
        if self.replica_mode:
            model = load_sequence_model(p['checkpoint'], p['num_threads'])
            kf_cfg = KeyframeConfig(
                period=p['keyframe_period'], drift_tolerance=p['drift_tolerance'],
                encoding=wire_codec.H_ENCODINGS[p['keyframe_encoding']],
                max_bytes=p['keyframe_max_bytes'],
                min_request_interval=p['keyframe_min_request_interval'],
                request_interval=p['keyframe_request_interval'])
            keyframes = KeyframeSender(kf_cfg, model)
            if p['replica_history'] < 2:
                raise ValueError(f'replica_history must be >= 2, got {p["replica_history"]}')
            # lazy: out-of-range senders' steps wait (keyframes usually drop them unrun)
            bank = ReplicaBank(model, p['replica_max_senders'], p['replica_history'], lazy=True)
            requester = KeyframeRequester(kf_cfg.request_interval)
        self.views: Optional[ViewDecoder] = None
        self.views_this_step = 0
        if p['neighbour_views'] and p['checkpoint']:
            self.views = ViewDecoder(load_view_decoder(p['checkpoint']),
                                     p['neighbour_view_channels'],
                                     p['neighbour_view_threshold'], p['num_threads'])
            # the container's comm nodes decode their step's views as one batch
            self.view_batch = BatchTimer(self, ViewBatcher.for_model(self.views.model))
        self.sender = LinkSender(self.role, self.signer, self.h_encoding, self.max_waypoints,
                                 keyframes, p['max_speed'], p['plausibility_slack'],
                                 self.z_layout)
        self.link = LinkReceiver(InboxConfig(
            own_id=self.role, max_age=p['max_age'], max_speed=p['max_speed'],
            plausibility_slack=p['plausibility_slack'],
            plausibility_memory=p['plausibility_memory'],
            expected_h_dim=p['expected_h_dim'] or None, num_actions=p['num_actions'],
            max_waypoints=p['max_waypoints'], max_h_bytes=p['max_h_bytes'],
            max_keyframe_chunks=p['max_keyframe_chunks'],
            sender_budget_burst=p['sender_budget_burst'],
            sender_budget_refill=p['sender_budget_refill'], z_layout=self.z_layout),
            self.fleet, self.signer, bank, requester, p['max_age'],
            (p['keyframe_request_burst'], p['keyframe_request_refill']))
        self.inbox = self.link.inbox
        self.sequence = 0
        self.poses: StampedPoses[LatentState] = StampedPoses()
        self.plans: list = []      # (stamp [ns], (M, 2) plan) of the latest plans
        self.latest_state_time: Optional[float] = None
        self.last_step: Optional[tuple] = None               # (sec, nanosec) of the last step
        self.last_shared: Optional[SharedInformation] = None
        self.pending: Optional[tuple] = None      # (state, pose) waiting for the plan before it
        self.sent_at: Optional[tuple] = None      # (sec, nanosec) of the last message sent
        self.sent_z: Optional[np.ndarray] = None  # its z indices
        self.plan_waits_given_up = 0
        self.malformed_inputs = 0                 # odometry or plan bytes that did not parse

        # The writer offers deadline and lifespan; the reader requests neither, because a
        # requested deadline is incompatible with writers offering none (tools, replays).
        sub_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=p['qos_depth'],
                             reliability=ReliabilityPolicy.BEST_EFFORT)
        v2v_sub_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=p['qos_depth'],
                                 reliability=ReliabilityPolicy.RELIABLE if p['v2v_reliable']
                                 else ReliabilityPolicy.BEST_EFFORT)
        pub_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=p['qos_depth'],
                             reliability=ReliabilityPolicy.BEST_EFFORT)
        if p['qos_deadline'] > 0:
            pub_qos.deadline = Duration(seconds=p['qos_deadline'])
        if p['qos_lifespan'] > 0:
            pub_qos.lifespan = Duration(seconds=p['qos_lifespan'])
        pub, sub = self._publisher, self._subscription
        self.v2v_pub = pub(LatentMessage, V2V_TOPIC, pub_qos)
        self.v2v_sub = self._subscribe_v2v(v2v_sub_qos, p['content_filter'])
        self.v2v_draining = drain(self.v2v_sub, p['v2v_drain'])
        self.request_pub = pub(KeyframeRequest, REQUEST_TOPIC, sub_qos)
        drain(self.create_subscription(KeyframeRequest, REQUEST_TOPIC, self._with_writer(
            self._on_request), sub_qos, event_callbacks=QUIET_SUB, raw=True), p['v2v_drain'])
        self.shared_pub = pub(SharedInformation, 'shared_info', 10)
        # per-step counts: a reader adding them up needs every one, even 10 s behind
        self.stats_pub = pub(CommStats, 'comm_stats', 100)
        sub(LatentState, 'latent_state', self._on_state, 10)
        # Path and Odometry are taken raw: the few numbers read from the bytes (`nav_cdr`)
        self.create_subscription(Path, 'plan', self._on_plan_raw, 10,
                                 event_callbacks=QUIET_SUB, raw=True)
        self.create_subscription(Odometry, f'/carla/{self.role}/odometry',
                                 self._on_odometry_raw, 10, event_callbacks=QUIET_SUB,
                                 raw=True)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.get_logger().info(
            f'{self.role}: c={self.gate.c} range={self.gate.comm_range} m '
            f'z={self.z_layout.latents}x{self.z_layout.classes} '
            f'h={p["h_encoding"]} transport={"replica" if self.replica_mode else "full"} '
            f'views={"decoded" if self.views is not None else "off"} '
            f'fleet={p["fleet_key_file"]}')

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """
        Let users tune c on a running vehicle (`ros2 param set`, rqt): the gate takes it.

        Parameters are set between callbacks, so the next step's range update uses the new c.
        A NaN or negative c is refused with the reason; other parameters are read at start.
        """
        for param in params:
            if param.name == THRESHOLD_PARAMETER:
                try:
                    check_c(float(param.value))
                except (TypeError, ValueError) as err:
                    return SetParametersResult(successful=False, reason=str(err))
        for param in params:
            if param.name == THRESHOLD_PARAMETER:
                self.gate.set_c(float(param.value))
                self.get_logger().info(f'{self.role}: c={self.gate.c} from now on')
        return SetParametersResult(successful=True)

    def _subscribe_v2v(self, qos: QoSProfile, content_filter: bool):
        """Subscribe to everyone's latents, with a DDS content filter where the distro has it."""
        kwargs = {}
        if content_filter:
            try:
                from rclpy.subscription_content_filter_options import ContentFilterOptions
                kwargs['content_filter_options'] = ContentFilterOptions(
                    CONTENT_FILTER, self._filter_parameters(0.0, 0.0))
            except ImportError:
                self.get_logger().warning('content filtering needs rclpy >= Iron; disabled')
        # raw: every sample is counted, including CDR that rclpy could not deserialize
        sub = self.create_subscription(LatentMessage, V2V_TOPIC,
                                       self._with_writer(self._on_latent), qos,
                                       event_callbacks=QUIET_SUB, raw=True, **kwargs)
        self.filtering = bool(kwargs) and sub.is_cft_enabled
        if content_filter and not self.filtering:
            self.get_logger().warning('the RMW does not support content filtering; disabled')
        return sub

    @staticmethod
    def _with_writer(callback: Callable[[Any, Hashable], None]) -> Callable:
        """
        Adapt `callback(msg, writer)` to the subscription API of the distro.

        The writer is the publisher GID from the message info (rclpy >= Iron): budgets are kept
        per writer. Without message info every sample counts as one unknown writer's.
        """
        if not hasattr(Subscription, 'CallbackType'):     # Humble: message only
            return lambda msg: callback(msg, None)

        def with_info(msg, info) -> None:
            gid = info.get('publisher_gid') if isinstance(info, dict) else None
            data = gid.get('data') if isinstance(gid, dict) else None
            callback(msg, bytes(data) if data is not None else None)
        return with_info

    def _publisher(self, msg_type, topic: str, qos):
        return self.create_publisher(msg_type, topic, qos, event_callbacks=QUIET_PUB)

    def _subscription(self, msg_type, topic: str, callback, qos):
        return self.create_subscription(msg_type, topic, callback, qos,
                                        event_callbacks=QUIET_SUB)

    def _filter_parameters(self, x: float, y: float):
        r = min(self.gate.comm_range, 1e12)
        return [repr(x - r), repr(x + r), repr(y - r), repr(y + r)]

    # -------------------------------------------------------------------------- callbacks
    def _malformed(self, kind: str, error: NavCdrError) -> None:
        self.malformed_inputs += 1
        self.get_logger().warning(f'dropped a malformed {kind}: {error} '
                                  f'({self.malformed_inputs} inputs so far)',
                                  throttle_duration_sec=5.0)

    def _on_odometry_raw(self, raw: bytes) -> None:
        """Take a serialized Odometry (same result as `_on_odometry` on its bytes)."""
        try:
            odometry = read_odometry(raw)
        except NavCdrError as error:
            self._malformed('odometry', error)
            return
        self._take_odometry(odometry)

    def _on_odometry(self, msg: Odometry) -> None:
        self._take_odometry(odometry_fields(msg))

    def _take_odometry(self, odometry: RawOdometry) -> None:
        for state, step_pose in self.poses.add(
                odometry.stamp_ns,
                (odometry.x, odometry.y,
                 yaw_from_xyzw(odometry.qx, odometry.qy, odometry.qz, odometry.qw),
                 math.hypot(odometry.vx, odometry.vy))):
            self._step(state, step_pose)

    def _on_plan_raw(self, raw: bytes) -> None:
        """Take a serialized plan Path (same result as `_on_plan` on its bytes)."""
        try:
            sec, nanosec, plan = read_path_xy(raw)
        except NavCdrError as error:
            self._malformed('plan', error)
            return
        self._take_plan(sec * 10**9 + nanosec, plan)

    def _on_plan(self, msg: Path) -> None:
        self._take_plan(RosTime.from_msg(msg.header.stamp).nanoseconds, path_xy(msg))

    def _take_plan(self, stamp_ns: int, plan: np.ndarray) -> None:
        self.plans.append((stamp_ns, plan))
        del self.plans[:-PLANS_KEPT]
        if self.pending is not None and self.last_step is not None and \
                self.plans[-1][0] >= _ns(self.last_step):
            waiting, self.pending = self.pending, None
            self._run_step(*waiting)

    def _plan_before(self, stamp_ns: int) -> np.ndarray:
        """Return the plan declared before step ``stamp_ns``'s planning (its message's)."""
        for stamp, plan in reversed(self.plans):
            if stamp < stamp_ns:
                return plan
        return np.zeros((0, 2))

    def _on_latent(self, raw: bytes, writer: Hashable) -> None:
        self.link.receive_raw(raw, self.latest_state_time, writer)

    def _on_request(self, raw: bytes, writer: Hashable) -> None:
        try:   # raw, like latents: undecodable CDR is counted, not silently lost
            if len(raw) > REQUEST_MAX_BYTES:
                raise ValueError(f'a keyframe request of {len(raw)} bytes')
            req = request_from_msg(deserialize_message(raw, KeyframeRequest))
        except Exception:  # noqa: B902 - hostile input is counted, never raised
            self.link.counters.requests[RequestOutcome.MALFORMED] += 1
            return
        if self.link.accept_request(req, self.latest_state_time, writer) and \
                self.sender.keyframes is not None:
            self.sender.keyframes.request()

    def _on_state(self, state: LatentState) -> None:
        # the step runs with the ego pose of the state's own stamp (call_comm.stamped_poses)
        stamp_ns = RosTime.from_msg(state.header.stamp).nanoseconds
        for ready_state, pose in self.poses.match(stamp_ns, state):
            self._step(ready_state, pose)

    def _step(self, state: LatentState, pose: Pose) -> None:
        self._finish_views()
        stamp = (state.header.stamp.sec, state.header.stamp.nanosec)
        if stamp == self.last_step:
            # a re-sent state (the simulator re-sends a step it waits on): one gate step each
            if self.last_shared is not None:
                self.shared_pub.publish(self.last_shared)
            return
        if self.pending is not None:
            # the next step came before the waiting one's plan: step it with the latest
            self.plan_waits_given_up += 1
            waiting, self.pending = self.pending, None
            self._run_step(*waiting)
        if self.plans and self.last_step is not None and \
                not any(s == _ns(self.last_step) for s, _ in self.plans):
            self.pending = (state, pose)      # the planner's previous-step plan is on its way
            return
        self._run_step(state, pose)

    def _run_step(self, state: LatentState, pose: Pose) -> None:
        self._finish_views()
        stamp = (state.header.stamp.sec, state.header.stamp.nanosec)
        # the ego's previous-step message, which this step's other receivers deliver
        coming = self._own_latent() if self.sent_at == self.last_step else []
        self.last_step = stamp
        now = stamp_seconds(state.header.stamp)
        self.latest_state_time = now
        comm_range = self.stage.step(state.valid, state.prediction_error)
        bytes_sent = self._publish_own(state, pose) if self.stage.sends(state.valid) else 0
        # the other vehicles' previous-step messages, whether or not this step's already came
        delivery = self.link.collect(pose[:2], comm_range, now, stamp)
        request_bytes = 0
        for req in self.link.take_requests((state.header.stamp.sec,
                                            state.header.stamp.nanosec)):
            self.request_pub.publish(request_to_msg(req))
            request_bytes += request_size(req)
        # both messages are built now, from this step's state; they go out with the views
        shared = self._shared_message(state, comm_range, delivery)
        stats = self._stats_message(state, comm_range, delivery, bytes_sent, request_bytes)
        if self.view_batch is None:
            self._publish_step(shared, stats, [None] * len(delivery.neighbours))
        else:
            latents = [(n.z_indices.copy(), n.h.copy()) for n in delivery.neighbours]
            self.view_batch.submit(ViewRequest(self.views, latents, coming),
                                   lambda views: self._publish_step(shared, stats, views))
        if self.filtering:
            self.v2v_sub.set_content_filter(CONTENT_FILTER, self._filter_parameters(*pose[:2]))

    # ------------------------------------------------------------------------- publishing
    def _publish_own(self, state: LatentState, pose: Pose) -> int:
        z = np.frombuffer(bytes(state.z_indices), dtype=np.uint8)
        try:
            wire = self.sender.message(
                self.sequence, (state.header.stamp.sec, state.header.stamp.nanosec),
                pose, z,
                np.asarray(state.h, dtype=np.float32), state.action,
                self._plan_before(RosTime.from_msg(state.header.stamp).nanoseconds))
        except wire_codec.CodecError as error:
            self.get_logger().error(f'own latent state not encodable: {error}',
                                    throttle_duration_sec=5.0)
            return 0
        self.sequence = (self.sequence + 1) & 0xFFFFFFFF
        self.sent_at, self.sent_z = (state.header.stamp.sec, state.header.stamp.nanosec), z
        self.v2v_pub.publish(to_msg(wire))
        return wire_codec.serialized_size(wire)

    def _own_latent(self) -> list:
        """Return [(z, h)] of the ego's last message as its receivers rebuild it, or []."""
        keyframes = self.sender.keyframes
        mirror = keyframes.mirror() if keyframes is not None else None
        return [] if mirror is None or self.sent_z is None else [(self.sent_z, mirror)]

    def _finish_views(self) -> None:
        """Publish a step still waiting for its views' batch before anything else steps."""
        if self.view_batch is not None and self.view_batch.waiting:
            self.view_batch.flush()

    def _shared_message(self, state: LatentState, comm_range: float,
                        delivery) -> SharedInformation:
        """Build the step's SharedInformation without the neighbours' views (`_publish_step`)."""
        out = SharedInformation()
        out.header.stamp = state.header.stamp
        out.header.frame_id = 'map'
        out.comm_range = _finite_f32(comm_range, 0.0)
        for n in delivery.neighbours:
            item = NeighbourLatent()
            item.sender_id = n.sender_id
            item.sequence = n.sequence
            item.stamp.sec, item.stamp.nanosec = n.stamp_sec, n.stamp_nanosec
            item.x, item.y, item.yaw, item.speed = n.x, n.y, n.yaw, n.speed
            item.distance = float(n.distance)
            item.z_indices = n.z_indices.tobytes()
            # empty h = not (yet) synchronised: the replica cannot rebuild this sender's h
            item.h = array.array('f', n.h.astype(np.float32).tobytes())
            item.action = n.action
            item.intention_xy = array.array(
                'f', n.intention_xy.astype(np.float32).ravel().tobytes())
            out.neighbours.append(item)
        return out

    def _publish_step(self, shared: SharedInformation, stats: CommStats,
                      views: list) -> None:
        """Add the decoded views (None: no view) to the step's messages and publish both."""
        for item, view in zip(shared.neighbours, views):
            if view is not None:
                item.view_size = self.views.size
                item.view_mask = view
        self.views_this_step = sum(v is not None for v in views)
        stats.neighbour_views = self.views_this_step
        stats.neighbour_views_dropped = self.views.dropped if self.views is not None else 0
        self.last_shared = shared
        self.shared_pub.publish(shared)
        self.stats_pub.publish(stats)

    def _stats_message(self, state: LatentState, comm_range: float, delivery,
                       bytes_sent: int, request_bytes: int) -> CommStats:
        """Build the step's CommStats without the view counts (`_publish_step` adds them)."""
        stats = CommStats()
        stats.header.stamp = state.header.stamp
        stats.vehicle_id = self.role
        stats.bytes_sent = bytes_sent
        stats.bytes_received = delivery.bytes_received
        stats.bytes_in_range = delivery.bytes_in_range
        stats.messages_received = delivery.messages_received
        stats.messages_accepted = len(delivery.neighbours)
        stats.neighbours_in_range = len(delivery.neighbours)
        stats.neighbours = [n.sender_id for n in delivery.neighbours]
        stats.comm_range = _finite_f32(comm_range, 0.0)
        stats.prediction_error = _finite_f32(self.gate.last_error, -1.0)
        stats.threshold = _finite_f32(self.gate.c, 0.0)
        stats.error_above_threshold = self.gate.last_above
        tally = self.inbox.tally
        for reason in DropReason:
            setattr(stats, f'dropped_{reason.value}', tally.count(reason))
        stats.accepted_total = tally.count(Outcome.ACCEPTED)
        stats.superseded = tally.count(Outcome.SUPERSEDED)
        stats.own_id = tally.count(Outcome.OWN_ID)
        stats.received_total = tally.total
        stats.bytes_received_total = tally.total_bytes
        stats.steps_skipped_no_pose = self.poses.skipped
        counters = self.link.counters
        for outcome in RequestOutcome:
            if outcome is not RequestOutcome.ACCEPTED:
                setattr(stats, f'requests_{outcome.value}', counters.requests[outcome])
        stats.replica_drift_max = float(self.link.take_drift())
        stats.keyframes_sent = (self.sender.keyframes.keyframes_started
                                if self.sender.keyframes is not None else 0)
        stats.keyframes_received = counters.keyframes_received
        stats.keyframe_requests_sent = counters.requests_sent
        stats.keyframe_requests_received = counters.requests_received
        stats.neighbours_unsynchronised = sum(not n.synchronised for n in delivery.neighbours)
        stats.request_bytes_sent = request_bytes
        return stats

    def destroy_node(self) -> None:
        """Publish a step still waiting for its views (this node's timer may be the armed one)."""
        if self.view_batch is not None:
            self.view_batch.close()
        super().destroy_node()


def main(args=None) -> int:
    """Spin the node until SIGINT/SIGTERM; a bad checkpoint or config exits with code 2."""
    return spin_until_signal(CommNode, args, 'comm_node',   # CheckpointError is a RuntimeError
                             start_errors=(ValueError, RuntimeError))


if __name__ == '__main__':
    raise SystemExit(main())

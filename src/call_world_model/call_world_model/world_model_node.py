"""
ROS node: observes the ego BEV each tick and publishes the world-model latent state.

Topics are relative, resolved in the vehicle's namespace (`/<role>`). Subscribes ``bev``
(sensor_msgs/Image ``8UC<C>``, H x W x C interleaved), ``action`` (call_msgs/Action),
``shared_info`` (call_msgs/SharedInformation), ``plan`` (nav_msgs/Path, map frame) and the
bridge's ``/carla/<role_name>/odometry``. On every BEV it runs one posterior step and publishes
``latent_state`` (stamped with the BEV's stamp), optionally ``prediction_color`` (rgb8 strip
of the decoded open-loop prediction) and ``/diagnostics``. Malformed messages are counted by
reason and dropped. Parameters and their defaults: config/world_model.yaml.
"""
import array
import time
from typing import Any, Dict, List, Optional, Tuple

from call_common.batch_timer import BatchTimer
from call_common.msg_conversions import stamp_nanoseconds, yaw_from_xyzw
from call_common.nav_cdr import (NavCdrError, odometry_fields, path_xy, RawOdometry,
                                 read_odometry, read_path_xy)
from call_common.node_main import spin_until_signal
from call_common.parameters import declare_from_yaml
from call_common.qos_events import QUIET_PUB, QUIET_SUB
from call_common.recent_steps import RecentSteps
from call_msgs.msg import Action, LatentState, SharedInformation
from call_world_model import checkpoint
from call_world_model.config import load_config
from call_world_model.model_stage import ModelOutput, ModelStage, SharedLatent
from call_world_model.observe_batch import ObserveBatcher
from call_world_model.prediction import prediction_strip
from call_world_model.world_model import WorldModel
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from nav_msgs.msg import Odometry, Path
import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image
import torch


KEPT = 8        # steps of poses and shared information kept by stamp


class WorldModelNode(Node):
    """Thin translation layer around the vehicle's :class:`ModelStage`."""

    def __init__(self, **node_options: Any) -> None:
        """Declare parameters, load the model, create publishers and subscriptions."""
        super().__init__('world_model', **node_options)   # composition: cli_args
        self.batch: Optional[BatchTimer] = None   # destroy_node reads it after any failure
        p = declare_from_yaml(self, 'call_world_model', 'world_model.yaml')
        torch.set_num_threads(max(1, p['num_threads']))
        self.role = p['role_name']
        self.threshold = p['c']
        self.publish_prediction = p['publish_prediction']
        self.prediction_steps = p['prediction_steps']
        self.prediction_period = max(1, p['prediction_period'])
        self.model = self._load_model(p['checkpoint'], p['preset'])
        self.model.eval()
        # the BEV arrives height x width x channels: as a permuted view that is channels_last,
        # which oneDNN convolves ~20 % faster than NCHW with identical results (isolated encoder
        # on 1 thread: 2.4 vs 3.0 ms per BEV including the conversion)
        self.model.encoder.to(memory_format=torch.channels_last)
        self.cfg = self.model.cfg
        self.stage = ModelStage(self.model, p['K'])
        self.odometry: Optional[np.ndarray] = None     # x, y, yaw
        self.plan_xy: Optional[np.ndarray] = None      # (M, 2) map frame
        self.shared_msg: Optional[SharedInformation] = None
        self.shared_by_stamp: RecentSteps[int, SharedInformation] = RecentSteps(KEPT)
        self.poses: RecentSteps[int, np.ndarray] = RecentSteps(KEPT)
        self.last_bev_stamp: Optional[int] = None
        self.last_latent: Optional[LatentState] = None
        self.pending_bev: Optional[Image] = None        # waits for its step's inputs
        self.actions: RecentSteps[int, int] = RecentSteps(KEPT)   # the planner's, by stamp
        self.plans: RecentSteps[int, np.ndarray] = RecentSteps(KEPT)
        self.counters: Dict[str, int] = {'observed': 0}
        self.last_error = 0.0
        self.last_latency_ms = 0.0

        self.latent_pub = self.create_publisher(LatentState, 'latent_state', 10,
                                                event_callbacks=QUIET_PUB)
        self.prediction_pub = self.create_publisher(Image, 'prediction_color', 2,
                                                    event_callbacks=QUIET_PUB)
        self.diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10,
                                              event_callbacks=QUIET_PUB)
        self.create_subscription(Image, 'bev', self.on_bev, 10,
                                 event_callbacks=QUIET_SUB)
        self.create_subscription(Action, 'action', self.on_action, 10,
                                 event_callbacks=QUIET_SUB)
        self.create_subscription(SharedInformation, 'shared_info', self.on_shared, 10,
                                 event_callbacks=QUIET_SUB)
        # Path and Odometry are taken raw: the few numbers read from the bytes (`nav_cdr`)
        self.create_subscription(Path, 'plan', self.on_plan_raw, 10,
                                 event_callbacks=QUIET_SUB, raw=True)
        self.create_subscription(Odometry, f'/carla/{self.role}/odometry',
                                 self.on_odometry_raw, 10, event_callbacks=QUIET_SUB, raw=True)
        self.create_timer(p['diagnostics_period'], self.publish_diagnostics)
        self.batch = BatchTimer(self, ObserveBatcher.for_model(self.model,
                                                               bool(p['sample_posterior'])))

    # ------------------------------------------------------------------ setup
    def _load_model(self, path: str, preset: str) -> WorldModel:
        if path:
            loaded = checkpoint.load_shared(path)
            self.get_logger().info(f'loaded world model {path} (step {loaded.step})')
            return loaded.world_model
        self.get_logger().warning(
            f'NO CHECKPOINT GIVEN: using a RANDOMLY INITIALISED {preset!r} world model; '
            'latents and predictions are meaningless until a trained checkpoint is set')
        return WorldModel(load_config(preset))

    def _drop(self, reason: str) -> None:
        key = f'dropped_{reason}'
        self.counters[key] = self.counters.get(key, 0) + 1

    # ------------------------------------------------------------------ inputs
    def on_action(self, msg: Action) -> None:
        """Remember the action the planner took (enters the next observe step)."""
        if msg.index >= self.cfg.num_actions:
            self._drop('action_index')
            return
        self.stage.action = int(msg.index)
        self.actions[stamp_nanoseconds(msg.header.stamp)] = int(msg.index)
        self._take_pending()

    def on_plan_raw(self, raw: bytes) -> None:
        """Take a serialized plan Path (same result as `on_plan` on its bytes)."""
        try:
            sec, nanosec, points = read_path_xy(raw)
        except NavCdrError:
            self._drop('plan_malformed')
            return
        self._take_plan(sec * 10**9 + nanosec, points)

    def on_plan(self, msg: Path) -> None:
        """Remember the ego plan (map frame) by stamp."""
        self._take_plan(stamp_nanoseconds(msg.header.stamp), path_xy(msg))

    def _take_plan(self, stamp: int, points: np.ndarray) -> None:
        if not np.isfinite(points).all():
            self._drop('plan_nan')
            return
        self.plan_xy = points
        self.plans[stamp] = points
        self._take_pending()

    def on_odometry_raw(self, raw: bytes) -> None:
        """Take a serialized Odometry (same result as `on_odometry` on its bytes)."""
        try:
            odometry = read_odometry(raw)
        except NavCdrError:
            self._drop('odometry_malformed')
            return
        self._take_odometry(odometry)

    def on_odometry(self, msg: Odometry) -> None:
        """Remember the ego pose by stamp for map -> ego frame conversions."""
        self._take_odometry(odometry_fields(msg))

    def _take_odometry(self, odometry: RawOdometry) -> None:
        values = np.array([odometry.x, odometry.y, yaw_from_xyzw(
            odometry.qx, odometry.qy, odometry.qz, odometry.qw)])
        if not np.isfinite(values).all():
            self._drop('odometry_nan')
            return
        self.odometry = values
        self.poses[odometry.stamp_ns] = values
        self._take_pending()

    def on_shared(self, msg: SharedInformation) -> None:
        """Remember the accepted neighbours by stamp (converted when a BEV needs them)."""
        self.shared_msg = msg
        self.shared_by_stamp[stamp_nanoseconds(msg.header.stamp)] = msg
        self._take_pending()

    def _ready(self, stamp: int) -> bool:
        """Tell whether the step's pose and the previous step's shared information are in."""
        if self.odometry is not None and stamp not in self.poses:
            return False
        previous = self.last_bev_stamp
        if previous is None:
            return True
        # the planner answers every step with its plan and action, comm with shared_info
        return all(not kept or previous in kept
                   for kept in (self.shared_by_stamp, self.actions, self.plans))

    def _take_pending(self) -> None:
        """Observe a BEV that waited for its inputs, now that they came."""
        pending = self.pending_bev
        if pending is not None and self._ready(stamp_nanoseconds(pending.header.stamp)):
            self.pending_bev = None
            self._observe(pending)

    def _step_inputs(self, stamp: int
                     ) -> Tuple[Optional[SharedInformation], Optional[np.ndarray]]:
        """
        Return the shared information of the previous step and the pose of this one.

        Step t observes the neighbours comm accepted at step t - 1, as perception drew them
        (`call_learning.pipeline`); missing ones fall back to the latest (counted).
        """
        shared = self.shared_by_stamp.get(self.last_bev_stamp) \
            if self.last_bev_stamp is not None else None
        if shared is None and self.shared_msg is not None:
            shared = self.shared_msg
            self.counters['unmatched_shared'] = self.counters.get('unmatched_shared', 0) + 1
        pose = self.poses.get(stamp)
        if pose is None and self.odometry is not None:
            pose = self.odometry
            self.counters['unmatched_odometry'] = \
                self.counters.get('unmatched_odometry', 0) + 1
        return shared, pose

    def _neighbours(self, msg: Optional[SharedInformation]) -> List[SharedLatent]:
        """Return the accepted neighbours of ``msg`` (malformed ones dropped)."""
        cfg = self.cfg
        if msg is None or not msg.neighbours:
            return []
        if self.odometry is None:
            self._drop('shared_without_odometry')
            return []
        out = []
        for neighbour in msg.neighbours:
            z = np.frombuffer(bytes(neighbour.z_indices), dtype=np.uint8) \
                if isinstance(neighbour.z_indices, (bytes, bytearray)) \
                else np.asarray(neighbour.z_indices, dtype=np.int64)
            h = np.asarray(neighbour.h, dtype=np.float32)
            xy = np.asarray(neighbour.intention_xy, dtype=np.float64)
            pose = np.array([neighbour.x, neighbour.y, neighbour.yaw], dtype=np.float64)
            if len(z) != cfg.stoch or (z >= cfg.classes).any():
                self._drop('neighbour_z')
                continue
            if len(h) == 0:
                # Replica transport: h not rebuilt yet; pose, z and intention still count.
                key = 'neighbour_h_pending'
                self.counters[key] = self.counters.get(key, 0) + 1
            elif len(h) != cfg.deter or not np.isfinite(h).all():
                self._drop('neighbour_h')
                continue
            if len(xy) % 2 or not np.isfinite(xy).all() or not np.isfinite(pose).all():
                self._drop('neighbour_intention_or_pose')
                continue
            out.append(SharedLatent(*pose, z, h, xy.reshape(-1, 2)))
        return out

    def _bev_tensor(self, msg: Image) -> Optional[torch.Tensor]:
        cfg = self.cfg
        channels, size = cfg.bev_channels, cfg.bev_size
        if msg.encoding != f'8UC{channels}':
            self._drop('bev_encoding')
            return None
        if msg.height != size or msg.width != size or msg.step != size * channels \
                or len(msg.data) != size * size * channels:
            self._drop('bev_shape')
            return None
        array = np.frombuffer(msg.data, dtype=np.uint8)
        if not array.flags.writeable:       # bytes (older rclpy) rather than array('B')
            array = array.copy()
        # (1, C, H, W) view of the H x W x C buffer, i.e. channels_last, without a copy
        return torch.from_numpy(array.reshape(size, size, channels)).permute(2, 0, 1)[None]

    # ------------------------------------------------------------------ main step
    def on_bev(self, msg: Image) -> None:
        """
        Observe one BEV and publish the latent state (and the prediction strip).

        Step t observes with its own pose and the previous step's action, plan and shared
        information (what perception drew); a BEV that arrives before them waits for them,
        and is observed with the latest ones when the next BEV comes first (counted
        `dropped_stale_inputs`). A
        re-sent step (same stamp) re-publishes its state rather than observing it again.
        Alone in its process the node observes at once. Composed with other world-model nodes
        on the same model, it queues the step with their shared batcher; the flush timer
        fires after the BEVs already waiting in the executor, so their steps run as one batch.
        """
        stamp = stamp_nanoseconds(msg.header.stamp)
        pending = self.pending_bev
        if pending is not None and stamp != stamp_nanoseconds(pending.header.stamp):
            # the next step came before the waiting one's inputs: observe it with the latest
            self._drop('stale_inputs')
            pending, self.pending_bev = self.pending_bev, None
            self._observe(pending)
        if stamp == self.last_bev_stamp or (self.pending_bev is not None):
            # a re-sent step (late joiners): its state again, the model observes a step once
            if self.last_latent is not None and not self.batch.waiting and \
                    stamp == self.last_bev_stamp:
                self.latent_pub.publish(self.last_latent)
            self._drop('repeated_bev')
            return
        if not self._ready(stamp):
            self.pending_bev = msg
            return
        self._observe(msg)

    def _observe(self, msg: Image) -> None:
        """Observe one BEV with its step's inputs (the latest ones where missing)."""
        stamp = stamp_nanoseconds(msg.header.stamp)
        bev = self._bev_tensor(msg)
        if bev is None:
            return
        start = time.perf_counter()
        if self.batch.waiting:  # a second BEV before the batch ran: its state comes first
            self.batch.flush()
        previous = self.last_bev_stamp
        if previous in self.actions:
            self.stage.action = self.actions[previous]
        plan_xy = self.plans.get(previous, self.plan_xy)
        action = self.stage.action
        shared, pose = self._step_inputs(stamp)
        self.last_bev_stamp = stamp
        ego = None if pose is None else tuple(float(v) for v in pose)
        request = self.stage.request(bev, ego, self._neighbours(shared), plan_xy)
        # alone: at once (a batch of one is exactly observe_step)
        self.batch.submit(request, lambda post, tracked: self._observed(
            msg, action, start, self.stage.complete(post, tracked)))

    def destroy_node(self) -> None:
        """Run what is queued (this node's timer may be the armed one), leave the batcher."""
        if self.batch is not None:
            self.batch.close()
        super().destroy_node()

    def _observed(self, msg: Image, action: int, start: float, output: ModelOutput) -> None:
        if output.post is None:     # a non-finite posterior: the stage restarted
            self._drop('model_nan')
            self._publish_latent(msg, action, output)
            return
        self.last_error = output.error
        self.counters['observed'] += 1
        self._publish_latent(msg, action, output)
        if self.publish_prediction and \
                self.counters['observed'] % self.prediction_period == 0 and \
                self.prediction_pub.get_subscription_count() > 0:
            self._publish_prediction(msg, action, output.post)
        self.last_latency_ms = 1000.0 * (time.perf_counter() - start)

    def _publish_latent(self, bev_msg: Image, action: int, output: ModelOutput) -> None:
        out = LatentState()
        out.header.stamp = bev_msg.header.stamp
        out.header.frame_id = self.role
        out.action = int(action)
        out.valid = output.valid
        out.prediction_error = float(output.error)
        if output.post is not None:
            # array.array is the message's own field type: taken as is, where a list is
            # checked element by element and copied (~30x the time for 256 floats)
            out.z_indices = array.array('B', output.z_indices().tobytes())
            out.h = array.array('f', output.h().astype(np.float32, copy=False).tobytes())
        self.last_latent = out
        self.latent_pub.publish(out)

    def _publish_prediction(self, bev_msg: Image, action: int, post) -> None:
        steps = max(1, self.prediction_steps)
        with torch.inference_mode():
            actions = torch.full((1, steps), action, dtype=torch.long)
            states = self.model.rollout(post, actions, sample=False)
            probs = self.model.bev_probs(states)[0].numpy()
        strip = prediction_strip(probs)
        image = Image()
        image.header.stamp = bev_msg.header.stamp
        image.header.frame_id = self.role
        image.height, image.width = int(strip.shape[0]), int(strip.shape[1])
        image.encoding = 'rgb8'
        image.step = image.width * 3
        image.data = strip.tobytes()
        self.prediction_pub.publish(image)

    def publish_diagnostics(self) -> None:
        """Publish counters, the prediction error and the last step latency."""
        status = DiagnosticStatus()
        status.name = f'world_model: {self.role}'
        status.hardware_id = self.role
        dropped = sum(v for k, v in self.counters.items() if k.startswith('dropped_'))
        if self.counters['observed'] == 0:
            status.level, status.message = DiagnosticStatus.WARN, 'no BEV observed yet'
        elif self.last_error > self.threshold:
            status.level = DiagnosticStatus.WARN
            status.message = f'prediction error {self.last_error:.1f} > {self.threshold:.1f}'
        else:
            status.level, status.message = DiagnosticStatus.OK, 'ok'
        values = dict(self.counters)
        values.update({'dropped_total': dropped, 'prediction_error': f'{self.last_error:.3f}',
                       'step_latency_ms': f'{self.last_latency_ms:.2f}',
                       # vehicles per observe batch in this process (1.00: not batched)
                       'observe_batch_mean': self.batch.batcher.mean()})
        status.values = [KeyValue(key=k, value=str(v)) for k, v in sorted(values.items())]
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [status]
        self.diag_pub.publish(array)


def main(args=None) -> int:
    """Spin the node until SIGINT/SIGTERM; a bad checkpoint or config exits with code 2."""
    return spin_until_signal(WorldModelNode, args, 'world_model_node',
                             start_errors=(checkpoint.CheckpointError, ValueError))


if __name__ == '__main__':
    raise SystemExit(main())

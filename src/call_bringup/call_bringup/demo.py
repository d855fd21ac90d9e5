"""
`call_demo`: run a multi-vehicle CALL scenario end to end and show what happened.

Default: the four-lane demo scenario (4 CALL vehicles + 40 background vehicles) with the
shipped small checkpoint. Starts the node graph with the runner, prints one line per
simulation step (sim time, vehicles driving, V2V bytes, communication ranges, collisions),
and ends with the summary (success rate, mean TTC, collision rate, mean bytes/step) plus
runs/<timestamp>/demo.gif (top-down view + every vehicle's BEV), summary.json and nodes.log.
"""
import argparse
import json
import math
import os
import signal
import sys
import tempfile
import time
from typing import Optional

from call_bringup.graph import ament_share, bringup_config, GraphError
from call_bringup.run_metrics import format_summary, RunMetrics, StepReport
from call_bringup.runner import (add_graph_arguments, add_process_arguments,
                                 graph_from_arguments, process_units, Supervisor)
from call_bringup.topdown import Box, frame_layout, overview, TopDownRenderer
from call_common.msg_conversions import stamp_seconds, yaw_from_quaternion
from call_msgs.msg import CommStats
from carla_msgs.msg import CarlaWorldInfo
from derived_object_msgs.msg import ObjectArray
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image

RANDOM_CHECKPOINT_WARNING = """
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!! NO TRAINED CHECKPOINT: {missing} does not exist.
!! Using a RANDOMLY INITIALISED '{preset}' world model + actor-critic ({path}).
!! The vehicles' plans, latents and predictions are meaningless; train one with
!! call_world_model's training command (see README) and pass --checkpoint.
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
"""


def random_checkpoint(path: str, preset: str = 'small') -> str:
    """Write a randomly initialised world model + actor-critic checkpoint (no training)."""
    import torch
    from call_world_model import checkpoint
    from call_world_model.actor_critic import ActorCritic
    from call_world_model.config import load_config
    from call_world_model.world_model import WorldModel
    torch.manual_seed(0)
    cfg = load_config(preset)
    checkpoint.save(path, WorldModel(cfg), ActorCritic(cfg, cfg.feat_dim, cfg.num_actions),
                    cfg, step=0, extra={'note': 'random initialisation (call_demo fallback)'},
                    optimizers=False)
    return path


def demo_checkpoint(requested: Optional[str], run_dir: str, preset: str = 'small') -> str:
    """Pick the requested checkpoint, else the shipped one, else a random one (loudly)."""
    if requested:
        if not os.path.isfile(requested):
            raise GraphError(f'checkpoint {requested!r} does not exist')
        return os.path.abspath(requested)
    relative = bringup_config()['graph']['checkpoint']
    try:
        shipped = os.path.join(ament_share('call_world_model'), relative)
    except GraphError:
        shipped = relative
    if os.path.isfile(shipped):
        return shipped
    path = random_checkpoint(os.path.join(run_dir, f'random_{preset}.pt'), preset)
    print(RANDOM_CHECKPOINT_WARNING.format(missing=shipped, preset=preset, path=path),
          file=sys.stderr, flush=True)
    return path


class RunMonitor(Node):
    """Watches the run's topics: ticks, simulator reports, comm stats, BEVs and poses."""

    def __init__(self, roles: list[str], config: dict):
        super().__init__('call_demo_monitor')
        self.roles = roles
        self.metrics = RunMetrics(roles)
        self.sim_time: Optional[float] = None
        self.ticks = 0
        self.last_tick_wall = time.monotonic()
        self.reports: dict[float, dict] = {}
        self.last_step = -math.inf            # the simulator republishes a step to latecomers
        self.live: set = set()                # vehicles whose CommStats arrived (pipeline up)
        self.ranges: dict[str, float] = {}
        self.bevs: dict[str, np.ndarray] = {}
        self.poses: dict[str, Box] = {}
        self.others: list[Box] = []
        self.lanes: list = []
        self.renderer = TopDownRenderer([], config['topdown_px'], config['topdown_m_per_px'])
        self._live_since: Optional[float] = None
        best_effort = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                                 reliability=ReliabilityPolicy.BEST_EFFORT)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                             reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(Clock, '/clock', self._on_clock, best_effort)
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 50)
        self.create_subscription(CarlaWorldInfo, '/carla/world_info', self._on_world, latched)
        for role in roles:
            self.create_subscription(CommStats, f'/{role}/comm_stats', self._on_comm, 10)
            self.create_subscription(Image, f'/{role}/bev_color',
                                     lambda m, r=role: self._on_bev(r, m), best_effort)
            self.create_subscription(Odometry, f'/carla/{role}/odometry',
                                     lambda m, r=role: self._on_odometry(r, m), 10)
        self.create_subscription(ObjectArray, f'/carla/{roles[0]}/objects', self._on_objects,
                                 best_effort)

    def _on_clock(self, msg: Clock) -> None:
        now = stamp_seconds(msg.clock)
        if self.sim_time is None or now > self.sim_time + 1e-6:
            self.sim_time = now
            self.ticks += 1
            self.last_tick_wall = time.monotonic()

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        stamp = round(stamp_seconds(msg.header.stamp), 3)
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            role = values.get('role_name') or next(
                (r for r in self.roles if status.name.endswith(r) or
                 status.name.endswith(r + ')')), None)
            if role in self.roles and ('collision' in values or 'ttc' in values) and \
                    stamp > self.last_step:
                self.reports.setdefault(stamp, {})[role] = StepReport.from_values(values)

    def _on_comm(self, msg: CommStats) -> None:
        self.live.add(msg.vehicle_id)
        if self.live_since is not None:
            self.metrics.add_comm(stamp_seconds(msg.header.stamp), msg.vehicle_id,
                                  msg.bytes_received)
        self.ranges[msg.vehicle_id] = msg.comm_range

    def _on_bev(self, role: str, msg: Image) -> None:
        if msg.encoding == 'rgb8' and msg.height and msg.width:
            self.bevs[role] = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(
                msg.height, msg.width, 3)

    def _on_odometry(self, role: str, msg: Odometry) -> None:
        pose = msg.pose.pose
        self.poses[role] = Box(pose.position.x, pose.position.y,
                               yaw_from_quaternion(pose.orientation))

    def _on_objects(self, msg: ObjectArray) -> None:
        self.others = [Box(o.pose.position.x, o.pose.position.y,
                           yaw_from_quaternion(o.pose.orientation),
                           *(list(o.shape.dimensions[:2]) or [4.6, 1.9]))
                       for o in msg.objects if len(o.shape.dimensions) >= 2]

    def _on_world(self, msg: CarlaWorldInfo) -> None:
        try:
            from call_perception.road_map import RoadMap
            self.lanes = RoadMap.from_opendrive(msg.opendrive).lanes
        except Exception as err:  # noqa: B902 - the view works without lanes
            self.get_logger().warning(f'no lanes for the top-down view: {err}')
            return
        self.renderer = TopDownRenderer(self.lanes, self.renderer.size,
                                        1.0 / self.renderer.scale)

    @property
    def live_since(self) -> Optional[float]:
        """Sim time from which every vehicle's pipeline ran (None: still starting)."""
        return self._live_since

    def complete_steps(self) -> list[tuple[float, dict]]:
        """
        Pop the steps whose report has every vehicle (or that 2 newer steps passed).

        Steps before every vehicle's nodes were up (the simulator's lockstep times out
        while they load) are dropped: the run is measured from the first live step.
        """
        ready = []
        stamps = sorted(self.reports)
        for i, stamp in enumerate(stamps):
            if len(self.reports[stamp]) == len(self.roles) or i < len(stamps) - 2:
                reports = self.reports.pop(stamp)
                self.last_step = stamp
                if self._live_since is None and len(self.live) == len(self.roles):
                    self._live_since = stamp
                if self._live_since is not None:
                    ready.append((stamp, reports))
        return ready

    def frame(self, caption: str) -> np.ndarray:
        """Whole-scene strip plus, per CALL vehicle, the world around it and its BEV."""
        rows = [(role, self.renderer.render((self.poses[role].x, self.poses[role].y),
                                            dict(self.poses), self.others),
                 self.bevs.get(role)) for role in self.roles if role in self.poses]
        return frame_layout(rows, overview(dict(self.poses), self.others, 400), caption)


def live_line(monitor: RunMonitor, stamp: float, reports: dict, driving: int) -> str:
    """Format the per-step line: time, vehicles, bytes, ranges, collisions."""
    ranges = '/'.join('-' if r not in monitor.ranges else 'inf' if monitor.ranges[r] > 1e6
                      else f'{monitor.ranges[r]:.0f}' for r in monitor.roles)
    collisions = sum(int(r.collision) for r in reports.values())
    received = monitor.metrics.bytes_at(stamp)
    return (f't={stamp:7.1f}s  vehicles {driving}/{len(monitor.roles)}  '
            f'V2V bytes {"-" if received is None else received:>6}  ranges {ranges} m  '
            f'collisions {collisions}  (total {monitor.metrics.collision_steps})')


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of `call_demo`."""
    parser = argparse.ArgumentParser(prog='call_demo',
                                     description=__doc__.strip().splitlines()[0])
    add_graph_arguments(parser)
    parser.add_argument('--ticks', type=int, default=None, help='simulation steps to run')
    parser.add_argument('--out', default=None, help='run directory (default runs/<time>)')
    add_process_arguments(parser)
    parser.add_argument('--no-gif', action='store_true')
    parser.add_argument('--record', action='store_true', help='also write run.mcap')
    parser.add_argument('--random-preset', default='small',
                        help='preset of the random model used when no checkpoint exists')
    args = parser.parse_args(argv)
    config = bringup_config()
    demo = config['demo']
    ticks = args.ticks or demo['ticks']
    run_dir = os.path.abspath(args.out or os.path.join('runs', time.strftime('%Y%m%d-%H%M%S')))
    os.makedirs(run_dir, exist_ok=True)
    try:
        args.checkpoint = demo_checkpoint(args.checkpoint, run_dir, args.random_preset)
        args.keys_dir = os.path.join(run_dir, 'keys')
        specs = graph_from_arguments(args)
    except GraphError as err:
        print(f'call_demo: {err}', file=sys.stderr)
        return 2
    roles = sorted({s.vehicle for s in specs if s.vehicle})
    try:
        units = process_units(specs, compose=args.compose,
                              workdir=tempfile.mkdtemp(prefix='call_demo_'),
                              vehicles_per_process=args.vehicles_per_process)
    except GraphError as err:
        print(f'call_demo: {err}', file=sys.stderr)
        return 2
    log = open(os.path.join(run_dir, 'nodes.log'), 'w', encoding='utf-8')
    supervisor = Supervisor(units, output=log, last_lines=config['runner']['last_lines'])
    stop = {'requested': False}
    signal.signal(signal.SIGINT, lambda *_: stop.update(requested=True))
    signal.signal(signal.SIGTERM, lambda *_: stop.update(requested=True))
    rclpy.init()
    monitor = RunMonitor(roles, demo)
    recorder = None
    if args.record:
        from call_bringup.record import McapRecorder
        recorder = McapRecorder(os.path.join(run_dir, 'run.mcap'))
    frames, code, reason = [], 0, 'done'
    previous = None
    print(f'call_demo: {len(roles)} CALL vehicles, checkpoint {args.checkpoint}, '
          f'{ticks} steps -> {run_dir}', flush=True)
    started = time.monotonic()
    try:
        supervisor.start()
        failed_vehicles: set = set()
        while monitor.metrics.steps < ticks and not stop['requested']:
            rclpy.spin_once(monitor, timeout_sec=0.02)
            if recorder is not None:
                rclpy.spin_once(recorder, timeout_sec=0.0)
            for dead in supervisor.new_exits():
                if dead.returncode == 0 and supervisor.unit(dead.label).finishes_run:
                    stop['requested'] = True
                    continue
                print(f'call_demo: {dead.describe()}', file=sys.stderr, flush=True)
                if not dead.vehicles:
                    code, reason = 1, f'{dead.label} died'
                    stop['requested'] = True
                failed_vehicles.update(dead.vehicles)
            for stamp, reports in monitor.complete_steps():
                monitor.metrics.add_step(reports)
                driving = len(roles) - len(failed_vehicles)
                if previous is not None:       # its CommStats are in by now (lockstep)
                    print(live_line(monitor, *previous), flush=True)
                previous = (stamp, reports, driving)
                if not args.no_gif and monitor.metrics.steps % demo['gif_every'] == 0:
                    frames.append(monitor.frame(f't={stamp:.1f}s  step {monitor.metrics.steps}'))
            now = time.monotonic()
            if monitor.live_since is None and now - started > demo['startup_timeout_s']:
                missing = sorted(set(roles) - monitor.live)
                code, reason = 1, f'vehicles {missing} published no CommStats within ' \
                    f'{demo["startup_timeout_s"]:.0f} s'
                break
            if monitor.live_since is not None and \
                    now - monitor.last_tick_wall > demo['stall_timeout_s']:
                code, reason = 1, f'no simulation step for {now - monitor.last_tick_wall:.0f} s'
                break
    finally:
        supervisor.stop(config['runner']['shutdown_sigint_wait_s'],
                        config['runner']['shutdown_sigterm_wait_s'])
        if recorder is not None:
            recorder.close()
            recorder.destroy_node()
        monitor.destroy_node()
        rclpy.try_shutdown()
        log.close()
    if previous is not None:
        print(live_line(monitor, *previous), flush=True)
    summary = monitor.metrics.summary()
    summary.update(wall_s=time.monotonic() - started, vehicles=len(roles),
                   checkpoint=args.checkpoint, ended=reason)
    with open(os.path.join(run_dir, 'summary.json'), 'w', encoding='utf-8') as stream:
        json.dump(summary, stream, indent=2)
    if frames:
        import imageio.v2 as imageio
        imageio.mimsave(os.path.join(run_dir, 'demo.gif'), frames,
                        duration=1.0 / demo['gif_fps'], loop=0)
    print('\n=== CALL demo summary ===')
    print(format_summary(summary))
    print(f'run directory: {run_dir} (summary.json, nodes.log'
          f'{", demo.gif" if frames else ""}{", run.mcap" if recorder else ""})')
    if code:
        print(f'call_demo: FAILED: {reason}; see {run_dir}/nodes.log', file=sys.stderr)
        with open(os.path.join(run_dir, 'nodes.log'), encoding='utf-8') as stream:
            tail = stream.readlines()[-30:]
        sys.stderr.write(''.join(tail))
    return code


if __name__ == '__main__':
    sys.exit(main())

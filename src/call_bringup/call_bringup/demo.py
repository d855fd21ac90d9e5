"""
`call_demo`: run a multi-vehicle CALL scenario end to end and show what happened.

Default: the four-lane demo scenario (4 CALL vehicles + 40 background vehicles) with the
shipped small checkpoint, four vehicles per process. Starts the node graph with the runner,
prints one line per simulation step (sim time, vehicles driving, V2V bytes, per vehicle its
communication range, the neighbours it hears, the vehicles sharing added to its BEV and
whether E > c, collisions), and ends with the summary (success rate, collisions, TTC, min TTC
per conflict, first-deceleration time, bytes/step) plus runs/<timestamp>/demo.gif (top-down
view with ranges and V2V links, every vehicle's fused BEV and K-step prediction),
summary.json and nodes.log. `--compare local` runs the same seed and scenario a second time
with local observation only (c = inf: no vehicle shares) and prints both side by side.
"""
import argparse
import json
import math
import os
import signal
import sys
import tempfile
import threading
import time
from typing import Optional

from call_bringup.conflicts import ConflictTracker
from call_bringup.foxglove_live import add_foxglove_argument, foxglove_unit
from call_bringup.graph import ament_share, bringup_config, GraphError
from call_bringup.process_unit import ProcessUnit
from call_bringup.run_metrics import (format_comparison, format_summary, RunMetrics,
                                      StepReport)
from call_bringup.runner import (add_graph_arguments, add_process_arguments,
                                 graph_from_arguments, process_units, Supervisor)
from call_bringup.step_view import format_views, StepViews
from call_bringup.topdown import Box, frame_layout, mark_shared, overview, TopDownRenderer
from call_common.msg_conversions import stamp_seconds, yaw_from_quaternion
from call_msgs.msg import Action, CommStats
from call_perception.bev_raster import CHANNEL_INDEX, CHANNELS
from call_perception.colorize import colorize
from carla_msgs.msg import CarlaWorldInfo
from derived_object_msgs.msg import ObjectArray
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image

# A step's line is printed once this many newer steps completed: the planner answers from the
# latent state, so the simulator can step on before that step's CommStats arrive.
LINE_DELAY_STEPS = 2

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

    def __init__(self, roles: list[str], config: dict, images: bool = True):
        super().__init__('call_demo_monitor')
        self.lock = threading.Lock()          # callbacks (executor thread) vs the demo loop
        self.roles = roles
        self.metrics = RunMetrics(roles)
        self.views = StepViews(roles)
        self.conflicts = ConflictTracker(config['conflict_ttc_s'])
        self.sim_time: Optional[float] = None
        self.ticks = 0
        self.last_tick_wall = time.monotonic()
        self.first_tick_wall: Optional[float] = None
        self.first_live_wall: Optional[float] = None
        self.errors: list = []                # (stamp, E) of every CommStats (choose c from E)
        self.missed_ticks = 0                 # the simulator's lockstep counter
        self.reports: dict[float, dict] = {}
        self.last_step = -math.inf            # the simulator republishes a step to latecomers
        self.live: set = set()                # vehicles whose CommStats arrived (pipeline up)
        self.bevs: dict[str, np.ndarray] = {}
        self.predictions: dict[str, np.ndarray] = {}
        self.poses: dict[str, Box] = {}
        self.objects: dict[str, list] = {}
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
            self.create_subscription(CommStats, f'/{role}/comm_stats', self._on_comm, 100)
            self.create_subscription(Action, f'/{role}/action',
                                     lambda m, r=role: self._on_action(r, m), 10)
            self.create_subscription(Odometry, f'/carla/{role}/odometry',
                                     lambda m, r=role: self._on_odometry(r, m), 10)
            if images:
                self.create_subscription(Image, f'/{role}/bev',
                                         lambda m, r=role: self._on_bev(r, m), best_effort)
                self.create_subscription(Image, f'/{role}/prediction_color',
                                         lambda m, r=role: self._on_prediction(r, m),
                                         best_effort)
                self.create_subscription(ObjectArray, f'/carla/{role}/objects',
                                         lambda m, r=role: self._on_objects(r, m), best_effort)

    def create_subscription(self, msg_type, topic, callback, qos, **kwargs):
        """Subscribe with `callback` run under `self.lock` (the executor spins in a thread)."""
        def locked(msg) -> None:
            with self.lock:
                callback(msg)
        return super().create_subscription(msg_type, topic, locked, qos, **kwargs)

    def _on_clock(self, msg: Clock) -> None:
        now = stamp_seconds(msg.clock)
        if self.sim_time is None or now > self.sim_time + 1e-6:
            self.sim_time = now
            self.ticks += 1
            self.last_tick_wall = time.monotonic()
            if self.first_tick_wall is None:
                self.first_tick_wall = self.last_tick_wall

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        stamp = round(stamp_seconds(msg.header.stamp), 3)
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            if status.name == 'call_sim: lockstep':
                self.missed_ticks = int(values.get('missed_ticks', self.missed_ticks))
                continue
            if status.name.startswith('call_perception: ') and 'shared_only' in values:
                try:
                    self.views.add_shared_only(stamp, status.hardware_id,
                                               int(values['shared_only']))
                except ValueError:
                    pass
                continue
            if status.name == f'{status.hardware_id}/planner' and \
                    status.hardware_id in self.roles:
                self.metrics.add_planner_counts(status.hardware_id, values)
                continue
            role = values.get('role_name') or next(
                (r for r in self.roles if status.name.endswith(r) or
                 status.name.endswith(r + ')')), None)
            if role in self.roles and ('collision' in values or 'ttc' in values) and \
                    stamp > self.last_step:
                self.reports.setdefault(stamp, {})[role] = StepReport.from_values(values)

    def _on_comm(self, msg: CommStats) -> None:
        # kept from the first message on: a live step's CommStats can come in before the
        # main loop, late on a loaded machine, has found that step to be the first live one
        self.live.add(msg.vehicle_id)
        stamp = stamp_seconds(msg.header.stamp)
        self.metrics.add_comm(stamp, msg.vehicle_id, msg.bytes_received)
        self.views.add_comm(stamp, msg.vehicle_id, msg.comm_range, list(msg.neighbours),
                            msg.prediction_error, msg.threshold, msg.bytes_received)
        if math.isfinite(msg.prediction_error):
            self.errors.append((stamp, float(msg.prediction_error)))

    def live_errors(self) -> list:
        """E of the CommStats of the measured steps."""
        if self._live_since is None:
            return []
        return [e for t, e in self.errors if self.metrics.measured(t)]

    def _on_action(self, role: str, msg: Action) -> None:
        self.conflicts.add_action(role, stamp_seconds(msg.header.stamp), msg.accel)

    def _on_bev(self, role: str, msg: Image) -> None:
        channels = len(CHANNELS)
        if msg.encoding == f'8UC{channels}' and msg.height and msg.width:
            self.bevs[role] = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(
                msg.height, msg.width, channels)

    def _on_prediction(self, role: str, msg: Image) -> None:
        if msg.encoding == 'rgb8' and msg.height and msg.width:
            self.predictions[role] = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(
                msg.height, msg.width, 3)

    def _on_odometry(self, role: str, msg: Odometry) -> None:
        pose = msg.pose.pose
        self.poses[role] = Box(pose.position.x, pose.position.y,
                               yaw_from_quaternion(pose.orientation))

    def _on_objects(self, role: str, msg: ObjectArray) -> None:
        self.objects[role] = [(o.id, Box(o.pose.position.x, o.pose.position.y,
                                         yaw_from_quaternion(o.pose.orientation),
                                         *o.shape.dimensions[:2]))
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
                    self.metrics.measured_from = stamp
                    self.first_live_wall = time.monotonic()
                if self._live_since is not None:
                    ready.append((stamp, reports))
        return ready

    def add_step(self, stamp: float, reports: dict) -> None:
        """Count one live step in the summary and the conflicts."""
        self.metrics.add_step(reports)
        for role, report in reports.items():
            self.conflicts.add_ttc(role, stamp, report.ttc, report.collision)

    def frame(self, stamp: float, caption: str) -> np.ndarray:
        """Whole-scene strip plus, per CALL vehicle, the world, its fused BEV, its prediction."""
        views = self.views.at(stamp)
        ranges = {r: v.comm_range for r, v in views.items() if v.comm_range is not None}
        links = self.views.links(stamp)
        unique = {}
        for boxes in self.objects.values():
            unique.update(boxes)
        heroes = dict(self.poses)
        others = [box for key, box in unique.items()
                  if all(abs(box.x - h.x) + abs(box.y - h.y) > 0.5 for h in heroes.values())]
        rows, notes = [], {}
        for role in self.roles:
            if role not in self.poses:
                continue
            bev = self.bevs.get(role)
            fused = None if bev is None else mark_shared(
                colorize(bev.transpose(2, 0, 1)), bev[:, :, CHANNEL_INDEX['shared_vehicles']])
            rows.append((role, self.renderer.render((heroes[role].x, heroes[role].y), heroes,
                                                    others, ranges=ranges, links=links),
                         fused, self.predictions.get(role)))
            view = views[role]
            notes[role] = (f'hears {len(view.heard)}, +{view.added or 0} by sharing'
                           if view.comm_range is not None else '')
        return frame_layout(rows, overview(heroes, others, 800), caption, notes=notes)


def live_line(monitor: RunMonitor, stamp: float, reports: dict, driving: int) -> str:
    """Format the per-step line: time, vehicles, bytes, what sharing did, collisions."""
    collisions = sum(int(r.collision) for r in reports.values())
    received = monitor.metrics.bytes_at(stamp)
    return (f't={stamp:7.1f}s  vehicles {driving}/{len(monitor.roles)}  '
            f'V2V bytes {"-" if received is None else received:>6}  '
            f'{format_views(monitor.views.at(stamp))}  '
            f'collisions {collisions}  (total {monitor.metrics.collision_steps})')


def parse_arguments(argv: Optional[list[str]], demo: dict) -> argparse.Namespace:
    """Command line of `call_demo`; the demo's own defaults come from bringup.yaml."""
    parser = argparse.ArgumentParser(prog='call_demo',
                                     description=__doc__.strip().splitlines()[0])
    add_graph_arguments(parser)
    parser.add_argument('--ticks', type=int, default=None, help='simulation steps to run')
    parser.add_argument('--out', default=None, help='run directory (default runs/<time>)')
    add_process_arguments(parser)
    parser.add_argument('--one-process-per-node', dest='compose', action='store_false',
                        help='every node its own process (slower start, isolated crashes)')
    parser.add_argument('--compare', choices=('local',), default=None,
                        help='local: run again with local observation only (c = inf, no '
                        'sharing), same seed and scenario, and print both side by side')
    parser.add_argument('--no-gif', action='store_true')
    parser.add_argument('--record', action='store_true', help='also write run.mcap')
    add_foxglove_argument(parser)
    parser.add_argument('--random-preset', default='small',
                        help='preset of the random model used when no checkpoint exists')
    parser.set_defaults(compose=demo['compose'],
                        vehicles_per_process=demo['vehicles_per_process'],
                        scenario=demo['scenario'], c=demo['c'])
    args = parser.parse_args(argv)
    args.set = list(demo['parameters']) + args.set
    return args


def run_once(args: argparse.Namespace, run_dir: str, config: dict) -> tuple[int, dict]:
    """One run of the node graph: the live lines, then its summary (written to run_dir)."""
    demo = config['demo']
    ticks = args.ticks or demo['ticks']
    os.makedirs(run_dir, exist_ok=True)
    try:
        args.keys_dir = os.path.join(run_dir, 'keys')
        specs = graph_from_arguments(args)
        roles = sorted({s.vehicle for s in specs if s.vehicle})
        units = process_units(specs, compose=args.compose,
                              workdir=tempfile.mkdtemp(prefix='call_demo_'),
                              vehicles_per_process=args.vehicles_per_process)
        if args.foxglove or args.record:
            units.append(foxglove_unit(roles, args.foxglove_port, serve=args.foxglove))
        if args.record:          # a process of its own: it keeps up with every image topic
            units.append(ProcessUnit('call_record', [
                sys.executable, '-m', 'call_bringup.record', '-o',
                os.path.join(run_dir, 'run.mcap')]))
    except GraphError as err:
        print(f'call_demo: {err}', file=sys.stderr)
        return 2, {}
    log = open(os.path.join(run_dir, 'nodes.log'), 'w', encoding='utf-8')
    supervisor = Supervisor(units, output=log, last_lines=config['runner']['last_lines'])
    stop = {'requested': False}
    signal.signal(signal.SIGINT, lambda *_: stop.update(requested=True))
    signal.signal(signal.SIGTERM, lambda *_: stop.update(requested=True))
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    monitor = RunMonitor(roles, demo, images=not args.no_gif)
    frames, code, reason = [], 0, 'done'
    pending: list = []               # steps whose line waits for their CommStats
    print(f'call_demo: {len(roles)} CALL vehicles, c = {args.c}, scenario {args.scenario}, '
          f'checkpoint {args.checkpoint}, {ticks} steps -> {run_dir}', flush=True)
    started = time.monotonic()
    # the monitor spins in a thread of its own, so it keeps up with every step's messages
    # however long the loop below takes to print a line or draw a GIF frame
    executor = SingleThreadedExecutor()
    executor.add_node(monitor)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        supervisor.start()
        failed_vehicles: set = set()
        while monitor.metrics.steps < ticks and not stop['requested']:
            time.sleep(0.02)
            for dead in supervisor.new_exits():
                if dead.returncode == 0 and supervisor.unit(dead.label).finishes_run:
                    stop['requested'] = True
                    continue
                print(f'call_demo: {dead.describe()}', file=sys.stderr, flush=True)
                if not dead.vehicles:
                    code, reason = 1, f'{dead.label} died'
                    stop['requested'] = True
                failed_vehicles.update(dead.vehicles)
            with monitor.lock:
                steps = monitor.complete_steps()
            for stamp, reports in steps:
                with monitor.lock:
                    monitor.add_step(stamp, reports)
                driving = len(roles) - len(failed_vehicles)
                pending.append((stamp, reports, driving))
                while len(pending) > LINE_DELAY_STEPS:  # its CommStats are in by now
                    shown = pending.pop(0)
                    with monitor.lock:
                        line = live_line(monitor, *shown)
                        frame = None
                        if not args.no_gif and monitor.metrics.steps % demo['gif_every'] == 0:
                            frame = monitor.frame(shown[0], f't={shown[0]:.1f}s  step '
                                                  f'{monitor.metrics.steps - LINE_DELAY_STEPS}')
                    print(line, flush=True)
                    if frame is not None:
                        frames.append(frame)
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
        if code == 0 and monitor.metrics.steps >= ticks:
            monitor.metrics.measured_until = monitor.last_step
            wait_for_comm_stats(monitor, set(roles) - failed_vehicles,
                                demo['comm_stats_wait_s'], stop)
    finally:
        supervisor.stop(config['runner']['shutdown_sigint_wait_s'],
                        config['runner']['shutdown_sigterm_wait_s'])
        executor.shutdown()
        spinner.join(timeout=2.0)
        monitor.destroy_node()
        rclpy.try_shutdown()
        log.close()
    for shown in pending:
        print(live_line(monitor, *shown), flush=True)
    monitor.conflicts.finish()
    summary = monitor.metrics.summary()
    summary.update(monitor.conflicts.summary())
    errors = monitor.live_errors()
    summary.update(wall_s=time.monotonic() - started, vehicles=len(roles),
                   checkpoint=args.checkpoint, c=args.c, scenario=args.scenario, ended=reason,
                   first_tick_s=(None if monitor.first_tick_wall is None
                                 else monitor.first_tick_wall - started),
                   first_live_step_s=(None if monitor.first_live_wall is None
                                      else monitor.first_live_wall - started),
                   prediction_error_quartiles=(
                       [float(q) for q in np.percentile(errors, (25, 50, 75))]
                       if errors else None),
                   steps_with_v2v_bytes=monitor.metrics.steps_with_bytes(),
                   missed_ticks=monitor.missed_ticks)
    with open(os.path.join(run_dir, 'summary.json'), 'w', encoding='utf-8') as stream:
        json.dump(summary, stream, indent=2)
    if frames:
        import imageio.v2 as imageio
        imageio.mimsave(os.path.join(run_dir, 'demo.gif'), frames,
                        duration=1.0 / demo['gif_fps'], loop=0)
    print(format_summary(summary))
    print(f'run directory: {run_dir} (summary.json, nodes.log'
          f'{", demo.gif" if frames else ""}{", run.mcap" if args.record else ""})')
    if code:
        print(f'call_demo: FAILED: {reason}; see {run_dir}/nodes.log', file=sys.stderr)
        with open(os.path.join(run_dir, 'nodes.log'), encoding='utf-8') as stream:
            tail = stream.readlines()[-30:]
        sys.stderr.write(''.join(tail))
    return code, summary


def wait_for_comm_stats(monitor: RunMonitor, roles: set, timeout_s: float, stop: dict) -> None:
    """
    Wait until `roles`' CommStats reach the last measured step, or `timeout_s` passed.

    Stopping the nodes at once would lose the bytes and E of the run's last steps whenever
    comm lags the simulator (see `RunMetrics.comm_behind`).
    """
    deadline = time.monotonic() + timeout_s
    while not stop['requested'] and time.monotonic() < deadline:
        with monitor.lock:
            if not monitor.metrics.comm_behind(monitor.metrics.measured_until, roles):
                return
        time.sleep(0.02)


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of `call_demo`."""
    config = bringup_config()
    args = parse_arguments(argv, config['demo'])
    run_dir = os.path.abspath(args.out or os.path.join('runs', time.strftime('%Y%m%d-%H%M%S')))
    os.makedirs(run_dir, exist_ok=True)
    try:
        args.checkpoint = demo_checkpoint(args.checkpoint, run_dir, args.random_preset)
    except GraphError as err:
        print(f'call_demo: {err}', file=sys.stderr)
        return 2
    if args.compare is None:
        return run_once(args, run_dir, config)[0]
    runs = {}
    code = 0
    for label, c in (('CALL', args.c), ('local', math.inf)):
        print(f'\n=== {label}: c = {c} ===', flush=True)
        args.c = c
        code, runs[label] = run_once(argparse.Namespace(**vars(args)),
                                     os.path.join(run_dir, label), config)
        if code:
            return code
    table = format_comparison(runs)
    print('\n=== CALL vs local observation (same seed and scenario) ===')
    print(table)
    with open(os.path.join(run_dir, 'comparison.json'), 'w', encoding='utf-8') as stream:
        json.dump(runs, stream, indent=2)
    return code


if __name__ == '__main__':
    sys.exit(main())

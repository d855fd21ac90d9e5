"""
Helpers of the end-to-end tests: start a real CALL graph and watch it over real DDS.

Not a test module. The graph runs as separate processes (runner Supervisor); the probe is
an rclpy node on its own context in the test process.
"""
import collections
import io
import math
import os
import re
import time
from typing import Callable, Iterable, Optional
import warnings

from call_bringup.demo import random_checkpoint
from call_bringup.fleet_keys import ensure_fleet_keys
from call_bringup.graph import ament_share, build_graph
from call_bringup.runner import process_units, Supervisor, UnitExit
from call_msgs.msg import Action, CommStats, LatentMessage, LatentState, SharedInformation
from carla_msgs.msg import CarlaEgoVehicleControl, CarlaEgoVehicleStatus
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message
from rosgraph_msgs.msg import Clock
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIO = os.path.join(HERE, 'scenarios', 'three_vehicles.yaml')
ROLES = ('hero0', 'hero1', 'hero2')


def stamp_key(stamp) -> float:
    """Return the simulation time of a header stamp, rounded to the 0.1 s step grid."""
    return round(stamp.sec + stamp.nanosec * 1e-9, 3)


def control_key(control) -> tuple[float, float, float]:
    """Return the (throttle, steer, brake) of a command or of a status's applied control."""
    return (control.throttle, control.steer, control.brake)


def checkpoint_for_tests(directory: str) -> str:
    """Return the shipped small checkpoint if installed, else a random small one."""
    try:
        shipped = os.path.join(ament_share('call_world_model'), 'checkpoints', 'call_small.pt')
    except Exception:  # noqa: B902 - not installed: fall back
        shipped = ''
    if os.path.isfile(shipped):
        return shipped
    import torch
    torch.set_num_threads(1)
    return random_checkpoint(os.path.join(directory, 'random_small.pt'), 'small')


def shipped_checkpoint(name: str) -> str:
    """Return the installed path of a checkpoint shipped in call_world_model/checkpoints."""
    path = os.path.join(ament_share('call_world_model'), 'checkpoints', name)
    assert os.path.isfile(path), f'{name} is shipped but not installed: rebuild call_world_model'
    return path


class GraphProbe:
    """Records what the graph publishes: ticks, CommStats, latents, odometry, commands."""

    def __init__(self, v2v_topics: tuple = ('/v2v/latents',), fleet_file: str = ''):
        # LatentMessage v2 names its sender by key id: the fleet file gives the role names
        from call_comm.auth import Fleet
        fleet = Fleet.load(fleet_file) if fleet_file else None
        self.names = {fleet.key_id(r): r for r in fleet.members()} if fleet else {}
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('e2e_probe', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.clock = -1.0
        self.ticks: list[float] = []
        self.stats: dict[str, list[CommStats]] = collections.defaultdict(list)
        self.latents: dict[tuple[str, float], tuple[LatentMessage, int]] = {}
        self.by_sequence: dict[tuple[str, int], tuple[LatentMessage, int]] = {}
        self.shared: dict[tuple[str, float], SharedInformation] = {}
        self.odometry: dict[str, dict[float, tuple[float, float, float]]] = \
            collections.defaultdict(dict)
        self.commands: dict[str, list[CarlaEgoVehicleControl]] = collections.defaultdict(list)
        self.actions: dict[str, list[Action]] = collections.defaultdict(list)
        # stamps of each world model's latent states: what a planned action can answer
        self.states: dict[str, list[float]] = collections.defaultdict(list)
        # per vehicle and step: the control the simulator applied stepping to that step
        # (vehicle_status reports the command it stepped on)
        self.applied: dict[str, dict[float, tuple]] = collections.defaultdict(dict)
        self.sim_status: dict[str, str] = {}
        # the simulator's count of lockstep timeouts, by the step whose report gave it
        self.sim_missed: dict[float, int] = {}
        self.planner_status: dict[str, list[str]] = collections.defaultdict(list)
        best_effort = QoSProfile(depth=200, history=HistoryPolicy.KEEP_LAST,
                                 reliability=ReliabilityPolicy.BEST_EFFORT)
        self.node.create_subscription(Clock, '/clock', self._on_clock, best_effort)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics,
                                      100)
        for topic in v2v_topics:
            self.node.create_subscription(LatentMessage, topic, self._on_latent, best_effort)
        for role in ROLES:
            self.node.create_subscription(CommStats, f'/{role}/comm_stats',
                                          lambda m, r=role: self.stats[r].append(m), 100)
            self.node.create_subscription(
                SharedInformation, f'/{role}/shared_info',
                lambda m, r=role: self.shared.__setitem__((r, stamp_key(m.header.stamp)), m),
                100)
            self.node.create_subscription(Odometry, f'/carla/{role}/odometry',
                                          lambda m, r=role: self._on_odometry(r, m), 100)
            self.node.create_subscription(
                LatentState, f'/{role}/latent_state',
                lambda m, r=role: self.states[r].append(stamp_key(m.header.stamp)), 100)
            self.node.create_subscription(Action, f'/{role}/action',
                                          lambda m, r=role: self.actions[r].append(m), 100)
            self.node.create_subscription(CarlaEgoVehicleControl,
                                          f'/carla/{role}/vehicle_control_cmd',
                                          lambda m, r=role: self.commands[r].append(m), 100)
            self.node.create_subscription(
                CarlaEgoVehicleStatus, f'/carla/{role}/vehicle_status',
                lambda m, r=role: self.applied[r].__setitem__(stamp_key(m.header.stamp),
                                                              control_key(m.control)), 100)

    def _on_clock(self, msg: Clock) -> None:
        now = stamp_key(msg.clock)
        if now > self.clock:
            self.clock = now
            self.ticks.append(now)

    def sender(self, msg: LatentMessage) -> str:
        """Return the role name who signed the message, `#<key id>` if not in the fleet."""
        return self.names.get(msg.sender_key_id, f'#{msg.sender_key_id:08x}')

    def _on_latent(self, msg: LatentMessage) -> None:
        key = (self.sender(msg), stamp_key(msg.stamp))
        if key not in self.latents:            # a relay delivers one message to several topics
            self.latents[key] = (msg, len(serialize_message(msg)))
            self.by_sequence[(key[0], msg.sequence)] = self.latents[key]

    def _on_odometry(self, role: str, msg: Odometry) -> None:
        pose, twist = msg.pose.pose.position, msg.twist.twist.linear
        speed = math.hypot(twist.x, twist.y)
        self.odometry[role][stamp_key(msg.header.stamp)] = (pose.x, pose.y, speed)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            if status.name == 'call_sim: lockstep':
                self.sim_status = values
                self.sim_missed[stamp_key(msg.header.stamp)] = int(values['missed_ticks'])
            elif 'planner' in status.name:
                self.planner_status[status.hardware_id or status.name].append(status.message)

    def live(self) -> bool:
        """Every vehicle's pipeline is up: each published CommStats."""
        return all(self.stats[r] for r in ROLES)

    def answering(self) -> bool:
        """
        Tell whether every vehicle's planner has answered a step the probe has seen tick.

        CommStats can flow before a planner is up (on a loaded machine its nodes may load
        after the simulator's start-up hold, which then steps on lockstep timeouts without
        its commands); from its first answer on, a planner answers every step: its inputs'
        writers are matched, and each stage passes each step on, late or not.
        """
        if not all(self.commands[r] for r in ROLES):
            return False
        return self.clock >= max(stamp_key(self.commands[r][0].header.stamp) for r in ROLES)

    def missed_ticks_between(self, start: float, end: float) -> Optional[int]:
        """
        Return the lockstep timeouts the simulator counted stepping from `start` to `end`.

        From its reports of those steps, else the nearest ones outside (an upper bound);
        None until a report of `end` or later has come.
        """
        before = [s for s in self.sim_missed if s <= start]
        after = [s for s in self.sim_missed if s >= end]
        if not after:
            return None
        low = self.sim_missed[max(before)] if before else 0
        return self.sim_missed[min(after)] - low

    def publishers_seen(self, topics: Optional[Iterable[str]] = None) -> bool:
        """
        Tell whether every topic the probe reads (or each of ``topics``) has a publisher in view.

        The probe's subscriptions are volatile: a writer that Fast DDS discovers later than the
        others (endpoints are discovered one by one) loses its first messages to the probe, so
        a test that counts messages waits for this before its window starts.
        """
        names = [s.topic_name for s in self.node.subscriptions] if topics is None else topics
        return all(self.node.count_publishers(name) > 0 for name in names)

    def spin_until(self, done: Callable[[], bool], timeout: float, supervisor: Supervisor,
                   exits: list) -> bool:
        """Spin until `done()` or the timeout; collect unexpected process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.02)
            exits.extend(supervisor.new_exits())
            if done():
                return True
        return False

    def close(self, settle: float = 10.0) -> None:
        """
        Destroy the probe node and its context, once the stopped graph has left its view.

        Fast DDS can deadlock when a writer is deleted while its participant is removing a
        remote one (eProsima/Fast-DDS#6193, #6502; seen here once, the probe hung in
        ``destroy_publisher`` right after the graph exited), so the probe first waits, at
        most ``settle`` seconds, until no other node is in its graph.
        """
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline and len(self.node.get_node_names()) > 1:
            self.executor.spin_once(timeout_sec=0.05)
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def scenario_variant(directory: str, name: str, **changes) -> str:
    """Write the test scenario with `changes` as `directory`/`name`.yaml; return its path."""
    with open(SCENARIO, encoding='utf-8') as stream:
        scenario = dict(yaml.safe_load(stream), **changes)
    path = os.path.join(directory, f'{name}.yaml')
    with open(path, 'w', encoding='utf-8') as stream:
        yaml.safe_dump(scenario, stream)
    return path


def start_graph(work: str, checkpoint: str, **graph_args) -> Supervisor:
    """Build the 3-vehicle test graph (installed packages) and start it as processes."""
    keys = os.path.join(work, 'keys')
    specs = build_graph(scenario=SCENARIO, checkpoint=checkpoint, keys_dir=keys,
                        work_dir=work, **graph_args)
    ensure_fleet_keys(keys, list(ROLES))
    supervisor = Supervisor(process_units(specs, workdir=work), output=io.StringIO(),
                            last_lines=200)
    supervisor.start()
    return supervisor


# the innermost frame of a thread in rclpy's teardown (destroy_node, a destroy_*, shutdown)
_TEARDOWN_FRAME = re.compile(r'/rclpy/\w+\.py", line \d+ in (destroy\w*|shutdown|try_shutdown)$')


def middleware_teardown_hang(lines: Iterable[str]) -> bool:
    """
    Tell whether a unit's output ends in the stop watchdog's dump, a thread in rclpy's teardown.

    call_common.node_main bounds a stop with faulthandler's watchdog ('Timeout (...)!', then
    each thread as 'Thread 0x... (most recent call first):' and its frames, innermost first).
    A thread stuck in rclpy's teardown is Fast DDS's teardown deadlock (eProsima/Fast-DDS#6502,
    DEVELOPERS.md), which a node can leave only by exiting.
    """
    lines = [line.strip() for line in lines]
    starts = [i for i, line in enumerate(lines) if line.startswith('Timeout (')]
    if not starts:
        return False
    dump = lines[starts[-1] + 1:]
    innermost = [dump[i + 1] for i, line in enumerate(dump[:-1])
                 if line.endswith('(most recent call first):')]
    return any(_TEARDOWN_FRAME.search(frame) for frame in innermost)


def unclean_stops(supervisor: Supervisor) -> list[UnitExit]:
    """
    List the units that did not exit 0 after a stop, each with its last 40 lines.

    A unit that exited 1 from the middleware's teardown deadlock (`middleware_teardown_hang`)
    is not listed but warned of: the node's own stop ran to its end, and the bound held.
    """
    unclean = []
    for unit in supervisor.units:
        code, lines = unit.process.returncode, list(unit.last_lines)
        if code == 1 and middleware_teardown_hang(lines):
            warnings.warn(f'{unit.label}: its stop hung in the middleware teardown '
                          '(eProsima/Fast-DDS#6502); the stop watchdog ended it with code 1',
                          RuntimeWarning)
        elif code != 0:
            unclean.append(UnitExit(unit.label, unit.vehicles, code, tuple(lines[-40:])))
    return unclean


def distance(a: tuple, b: tuple) -> float:
    """Planar distance of two (x, y, ...) tuples."""
    return math.hypot(a[0] - b[0], a[1] - b[1])


def accepted_messages(probe: GraphProbe, receiver: str, stamp: float) -> Optional[list]:
    """
    Look up the (message, serialized size) pairs a receiver accepted at `stamp`.

    None when that shared_info was not captured; an entry is None when the accepted
    message itself was not captured on the V2V topic.
    """
    shared = probe.shared.get((receiver, stamp))
    if shared is None:
        return None
    return [probe.by_sequence.get((n.sender_id, n.sequence)) for n in shared.neighbours]

"""
`call_run`: the pip environment's stand-in for `ros2 launch call_bringup multi_vehicle...`.

Starts the node graph of `call_bringup.graph.build_graph` as supervised subprocesses (one per
node; with `--compose` one container per vehicle, or per `--vehicles-per-process` vehicles,
0: one container per CPU core),
prefixes every output line with the node's name, forwards Ctrl-C/SIGTERM as SIGINT ->
SIGTERM -> SIGKILL with bounded waits, and fails loudly (exit 1, which node, its last output)
when a node dies, unless `--tolerate-vehicle-failure` is given: then a dead vehicle is
reported and the rest drive on.
"""
import argparse
import collections
from dataclasses import dataclass
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Optional, TextIO

from call_bringup.fleet_keys import ensure_fleet_keys
from call_bringup.foxglove_live import add_foxglove_argument, foxglove_unit
from call_bringup.graph import bringup_config, build_graph, GraphError, NodeSpec
from call_bringup.process_unit import ProcessUnit
import yaml

# Popen's process_group is Python >= 3.11; Humble's Ubuntu 22.04 has 3.10
_OWN_PROCESS_GROUP = ({'process_group': 0} if sys.version_info >= (3, 11)
                      else {'preexec_fn': os.setpgrp})


@dataclass(frozen=True)
class UnitExit:
    """A unit that exited while the run was going on."""

    label: str
    vehicles: tuple[str, ...]
    returncode: int
    last_lines: tuple[str, ...]

    def describe(self) -> str:
        """Human-readable report: which node, how it ended, its last output."""
        how = (f'killed by signal {-self.returncode}' if self.returncode < 0
               else f'exit code {self.returncode}')
        tail = '\n'.join('    ' + line for line in self.last_lines) or '    (no output)'
        return f'node {self.label} died ({how}); its last output:\n{tail}'


def installed_executable(package: str, executable: str) -> Optional[str]:
    """Locate `<prefix>/lib/<package>/<executable>` via the ament index, if installed."""
    try:
        from ament_index_python.packages import get_package_prefix
        path = os.path.join(get_package_prefix(package), 'lib', package, executable)
    except (ImportError, LookupError):
        return None
    return path if os.access(path, os.X_OK) else None


def _param_arg(value) -> str:
    """Format a parameter value as `-p name:=<yaml>` expects it."""
    if isinstance(value, float) and value == float('inf'):
        return '.inf'
    return yaml.safe_dump(value, default_flow_style=True, width=1 << 20).strip() \
        .removesuffix('...').strip()


def ros_arguments(spec: NodeSpec) -> list[str]:
    """`--ros-args` of one node: namespace, name, params files, -p overrides, remappings."""
    args = ['--ros-args']
    if spec.namespace:
        args += ['-r', f'__ns:={spec.namespace}']
    args += ['-r', f'__node:={spec.name}']
    for entry in spec.parameters:
        if isinstance(entry, dict):
            for key, value in entry.items():
                args += ['-p', f'{key}:={_param_arg(value)}']
        else:
            args += ['--params-file', entry]
    for source, target in spec.remappings:
        args += ['-r', f'{source}:={target}']
    return args


def node_command(spec: NodeSpec, prefer_module: bool = False) -> list[str]:
    """Build one node's command: its console script, else `python -m module`."""
    script = None if prefer_module else installed_executable(spec.package, spec.executable)
    if script:
        head = [script]
    elif spec.module:
        head = [sys.executable, '-m', spec.module]
    else:
        raise GraphError(f'{spec.package} {spec.executable}: not installed and no module known')
    return head + ros_arguments(spec)


MIN_AUTO_VEHICLES_PER_PROCESS = 4


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity where the OS tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:      # not Linux
        return max(1, os.cpu_count() or 1)


def auto_vehicles_per_process(num_vehicles: int, cores: Optional[int] = None) -> int:
    """
    Vehicles per container when the layout says 0 (auto): one container per core, >= 4 each.

    A container does part of its work once per sender it hears, whichever of its vehicles
    hears it: each V2V message is decoded and its signature verified once per process
    (`call_comm.inbox`), each sender's h rebuilt once (`call_comm.replica`) and its view
    decoded once (`call_comm.view_decoding`). The fleet pays that work containers x senders
    times per tick, so containers beyond the cores add it without adding parallelism (a
    container is one executor thread). Below four vehicles a container's own costs (an
    interpreter, torch, the checkpoint, a DDS participant) buy nothing on a small machine.
    """
    cores = usable_cores() if cores is None else max(1, int(cores))
    return max(MIN_AUTO_VEHICLES_PER_PROCESS, -(-int(num_vehicles) // cores))


def vehicle_groups(specs: list[NodeSpec], vehicles_per_process: int
                   ) -> list[tuple[tuple[str, ...], list[NodeSpec]]]:
    """
    Split the vehicles' node specs into containers of `vehicles_per_process` vehicles.

    0 sizes them with `auto_vehicles_per_process` for the number of vehicles in `specs`.
    """
    if vehicles_per_process < 0:
        raise GraphError(f'vehicles per process must be >= 1 (0: auto), '
                         f'got {vehicles_per_process}')
    by_vehicle: dict[str, list[NodeSpec]] = {}
    for spec in specs:
        if spec.vehicle:
            by_vehicle.setdefault(spec.vehicle, []).append(spec)
    vehicles = list(by_vehicle)
    if vehicles_per_process == 0:
        vehicles_per_process = auto_vehicles_per_process(len(vehicles))
    groups = []
    for start in range(0, len(vehicles), vehicles_per_process):
        group = tuple(vehicles[start:start + vehicles_per_process])
        groups.append((group, [s for vehicle in group for s in by_vehicle[vehicle]]))
    return groups


def write_container_file(specs: list[NodeSpec], path: str) -> str:
    """Write the node list `call_bringup.compose` reads (module, name, own --ros-args)."""
    with open(path, 'w', encoding='utf-8') as stream:
        json.dump([{'module': s.module, 'name': s.name, 'ros_args': ros_arguments(s)}
                   for s in specs], stream)
    return path


def process_units(specs: list[NodeSpec], compose: bool = False,
                  prefer_module: bool = False,
                  workdir: Optional[str] = None,
                  vehicles_per_process: int = 1) -> list[ProcessUnit]:
    """
    Turn node specs into processes: one per node, or containers of vehicles' nodes.

    A container (`compose`) runs the nodes of `vehicles_per_process` vehicles on one executor;
    each node gets the very arguments it has as a process of its own (`ros_arguments`).
    More vehicles per container save CPU per tick (fewer processes, DDS participants and
    context switches, and per-sender work done once per container; bench/bench_bringup.py)
    but a crashing node takes the whole group down. 0: `auto_vehicles_per_process`.
    """
    groups = vehicle_groups(specs, vehicles_per_process)   # checks the group size
    units: list[ProcessUnit] = []
    for spec in specs:
        if compose and spec.vehicle:
            continue
        units.append(ProcessUnit(spec.full_name.lstrip('/'), node_command(spec, prefer_module),
                                 (spec.vehicle,) if spec.vehicle else (),
                                 finishes_run=spec.package == 'call_sim'))
    if compose and groups:
        workdir = workdir or tempfile.mkdtemp(prefix='call_run_')
    for group, members in groups if compose else []:
        name = '+'.join(group)
        spec_file = write_container_file(members, os.path.join(workdir, f'{name}_nodes.json'))
        units.append(ProcessUnit(f'{name}/container',
                                 [sys.executable, '-m', 'call_bringup.compose', spec_file],
                                 group))
    return units


class Supervisor:
    """Starts process units, relays their output, reports deaths and stops them all."""

    def __init__(self, units: list[ProcessUnit], output: TextIO = sys.stdout,
                 last_lines: int = 20, env: Optional[dict] = None):
        self.units = units
        self.output = output
        self._lock = threading.Lock()
        self._env = dict(env if env is not None else os.environ)
        self._env.setdefault('PYTHONUNBUFFERED', '1')
        self._env.setdefault('RCUTILS_COLORIZED_OUTPUT', '0')
        # a node that dies of a native fault (SIGSEGV in torch, DDS, OpenCV) prints the
        # Python stack of each thread on its way out, so its last lines say where it was
        self._env.setdefault('PYTHONFAULTHANDLER', '1')
        for unit in units:
            unit.last_lines = collections.deque(maxlen=last_lines)

    def emit(self, text: str) -> None:
        """Print one line without interleaving with the relays."""
        with self._lock:
            self.output.write(text + '\n')
            self.output.flush()

    def _relay(self, unit: ProcessUnit) -> None:
        assert unit.process is not None and unit.process.stdout is not None
        for raw in unit.process.stdout:
            line = raw.rstrip('\n')
            unit.last_lines.append(line)
            self.emit(f'[{unit.label}] {line}')

    def start(self, units: Optional[list[ProcessUnit]] = None) -> None:
        """
        Start every unit (or ``units``, some of them) in its own process group.

        Own process groups: a terminal's Ctrl-C (sent to its foreground group) reaches only
        the runner, which stops them in order. The runner's session, not a session each: as
        under ``ros2 launch``, whose children share its session. Linux's autogroup scheduler
        (``/proc/sys/kernel/sched_autogroup_enabled``) shares the CPU between sessions
        first, so the simulator and each container, every one in a session of its own,
        were scheduled as separate groups; that changed when a tick's messages reached a
        container's executor against its batch flush timers (more world-model and
        view-decoder batches per tick than the same containers under launch,
        docs/profile.md). No unit reads a terminal: stdin is /dev/null.
        """
        for unit in self.units if units is None else units:
            unit.process = subprocess.Popen(
                unit.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True, errors='replace', bufsize=1,
                env=self._env, **_OWN_PROCESS_GROUP)
            unit.reader = threading.Thread(target=self._relay, args=(unit,), daemon=True)
            unit.reader.start()
            self.emit(f'[call_run] started {unit.label} (pid {unit.process.pid})')

    def running(self, vehicle: Optional[str] = None) -> list[ProcessUnit]:
        """List units still alive (optionally those running a vehicle's nodes)."""
        return [u for u in self.units if u.process is not None and u.process.poll() is None
                and (vehicle is None or vehicle in u.vehicles)]

    def new_exits(self) -> list[UnitExit]:
        """Collect units that exited since the last call (each reported once)."""
        exits = []
        for unit in self.units:
            if unit.reported or unit.process is None or unit.process.poll() is None:
                continue
            unit.reported = True
            if unit.reader is not None:
                unit.reader.join(timeout=2.0)       # drain the last output lines
            exits.append(UnitExit(unit.label, unit.vehicles, unit.process.returncode,
                                  tuple(unit.last_lines)))
        return exits

    def unit(self, label: str) -> ProcessUnit:
        """Return the unit called `label` (e.g. `hero1/world_model`)."""
        return next(u for u in self.units if u.label == label)

    def stop(self, sigint_wait: float = 5.0, sigterm_wait: float = 3.0) -> None:
        """
        SIGINT all, wait; SIGTERM the rest, wait; SIGKILL what is left (bounded).

        Before SIGKILL, SIGUSR1 asks what is left for its threads' stacks (a node prints them,
        `call_common.node_main`) and waits a second, so the unit's last lines say where it
        hung. Reports each unit's exit code and how long after the SIGINT it exited.
        """
        started = time.monotonic()
        exited: dict[str, float] = {}
        for sig, wait in ((signal.SIGINT, sigint_wait), (signal.SIGTERM, sigterm_wait),
                          (signal.SIGUSR1, 1.0), (signal.SIGKILL, 2.0)):
            alive = self.running()
            if not alive:
                break
            for unit in alive:
                try:
                    os.killpg(unit.process.pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                for unit in alive:
                    if unit.label not in exited and unit.process.poll() is not None:
                        exited[unit.label] = time.monotonic() - started
                if all(unit.label in exited for unit in alive):
                    break
                time.sleep(0.02)
        for unit in self.units:
            if unit.reader is not None:
                unit.reader.join(timeout=1.0)
            if unit.label in exited:
                self.emit(f'[call_run] {unit.label} exit code {unit.process.returncode}, '
                          f'{exited[unit.label]:.2f} s after SIGINT')


def supervise(supervisor: Supervisor, tolerate_vehicle_failure: bool = False,
              duration: Optional[float] = None, poll_period: float = 0.2,
              should_stop: Callable[[], bool] = lambda: False) -> int:
    """Watch the units until stopped, done or failed; return the runner's exit code."""
    started = time.monotonic()
    failed_vehicles: set[str] = set()
    while True:
        for dead in supervisor.new_exits():
            if dead.returncode == 0 and supervisor.unit(dead.label).finishes_run:
                supervisor.emit(f'[call_run] {dead.label} finished the run')
                return 0
            if tolerate_vehicle_failure and dead.vehicles:
                failed_vehicles.update(dead.vehicles)
                supervisor.emit(f'[call_run] VEHICLE FAILURE: {dead.describe()}')
                supervisor.emit(f'[call_run] {", ".join(dead.vehicles)} out '
                                f'({len(failed_vehicles)} vehicle(s) failed); the other '
                                'vehicles keep driving')
                continue
            supervisor.emit(f'[call_run] ERROR: {dead.describe()}')
            return 1
        if should_stop():
            return 0
        if duration is not None and time.monotonic() - started >= duration:
            supervisor.emit(f'[call_run] duration {duration:.1f} s reached')
            return 0
        time.sleep(poll_period)


def add_graph_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the launch file's arguments (same names), shared by call_run and call_demo."""
    parser.add_argument('--num-vehicles', '--num_vehicles', type=int, default=None)
    parser.add_argument('--backend', choices=('embedded', 'carla'), default=None)
    parser.add_argument('--scenario', default=None)
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument('--c', type=float, default=None,
                        help='prediction-error threshold c of the range gate (inf: no sharing)')
    parser.add_argument('--K', type=int, default=None,
                        help='horizon K of the prediction error and the look-ahead')
    parser.add_argument('--initial-range', '--initial_range', type=float, default=None,
                        help='[m] communication range before any growth')
    parser.add_argument('--range-step', '--range_step', type=float, default=None,
                        help='[m] range growth on a step with E > c (paper: 5 m)')
    parser.add_argument('--use-sim-time', '--use_sim_time', default=None,
                        type=lambda s: s.lower() in ('1', 'true', 'yes', 'on'))
    parser.add_argument('--start-bridge', '--start_bridge', default=True,
                        type=lambda s: s.lower() in ('1', 'true', 'yes', 'on'))
    parser.add_argument('--keys-dir', default=None,
                        help='fleet keys (created if missing; default: a fresh temp dir)')
    parser.add_argument('--v2v-faults', default=None, metavar='K=V,...',
                        help='route V2V through a fault relay, e.g. loss_probability=0.3,'
                             'delay_s=0.2,forge_probability=0.05,replay_probability=0.05')
    parser.add_argument('--scenario-set', action='append', default=[], metavar='KEY=VALUE',
                        help='change a scenario key (embedded), e.g. num_background=10')
    parser.add_argument('--set', action='append', default=[], metavar='NODE.PARAM=VALUE',
                        help='extra parameter, NODE = package, node name or full name '
                             '(e.g. --set call_sim.num_background=10)')
    parser.add_argument('--remap', action='append', default=[], metavar='NODE:FROM:=TO',
                        help='extra topic remapping for a package/node (e.g. '
                             'call_comm:/v2v/latents:=/v2v/raw)')


def graph_from_arguments(args: argparse.Namespace) -> list[NodeSpec]:
    """build_graph from parsed command-line arguments; creates the run's fleet keys."""
    faults = None
    if args.v2v_faults is not None:
        faults = {}
        for item in filter(None, args.v2v_faults.split(',')):
            key, _, value = item.partition('=')
            if not _:
                raise GraphError(f'--v2v-faults {item!r}: expected KEY=VALUE')
            faults[key.strip()] = yaml.safe_load(value)
    keys_dir = args.keys_dir or tempfile.mkdtemp(prefix='call_keys_')
    changes = {}
    for item in args.scenario_set:
        key, _, value = item.partition('=')
        if not _:
            raise GraphError(f'--scenario-set {item!r}: expected KEY=VALUE')
        changes[key.strip()] = yaml.safe_load(value)
    overrides: dict = {}
    for item in args.set:
        target, _, value = item.partition('=')
        node, _, param = target.rpartition('.')
        if not node or not param or not _:
            raise GraphError(f'--set {item!r}: expected NODE.PARAM=VALUE')
        overrides.setdefault(node, {})[param] = yaml.safe_load(value)
    remappings: dict = {}
    for item in args.remap:
        node, _, rule = item.partition(':')
        source, _, target = rule.partition(':=')
        if not node or not source or not target:
            raise GraphError(f'--remap {item!r}: expected NODE:FROM:=TO')
        remappings.setdefault(node, []).append((source, target))
    specs = build_graph(num_vehicles=args.num_vehicles, backend=args.backend,
                        scenario=args.scenario, checkpoint=args.checkpoint, c=args.c,
                        K=args.K, initial_range=args.initial_range,
                        range_step=args.range_step, use_sim_time=args.use_sim_time,
                        keys_dir=keys_dir,
                        scenario_changes=changes, v2v_faults=faults, overrides=overrides,
                        remappings=remappings,
                        start_bridge=args.start_bridge)
    ensure_fleet_keys(keys_dir, sorted({s.vehicle for s in specs if s.vehicle}))
    return specs


def add_process_arguments(parser: argparse.ArgumentParser) -> None:
    """How the graph is laid out in processes (`call_run` and `call_demo`)."""
    parser.add_argument('--compose', action='store_true',
                        help='one process per vehicle (its four nodes share an executor) '
                        'instead of one per node')
    parser.add_argument('--vehicles-per-process', type=int, default=1, metavar='N',
                        help='with --compose: N vehicles per process (less CPU per tick, '
                        'bench/bench_bringup.py; a crashing node stops its whole group); '
                        '0: one process per CPU core, at least 4 vehicles each')


class _StopRequest:
    """Set by SIGINT/SIGTERM; the supervise loop polls it."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum, frame) -> None:
        self.requested = True


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of `call_run` / `python -m call_bringup.run`."""
    parser = argparse.ArgumentParser(prog='call_run',
                                     description=__doc__.strip().splitlines()[0])
    add_graph_arguments(parser)
    add_process_arguments(parser)
    parser.add_argument('--tolerate-vehicle-failure', action='store_true',
                        help='a dead vehicle node is reported; the other vehicles keep going')
    parser.add_argument('--duration', type=float, default=None,
                        help='stop everything after this many wall-clock seconds')
    parser.add_argument('--python-modules', action='store_true',
                        help='start nodes with `python -m` even if console scripts exist')
    parser.add_argument('--print-graph', action='store_true',
                        help='print the commands and exit')
    add_foxglove_argument(parser)
    args = parser.parse_args(argv)
    config = bringup_config()['runner']
    try:
        specs = graph_from_arguments(args)
        units = process_units(specs, compose=args.compose,
                              prefer_module=args.python_modules,
                              vehicles_per_process=args.vehicles_per_process)
        if args.foxglove:
            units.append(foxglove_unit(sorted({s.vehicle for s in specs if s.vehicle}),
                                       args.foxglove_port))
    except GraphError as err:
        print(f'call_run: {err}', file=sys.stderr)
        return 2
    if args.print_graph:
        for unit in units:
            print(f'{unit.label}: {" ".join(unit.command)}')
        return 0
    supervisor = Supervisor(units, last_lines=config['last_lines'])
    stop = _StopRequest()
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 1
    try:
        supervisor.start()
        code = supervise(supervisor, args.tolerate_vehicle_failure, args.duration,
                         config['poll_period_s'], should_stop=lambda: stop.requested)
    finally:
        supervisor.emit('[call_run] shutting down')
        supervisor.stop(config['shutdown_sigint_wait_s'], config['shutdown_sigterm_wait_s'])
    supervisor.emit(f'[call_run] exit {code}')
    return code


if __name__ == '__main__':
    sys.exit(main())

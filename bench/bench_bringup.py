"""
Wall time per simulated tick of the whole CALL graph vs number of CALL vehicles.

    python bench/bench_bringup.py [--vehicles 1 2 4 8] [--ticks 60] [--warmup 20]
                                  [--modes processes composed grouped launch] [--group 0]
                                  [--checkpoint PATH]

Starts the embedded simulator and N x (perception, world model, comm, planner) with the
runner (one process per node; one process per vehicle: mode `composed`; one process per
`--group` vehicles, 0: one per CPU core with at least 4 vehicles each, the launch file's
default: mode `grouped`, `call_run --compose --vehicles-per-process`; mode
`launch`: `ros2 launch call_bringup multi_vehicle.launch.py`, its default layout), lets the
lockstep simulator run, and reports the median and mean wall-clock time between /clock
ticks after a warm-up that starts once every vehicle's pipeline is live (each published
CommStats), plus the lockstep's missed ticks in the window (ticks the simulator took
without every command, after its 1 s timeout) and the planners' controlled-stop commands
(stale inputs: the pipeline fell behind; such ticks are cheaper than planned ones, so a
row with stops understates the cost of full planning). It also reports the CPU time the
graph's processes spent per measured tick (Linux /proc; summed over processes, so on 2 cores
the wall time per tick is at least half of it) and that CPU split into simulator and vehicle
processes, the start-up (launch to the first simulated step, and to every vehicle's first
CommStats), and how long the whole graph took to exit after Ctrl-C (SIGINT to the process
group, as a terminal sends it; mode launch) or call_run's stop. Target: <= 100 ms per tick
at 8 vehicles (real time at 0.1 s steps; the note judges the mean). Prints a table, and a
machine reference (one world-model observe step, 1 thread, before the runs) to compare runs
on a VM whose speed drifts; asserts nothing.
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Optional

from call_bringup.demo import demo_checkpoint
from call_bringup.fleet_keys import ensure_fleet_keys
from call_bringup.graph import build_graph
from call_bringup.ros_tools import MISSING, tools_environment
from call_bringup.runner import auto_vehicles_per_process, process_units, Supervisor, UnitExit
from call_msgs.msg import CommStats
from diagnostic_msgs.msg import DiagnosticArray
from machine_reference import reference_ms
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 when it is gone or /proc is missing)."""
    try:
        with open(f'/proc/{pid}/stat', encoding='ascii') as stream:
            fields = stream.read().rsplit(')', 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def graph_cpu(supervisor: Supervisor) -> dict:
    """CPU seconds per unit label of the running graph."""
    return {unit.label: cpu_seconds(unit.process.pid) for unit in supervisor.units
            if unit.process is not None}


def process_tree(root: int) -> dict:
    """Map pid -> command name of `root` and all its descendants (Linux /proc)."""
    parents, names = {}, {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat', encoding='ascii', errors='replace') as stream:
                    text = stream.read()
            except OSError:
                continue
            name, rest = text.split('(', 1)[1].rsplit(')', 1)
            parents[int(entry)] = int(rest.split()[1])
            names[int(entry)] = name
    tree, frontier = {root: names.get(root, '')}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree[pid] = names[pid]
                frontier.append(pid)
    return tree


class LaunchedGraph:
    """`ros2 launch` of the graph, with the Supervisor calls measure() makes."""

    def __init__(self, env: dict, arguments: list, log) -> None:
        self.env, self.arguments, self.log = env, arguments, log
        self.process: subprocess.Popen = None
        self.reported = False

    def start(self) -> None:
        """Start ros2 launch in its own process group (a terminal's foreground job)."""
        self.process = subprocess.Popen(
            ['ros2', 'launch', 'call_bringup', 'multi_vehicle.launch.py', *self.arguments],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def new_exits(self) -> list:
        """Report once that ros2 launch ended."""
        if self.reported or self.process.poll() is None:
            return []
        self.reported = True
        return [UnitExit('ros2 launch', (), self.process.returncode, ())]

    def cpu(self) -> dict:
        """CPU seconds per process of the launched tree (labelled by pid and name)."""
        return {f'{name}:{pid}': cpu_seconds(pid)
                for pid, name in process_tree(self.process.pid).items()}

    def stop(self) -> float:
        """Ctrl-C: SIGINT to the group; return the seconds until ros2 launch exited."""
        started = time.monotonic()
        try:
            os.killpg(self.process.pid, signal.SIGINT)
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass
        return time.monotonic() - started


class RunnerGraph:
    """call_run's Supervisor behind the same calls as LaunchedGraph."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def start(self) -> None:
        """Start every process unit."""
        self.supervisor.start()

    def new_exits(self) -> list:
        """Units that exited."""
        return self.supervisor.new_exits()

    def cpu(self) -> dict:
        """CPU seconds per unit."""
        return graph_cpu(self.supervisor)

    def stop(self) -> float:
        """call_run's stop (SIGINT, then SIGTERM and SIGKILL if needed); return seconds."""
        started = time.monotonic()
        self.supervisor.stop()
        return time.monotonic() - started


def measure(num_vehicles: int, mode: str, group: int, checkpoint: str, ticks: int,
            warmup: int, background: int, timeout: float, extra_units=None,
            c: Optional[float] = None) -> dict:
    """
    Run the graph; once every vehicle's pipeline is live, time `ticks` ticks.

    `c` (None: comm.yaml's) sets the range gate's threshold, which sets how many neighbours
    each vehicle hears and decodes, and so part of the cost.

    `extra_units(roles)` adds process units beside the graph (e.g. the Foxglove live view);
    `cpu_ms_by_unit` in the result says what each unit cost per tick.
    """
    work = tempfile.mkdtemp(prefix='bench_bringup_')
    keys = os.path.join(work, 'keys')
    roles = [f'hero{i}' for i in range(num_vehicles)]
    specs = build_graph(num_vehicles=num_vehicles, checkpoint=checkpoint, keys_dir=keys, c=c,
                        scenario_changes={'num_background': background}, work_dir=work)
    ensure_fleet_keys(keys, roles)
    log = open(os.path.join(work, 'nodes.log'), 'w', encoding='utf-8')
    if mode == 'launch':
        scenario = next(s for s in specs if s.package == 'call_sim').merged_parameters()
        graph = LaunchedGraph(tools_environment(), [
            f'num_vehicles:={num_vehicles}', f'scenario:={scenario["scenario"]}',
            f'checkpoint:={checkpoint}', f'keys_dir:={keys}']
            + ([] if c is None else [f'c:={c}']), log)
    else:
        units = process_units(specs, compose=mode != 'processes', workdir=work,
                              vehicles_per_process=group if mode == 'grouped' else 1)
        units += list(extra_units(roles)) if extra_units else []
        graph = RunnerGraph(Supervisor(units, output=log))
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('bench_bringup', context=context)
    state = {'clock': -1.0, 'live_at': None, 'missed': 0, 'missed_at_start': None,
             'stops_at_start': None, 'first_clock': None, 'first_tick_at': None}
    stops: dict[str, int] = {}               # planner's cumulative controlled stops per role
    stamps: list[float] = []
    live: set = set()

    def on_clock(msg: Clock) -> None:
        now = msg.clock.sec + msg.clock.nanosec * 1e-9
        if now > state['clock']:                # the simulator republishes a step
            state['clock'] = now
            if state['first_clock'] is None:
                state['first_clock'] = now
            elif state['first_tick_at'] is None:   # the first step the vehicles answered
                state['first_tick_at'] = time.monotonic()
            if state['live_at'] is not None:
                stamps.append(time.monotonic())

    def on_diagnostics(msg: DiagnosticArray) -> None:
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            if status.name == 'call_sim: lockstep':
                state['missed'] = int(values.get('missed_ticks', 0))
            elif status.name.endswith('/planner') and 'stops' in values:
                stops[status.hardware_id] = int(values['stops'])

    def on_stats(msg: CommStats) -> None:
        live.add(msg.vehicle_id)
        if state['live_at'] is None and len(live) == num_vehicles:
            state['live_at'] = time.monotonic()

    best_effort = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                             reliability=ReliabilityPolicy.BEST_EFFORT)
    node.create_subscription(Clock, '/clock', on_clock, best_effort)
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 100)
    for role in roles:
        node.create_subscription(CommStats, f'/{role}/comm_stats', on_stats, 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    started = time.monotonic()
    error = ''
    cpu_start: dict = {}
    cpu_end: dict = {}
    exit_s = None
    try:
        graph.start()
        while len(stamps) < warmup + ticks + 1:
            executor.spin_once(timeout_sec=0.05)
            if len(stamps) == warmup and state['missed_at_start'] is None:
                state['missed_at_start'] = state['missed']
                state['stops_at_start'] = sum(stops.values())
                cpu_start = graph.cpu()
            dead = graph.new_exits()
            if dead:
                error = dead[0].describe().splitlines()[0]
                break
            if time.monotonic() - started > timeout:
                error = f'timeout after {len(stamps)} live ticks'
                break
        cpu_end = graph.cpu()
    finally:
        exit_s = graph.stop()
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
        log.close()
    gaps = [b - a for a, b in zip(stamps[warmup:], stamps[warmup + 1:])]
    used = {label: cpu_end[label] - cpu_start[label] for label in cpu_start if label in cpu_end}
    sim_cpu = sum(v for label, v in used.items() if label.startswith(('carla_sim', 'sim_node')))
    per_tick = 1e3 / len(gaps) if gaps and used else None
    group = group or auto_vehicles_per_process(num_vehicles)
    return {'vehicles': num_vehicles, 'mode': f'grouped{group}' if mode == 'grouped' else mode,
            'ticks': len(gaps), 'median_ms': 1e3 * statistics.median(gaps) if gaps else None,
            'mean_ms': 1e3 * statistics.fmean(gaps) if gaps else None,
            'missed': state['missed'] - (state['missed_at_start'] or 0),
            'stop_commands': sum(stops.values()) - (state['stops_at_start'] or 0),
            'startup_s': (state['live_at'] - started) if state['live_at'] else None,
            'first_tick_s': (state['first_tick_at'] - started) if state['first_tick_at']
            else None, 'exit_s': exit_s,
            'cpu_ms': sum(used.values()) * per_tick if per_tick else None,
            'sim_cpu_ms': sim_cpu * per_tick if per_tick else None,
            'cpu_ms_by_unit': {label: v * per_tick for label, v in used.items()}
            if per_tick else {},
            'error': error, 'log': log.name}


def main() -> int:
    """Run the sweep and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--vehicles', type=int, nargs='+', default=[1, 2, 4, 8])
    parser.add_argument('--modes', nargs='+', default=['processes', 'composed'],
                        choices=['processes', 'composed', 'grouped', 'launch'])
    parser.add_argument('--group', type=int, default=0,
                        help='vehicles per process in mode grouped (0: one process per CPU '
                        "core, at least 4 vehicles each: the launch file's default)")
    parser.add_argument('--ticks', type=int, default=60)
    parser.add_argument('--warmup', type=int, default=20)
    parser.add_argument('--background', type=int, default=40)
    parser.add_argument('--timeout', type=float, default=300.0)
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument('--c', type=float, default=None,
                        help="range gate threshold c (default: comm.yaml's)")
    args = parser.parse_args()
    if 'launch' in args.modes and tools_environment() is None:
        parser.error(f'mode launch: {MISSING}')
    checkpoint = demo_checkpoint(args.checkpoint, tempfile.mkdtemp(prefix='bench_ckpt_'))
    print(f'checkpoint: {checkpoint}; c = {"comm.yaml" if args.c is None else args.c}; '
          f'{args.background} background vehicles; '
          f'{args.warmup} warm-up ticks, {args.ticks} measured; {os.cpu_count()} CPUs')
    before = reference_ms(checkpoint_path=checkpoint)
    rows = []
    for mode in args.modes:
        for n in args.vehicles:
            row = measure(n, mode, args.group, checkpoint, args.ticks, args.warmup,
                          args.background, args.timeout, c=args.c)
            rows.append(row)
            print(f'  measured {n} vehicle(s), {mode}: {row}', file=sys.stderr, flush=True)
    print(f'\n{"CALL vehicles":>13} {"mode":>10} {"ticks":>6} {"median ms/tick":>15} '
          f'{"mean ms/tick":>13} {"missed":>7} {"stops":>6} {"start-up s":>11} '
          f'{"CPU ms/tick":>12} {"sim CPU ms":>11} {"1st tick s":>10} {"Ctrl-C s":>9}  note')
    for row in rows:
        def fmt(value, spec):
            return format(value, spec) if value is not None else 'n/a'
        note = row['error'] or ('real time' if (row['mean_ms'] or 1e9) <= 100 else
                                'slower than real time')
        print(f'{row["vehicles"]:13d} {row["mode"]:>10} {row["ticks"]:6d} '
              f'{fmt(row["median_ms"], "15.1f")} {fmt(row["mean_ms"], "13.1f")} '
              f'{row["missed"]:7d} {row["stop_commands"]:6d} {fmt(row["startup_s"], "11.1f")} '
              f'{fmt(row["cpu_ms"], "12.1f")} {fmt(row["sim_cpu_ms"], "11.1f")} '
              f'{fmt(row["first_tick_s"], "10.1f")} {fmt(row["exit_s"], "9.2f")}  {note}')
    print(f'machine reference: one observe step took {before:.2f} ms before the runs '
          '(1 thread; lower = faster machine)')
    return 0


if __name__ == '__main__':
    sys.exit(main())

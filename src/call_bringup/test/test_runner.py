"""The runner supervises real rclpy node processes over real DDS (no launch needed)."""
import io
import json
import os
import signal
import sys
import textwrap
import time

from call_bringup.graph import build_graph, GraphError, NodeSpec
from call_bringup.process_unit import ProcessUnit
from call_bringup.runner import (auto_vehicles_per_process, node_command, process_units,
                                 ros_arguments, supervise, Supervisor)
import pytest
import rclpy
import yaml

RELAY = {'package': 'call_bringup', 'executable': 'v2v_fault_relay', 'name': 'v2v_fault_relay',
         'module': 'call_bringup.fault_injection'}


def relay_spec(namespace: str, vehicle=None, topic='/test/in') -> NodeSpec:
    """Describe a real node of this package, namespaced like a vehicle's node."""
    return NodeSpec(**RELAY, namespace=namespace, vehicle=vehicle,
                    parameters=[{'input_topic': topic, 'loss_probability': 0.5}])


def wait_for_publisher(topic: str, name: str, namespace: str, timeout: float = 30.0) -> bool:
    """Tell whether node `namespace/name` publishes `topic` (its role_name parameter)."""
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('runner_test_topics', context=context)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                topics = node.get_publisher_names_and_types_by_node(name, namespace)
            except rclpy.node.NodeNameNonExistentError:
                topics = []
            if topic in {t for t, _ in topics}:
                return True
            time.sleep(0.2)         # polling discovery, bounded by the deadline
        return False
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


def wait_for_nodes(names: set, timeout: float = 30.0) -> set:
    """Full names of the nodes among `names` that DDS discovery shows within the timeout."""
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('runner_test_probe', context=context)
    seen: set = set()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and seen != names:
            seen = {ns.rstrip('/') + '/' + name
                    for name, ns in node.get_node_names_and_namespaces()} & names
            time.sleep(0.2)         # polling discovery, bounded by the deadline
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
    return seen


@pytest.fixture
def supervisor_factory():
    made = []

    def make(specs, env=None):
        supervisor = Supervisor(process_units(specs, prefer_module=True), output=io.StringIO(),
                                env=env)
        made.append(supervisor)
        return supervisor
    yield make
    for supervisor in made:
        supervisor.stop(sigint_wait=5.0, sigterm_wait=2.0)


def test_ros_arguments_carry_namespace_name_params_and_remaps(tmp_path):
    params = tmp_path / 'p.yaml'
    params.write_text('/**:\n  ros__parameters: {a: 1}\n')
    spec = NodeSpec('pkg', 'exe', 'comm', '/hero0',
                    [str(params), {'c': float('inf'), 'role_names': ['hero0', 'hero1'],
                                   'use_sim_time': True, 'role_name': 'hero0'}],
                    [('/v2v/latents', '/v2v/raw')], module='pkg.comm_node')
    args = ros_arguments(spec)
    assert args[:5] == ['--ros-args', '-r', '__ns:=/hero0', '-r', '__node:=comm']
    assert ['--params-file', str(params)] == args[5:7]
    pairs = [args[i + 1] for i, a in enumerate(args) if a == '-p']
    assert pairs == ['c:=.inf', 'role_names:=[hero0, hero1]', 'use_sim_time:=true',
                     'role_name:=hero0']
    for pair in pairs:           # every value parses back as YAML, as rcl parses it
        yaml.safe_load(pair.split(':=', 1)[1])
    assert args[-2:] == ['-r', '/v2v/latents:=/v2v/raw']
    assert node_command(spec)[:3] == [sys.executable, '-m', 'pkg.comm_node']


def _vehicle_specs(vehicles):
    specs = [NodeSpec('call_sim', 'sim_node', 'carla_sim', '', [{'a': 1}], [], 'x.sim')]
    for vehicle in vehicles:
        specs += [NodeSpec('p', 'e', 'perception', f'/{vehicle}', [{'role_name': vehicle}],
                           [('bev', 'bev2')], 'p.perception_node', vehicle),
                  NodeSpec('q', 'e', 'planner', f'/{vehicle}', [{'role_name': vehicle, 'K': 3}],
                           [], 'q.planner_node', vehicle)]
    return specs


def test_composed_vehicle_is_one_process_whose_nodes_keep_their_own_arguments(tmp_path):
    specs = _vehicle_specs(['hero0'])
    units = process_units(specs, compose=True, prefer_module=True, workdir=str(tmp_path))
    assert [(u.label, u.vehicles) for u in units] == [('carla_sim', ()),
                                                      ('hero0/container', ('hero0',))]
    command = units[1].command
    assert command[:3] == [sys.executable, '-m', 'call_bringup.compose']
    entries = json.load(open(command[3]))
    assert entries == [{'module': s.module, 'name': s.name, 'ros_args': ros_arguments(s)}
                       for s in specs[1:]]
    assert '__ns:=/hero0' in entries[0]['ros_args'] and 'bev:=bev2' in entries[0]['ros_args']


def test_vehicles_per_process_groups_vehicles_and_rejects_negative(tmp_path):
    specs = _vehicle_specs(['hero0', 'hero1', 'hero2'])
    units = process_units(specs, compose=True, workdir=str(tmp_path), vehicles_per_process=2)
    assert [(u.label, u.vehicles) for u in units] == [
        ('carla_sim', ()), ('hero0+hero1/container', ('hero0', 'hero1')),
        ('hero2/container', ('hero2',))]
    assert [e['name'] for e in json.load(open(units[1].command[3]))] == ['perception',
                                                                         'planner'] * 2
    with pytest.raises(GraphError, match='vehicles per process'):
        process_units(specs, compose=True, workdir=str(tmp_path), vehicles_per_process=-1)


def test_auto_layout_is_one_container_per_core_with_at_least_four_vehicles(tmp_path):
    assert [auto_vehicles_per_process(n, cores=2) for n in (1, 4, 8, 9, 16, 17)] == \
        [4, 4, 4, 5, 8, 9]
    assert [auto_vehicles_per_process(16, cores=c) for c in (1, 4, 8)] == [16, 4, 4]
    roles = [f'hero{i}' for i in range(9)]
    units = process_units(_vehicle_specs(roles), compose=True, workdir=str(tmp_path),
                          vehicles_per_process=0)
    per_core = auto_vehicles_per_process(9)
    expected = [tuple(roles[i:i + per_core]) for i in range(0, 9, per_core)]
    assert [u.vehicles for u in units[1:]] == expected


def test_grouped_container_runs_each_vehicles_node_in_its_namespace(tmp_path):
    specs = [s for s in build_graph(num_vehicles=2, work_dir=str(tmp_path))
             if s.name == 'perception']
    supervisor = Supervisor(process_units(specs, compose=True, workdir=str(tmp_path),
                                          vehicles_per_process=2), output=io.StringIO())
    try:
        supervisor.start()
        assert [u.label for u in supervisor.units] == ['hero0+hero1/container']
        names = {'/hero0/perception', '/hero1/perception'}
        assert wait_for_nodes(names) == names
        assert wait_for_publisher('/hero1/bev', 'perception', '/hero1')
    finally:
        supervisor.stop(sigint_wait=30.0)
    assert [u.process.returncode for u in supervisor.units] == [0]


def test_runner_starts_nodes_and_stops_them_cleanly_on_sigint(supervisor_factory):
    supervisor = supervisor_factory([relay_spec('/hero0'), relay_spec('/hero1')])
    supervisor.start()
    names = {'/hero0/v2v_fault_relay', '/hero1/v2v_fault_relay'}
    assert wait_for_nodes(names) == names
    assert supervise(supervisor, duration=0.5, poll_period=0.1) == 0
    supervisor.stop(sigint_wait=30.0)    # clean exit is the point, not its speed under load
    assert not supervisor.running()
    assert [u.process.returncode for u in supervisor.units] == [0, 0], [
        (u.label, u.process.returncode, list(u.last_lines)) for u in supervisor.units]


def test_units_share_the_runners_session_each_in_a_process_group_of_its_own(
        supervisor_factory):
    # the session as ros2 launch's children share it (one autogroup for the scheduler);
    # a group of its own, so that a terminal's Ctrl-C reaches the runner only
    supervisor = supervisor_factory([relay_spec('/hero0'), relay_spec('/hero1')])
    # the runner's own stdin is a pipe here (a terminal in use): the units must not get it
    read_end, write_end = os.pipe()
    saved = os.dup(0)
    os.dup2(read_end, 0)
    try:
        supervisor.start()
    finally:
        os.dup2(saved, 0)
        for fd in (saved, read_end, write_end):
            os.close(fd)
    pids = [u.process.pid for u in supervisor.units]
    assert [os.getsid(pid) for pid in pids] == [os.getsid(0)] * 2
    assert [os.getpgid(pid) for pid in pids] == pids
    assert os.getpgid(0) not in pids
    assert [os.readlink(f'/proc/{pid}/fd/0') for pid in pids] == ['/dev/null'] * 2


def test_runner_fails_loudly_naming_the_dead_node(supervisor_factory):
    supervisor = supervisor_factory([relay_spec('/hero0', 'hero0'),
                                     relay_spec('/hero1', 'hero1')])
    supervisor.start()
    assert len(wait_for_nodes({'/hero0/v2v_fault_relay', '/hero1/v2v_fault_relay'})) == 2
    victim = supervisor.unit('hero1/v2v_fault_relay').process
    os.kill(victim.pid, signal.SIGKILL)
    code = supervise(supervisor, duration=30.0, poll_period=0.1)
    assert code == 1
    report = supervisor.output.getvalue()
    assert 'ERROR: node hero1/v2v_fault_relay died (killed by signal 9)' in report


def test_node_dead_of_a_native_fault_reports_its_python_stacks(supervisor_factory):
    # the runner's own setting, whatever the environment it was started from says
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONFAULTHANDLER'}
    supervisor = supervisor_factory([relay_spec('/hero0', 'hero0')], env=env)
    supervisor.start()
    assert wait_for_nodes({'/hero0/v2v_fault_relay'}) == {'/hero0/v2v_fault_relay'}
    os.kill(supervisor.unit('hero0/v2v_fault_relay').process.pid, signal.SIGSEGV)
    assert supervise(supervisor, duration=30.0, poll_period=0.1) == 1
    report = supervisor.output.getvalue()
    assert 'ERROR: node hero0/v2v_fault_relay died (killed by signal 11)' in report
    assert 'Fatal Python error: Segmentation fault' in report, report
    assert 'node_main.py' in report          # where its main thread was: the spin loop


def test_a_unit_that_ignores_sigint_and_sigterm_shows_its_stacks_before_sigkill():
    # a stop stuck where no Python signal handler runs: SIGUSR1 (faulthandler, as
    # call_common.node_main registers it) is the last look before SIGKILL
    script = textwrap.dedent("""
        import faulthandler, signal, sys, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        faulthandler.register(signal.SIGUSR1, file=sys.stdout, all_threads=True)
        def hang_forever():
            print('hanging', flush=True)
            while True:
                time.sleep(1)
        hang_forever()
    """)
    unit = ProcessUnit('stuck', [sys.executable, '-c', script])
    supervisor = Supervisor([unit], output=io.StringIO())
    supervisor.start()
    deadline = time.monotonic() + 30.0
    while 'hanging' not in unit.last_lines and time.monotonic() < deadline:
        time.sleep(0.05)                     # waiting for its start, bounded by the deadline
    supervisor.stop(sigint_wait=0.5, sigterm_wait=0.5)
    assert unit.process.returncode == -signal.SIGKILL
    assert any('in hang_forever' in line for line in unit.last_lines), list(unit.last_lines)


def test_tolerated_vehicle_failure_is_reported_and_the_rest_keep_running(
        supervisor_factory):
    supervisor = supervisor_factory([relay_spec('/hero0', 'hero0'),
                                     relay_spec('/hero1', 'hero1')])
    supervisor.start()
    assert len(wait_for_nodes({'/hero0/v2v_fault_relay', '/hero1/v2v_fault_relay'})) == 2
    os.kill(supervisor.unit('hero0/v2v_fault_relay').process.pid, signal.SIGKILL)
    assert supervise(supervisor, tolerate_vehicle_failure=True, duration=2.0,
                     poll_period=0.1) == 0
    report = supervisor.output.getvalue()
    assert 'VEHICLE FAILURE: node hero0/v2v_fault_relay died' in report
    assert [u.label for u in supervisor.running()] == ['hero1/v2v_fault_relay']


def test_non_vehicle_node_death_is_fatal_even_when_tolerating(supervisor_factory):
    bad = NodeSpec(**RELAY, parameters=[{'loss_probability': 2.0}])   # rejected at start-up
    supervisor = supervisor_factory([bad, relay_spec('/hero0', 'hero0')])
    supervisor.start()
    assert supervise(supervisor, tolerate_vehicle_failure=True, duration=30.0,
                     poll_period=0.1) == 1
    report = supervisor.output.getvalue()
    assert 'ERROR: node v2v_fault_relay died (exit code' in report
    assert 'loss_probability must be in [0, 1]' in report     # its last output is shown

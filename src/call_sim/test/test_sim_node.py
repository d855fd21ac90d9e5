"""sim_node over real DDS with controller subprocesses: lockstep, missed ticks, bad commands."""
import os
from pathlib import Path
import subprocess
import sys
import time

from builtin_interfaces.msg import Time
from carla_msgs.msg import CarlaEgoVehicleControl, CarlaEgoVehicleStatus, CarlaWorldInfo
from derived_object_msgs.msg import ObjectArray
from diagnostic_msgs.msg import DiagnosticArray
import pytest
import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile
import yaml

HERE = Path(__file__).resolve().parent
SCENARIO = {'map': 'four_lane', 'num_controlled': 2, 'num_background': 6, 'seed': 4,
            'respawn_done': True,
            'termination': {'on_collision': False, 'on_off_road': False}}


@pytest.fixture
def ros_node():
    rclpy.init()
    node = rclpy.create_node('test_sim_node_listener')
    yield node
    node.destroy_node()
    rclpy.shutdown()


@pytest.fixture
def processes():
    started = []

    def start(args, log: Path):
        handle = log.open('w')
        started.append(subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT,
                                        env=dict(os.environ)))
        return started[-1]
    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def start_sim(start, tmp_path: Path, **params):
    scenario = tmp_path / 'scenario.yaml'
    scenario.write_text(yaml.safe_dump(SCENARIO))
    # no start-up hold: these tests are about the lockstep timeout of vehicles never heard from
    node_params = {'scenario': str(scenario), 'publish_period': 0.005, 'startup_timeout': 0.0,
                   **params}
    params_file = tmp_path / 'sim_node.yaml'
    params_file.write_text(yaml.safe_dump({'/**': {'ros__parameters': node_params}}))
    return start([sys.executable, '-m', 'call_sim.sim_node', '--ros-args', '--params-file',
                  str(params_file)], tmp_path / 'sim.log')


def start_controller(start, tmp_path: Path, role: str):
    return start([sys.executable, str(HERE / 'controller_process.py'), role],
                 tmp_path / f'{role}.log')


class Listener:
    """Collects the latest lockstep diagnostics and a few other messages."""

    def __init__(self, node):
        self.lockstep, self.vehicles, self.world, self.objects = {}, {}, None, None
        node.create_subscription(DiagnosticArray, '/diagnostics', self.on_diag, 50)
        node.create_subscription(
            CarlaWorldInfo, '/carla/world_info', self.on_world,
            QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        node.create_subscription(ObjectArray, '/carla/hero0/objects', self.on_objects, 10)

    def on_diag(self, msg):
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            if status.name == 'call_sim: lockstep':
                self.lockstep = values
            else:
                self.vehicles[status.hardware_id] = values

    def on_world(self, msg):
        self.world = msg

    def on_objects(self, msg):
        self.objects = msg


def spin_until(node, condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        rclpy.spin_once(node, timeout_sec=0.05)
    return condition()


def test_lockstep_with_two_controllers(ros_node, processes, tmp_path):
    listener = Listener(ros_node)
    # objects_radius 0: every other actor in /carla/R/objects, as the CARLA bridge sends them
    sim = start_sim(processes, tmp_path, lockstep_timeout=20.0, max_ticks=25, objects_radius=0.0)
    # the sim re-publishes step 0 while it waits: start controllers once we hear it
    assert spin_until(ros_node, lambda: 'step' in listener.lockstep, 60)
    assert listener.lockstep['step'] == '0'
    start_controller(processes, tmp_path, 'hero0')
    start_controller(processes, tmp_path, 'hero1')
    assert spin_until(ros_node, lambda: sim.poll() is not None, 90), 'sim did not finish'
    assert sim.returncode == 0
    # every tick was triggered by both commands, none by the 20 s timeout
    assert 'finished after 25 ticks (0 missed)' in (tmp_path / 'sim.log').read_text()
    assert int(listener.lockstep['step']) >= 1 and listener.lockstep['missed_ticks'] == '0'
    assert listener.lockstep['rejected_commands'] == '0'
    assert set(listener.vehicles) == {'hero0', 'hero1'}
    assert {'ttc', 'collision', 'off_road', 'jerk', 'reached'} <= set(listener.vehicles['hero0'])
    assert listener.world is not None and '<OpenDRIVE' in listener.world.opendrive
    assert listener.world.map_name == 'four_lane'
    assert listener.objects is not None and len(listener.objects.objects) >= 1
    assert all(o.id != 1 for o in listener.objects.objects)  # hero0's own actor id is 1


def test_silent_controller_gives_missed_ticks_not_a_hang(ros_node, processes, tmp_path):
    listener = Listener(ros_node)
    sim = start_sim(processes, tmp_path, lockstep_timeout=0.3, max_ticks=0)
    start_controller(processes, tmp_path, 'hero0')

    def missed_with_hero1_silent():
        return (int(listener.lockstep.get('missed_ticks', 0)) >= 2
                and 'hero1' in listener.lockstep['last_missing'].split(','))
    assert spin_until(ros_node, missed_with_hero1_silent, 90), 'no missed tick reported'
    step = int(listener.lockstep['step'])
    assert spin_until(ros_node, lambda: int(listener.lockstep['step']) >= step + 3, 30), \
        'the simulator must keep stepping without hero1'
    assert sim.poll() is None
    assert 'no command from' in (tmp_path / 'sim.log').read_text()


def test_malformed_commands_are_counted_and_logged(ros_node, processes, tmp_path):
    listener = Listener(ros_node)
    sim = start_sim(processes, tmp_path, lockstep_timeout=0.2, max_ticks=0)
    pub = ros_node.create_publisher(CarlaEgoVehicleControl, '/carla/hero0/vehicle_control_cmd',
                                    10)
    assert spin_until(ros_node, lambda: 'step' in listener.lockstep, 60)

    def counted():
        for throttle, steer in ((float('nan'), 0.0), (5.0, -3.0)):
            pub.publish(CarlaEgoVehicleControl(throttle=throttle, steer=steer))
        rclpy.spin_once(ros_node, timeout_sec=0.2)
        return (int(listener.lockstep.get('rejected_commands', 0)) >= 1
                and int(listener.lockstep.get('clamped_commands', 0)) >= 1)
    assert spin_until(ros_node, counted, 60)
    assert sim.poll() is None, 'the node must survive malformed commands'
    step = int(listener.lockstep['step'])
    assert spin_until(ros_node, lambda: int(listener.lockstep['step']) > step + 2, 30)
    log = (tmp_path / 'sim.log').read_text()
    assert 'rejected: non-finite throttle' in log and 'clamped throttle 5' in log


class CommandProbe:
    """Publishes commands for both roles and records each role's odometry / status stamps."""

    def __init__(self, node):
        self.node = node
        self.pubs = {role: node.create_publisher(CarlaEgoVehicleControl,
                                                 f'/carla/{role}/vehicle_control_cmd', 10)
                     for role in ('hero0', 'hero1')}
        self.status = {}
        node.create_subscription(CarlaEgoVehicleStatus, '/carla/hero0/vehicle_status',
                                 self.on_status, 10)

    def on_status(self, msg):
        self.status[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg.control

    def matched(self):
        return all(pub.get_subscription_count() >= 1 for pub in self.pubs.values())

    def publish(self, stamp: Time, throttle: float):
        for pub in self.pubs.values():
            command = CarlaEgoVehicleControl(throttle=throttle)
            command.header.stamp = stamp
            pub.publish(command)


def test_stale_stamped_commands_are_applied_but_do_not_advance_the_tick(
        ros_node, processes, tmp_path):
    listener = Listener(ros_node)
    probe = CommandProbe(ros_node)
    sim = start_sim(processes, tmp_path, lockstep_timeout=6.0, max_ticks=0, start_time=5.0)
    assert spin_until(ros_node, lambda: 'step' in listener.lockstep and probe.matched(), 60)
    assert listener.lockstep['step'] == '0'

    def step_at_least(n):
        def reached():
            rclpy.spin_once(ros_node, timeout_sec=0.05)
            return int(listener.lockstep.get('step', 0)) >= n
        return reached

    # both vehicles answer an old step (a pipeline that fell behind): the commands are
    # applied, but the tick only runs on the lockstep timeout, as a missed tick
    stale = Time(sec=50)
    assert spin_until(ros_node, lambda: probe.publish(stale, 0.37) or step_at_least(1)(),
                      30), 'the tick must still run on the lockstep timeout'
    assert listener.lockstep['missed_ticks'] == '1'
    assert set(listener.lockstep['last_missing'].split(',')) == {'hero0', 'hero1'}
    assert int(listener.lockstep['stale_commands']) >= 2
    step1 = (5, 100_000_000)          # start_time + dt
    assert spin_until(ros_node, lambda: step1 in probe.status, 10)
    assert probe.status[step1].throttle == pytest.approx(0.37), 'stale command not applied'
    # commands stamped with the published step complete the tick without a timeout
    current = Time(sec=step1[0], nanosec=step1[1])
    assert spin_until(ros_node, lambda: probe.publish(current, 0.2) or step_at_least(2)(),
                      30)
    assert listener.lockstep['missed_ticks'] == '1', 'current-stamp commands must count'
    step2 = (5, 200_000_000)
    assert spin_until(ros_node, lambda: step2 in probe.status, 10)
    assert probe.status[step2].throttle == pytest.approx(0.2)
    assert sim.poll() is None


def test_a_late_answer_to_the_first_step_does_not_answer_the_next(
        ros_node, processes, tmp_path):
    """
    The first step is re-sent while nodes load, so copies of its answer arrive late.

    Its stamp is start_time, never 0 (which the lockstep reads as unstamped): a late copy is
    a stale command, and the next tick waits for its own answers.
    """
    listener = Listener(ros_node)
    probe = CommandProbe(ros_node)
    sim = start_sim(processes, tmp_path, lockstep_timeout=30.0, max_ticks=0)
    assert spin_until(ros_node, lambda: 'step' in listener.lockstep and probe.matched()
                      and probe.status, 60)
    first = min(probe.status)
    assert first != (0, 0), 'the first step must not be stamped 0 (unset in ROS)'

    def step_at_least(n):
        def reached():
            rclpy.spin_once(ros_node, timeout_sec=0.05)
            return int(listener.lockstep.get('step', 0)) >= n
        return reached
    first_stamp = Time(sec=first[0], nanosec=first[1])
    assert spin_until(ros_node, lambda: probe.publish(first_stamp, 0.5) or step_at_least(1)(),
                      30)
    stale = int(listener.lockstep['stale_commands'])
    probe.publish(first_stamp, 0.9)     # late copies of the first answers

    def settled():
        rclpy.spin_once(ros_node, timeout_sec=0.05)
        return (int(listener.lockstep['stale_commands']) >= stale + 2
                or int(listener.lockstep['step']) >= 2)
    assert spin_until(ros_node, settled, 30)
    assert listener.lockstep['step'] == '1', 'a late first answer answered the next tick'
    second = (first[0] + (first[1] + 100_000_000) // 1_000_000_000,
              (first[1] + 100_000_000) % 1_000_000_000)
    assert spin_until(ros_node, lambda: second in probe.status, 10)
    current = Time(sec=second[0], nanosec=second[1])
    assert spin_until(ros_node, lambda: probe.publish(current, 0.2) or step_at_least(2)(), 30)
    third = (second[0] + (second[1] + 100_000_000) // 1_000_000_000,
             (second[1] + 100_000_000) % 1_000_000_000)
    assert spin_until(ros_node, lambda: third in probe.status, 10)
    assert probe.status[third].throttle == pytest.approx(0.2)
    assert listener.lockstep['missed_ticks'] == '0'
    assert sim.poll() is None


def test_sigint_while_stepping_exits_cleanly(ros_node, processes, tmp_path):
    """Ctrl-C lands between callbacks: exit 0, no FATAL callback exception, no traceback."""
    import signal
    listener = Listener(ros_node)
    sim = start_sim(processes, tmp_path, lockstep_timeout=20.0, max_ticks=0)
    assert spin_until(ros_node, lambda: 'step' in listener.lockstep, 60)
    start_controller(processes, tmp_path, 'hero0')
    start_controller(processes, tmp_path, 'hero1')
    assert spin_until(ros_node, lambda: int(listener.lockstep.get('step', 0)) >= 10, 90)
    sim.send_signal(signal.SIGINT)             # the sim is busy answering commands
    sim.wait(timeout=20)
    log = (tmp_path / 'sim.log').read_text()
    assert sim.returncode == 0, log
    assert 'FATAL' not in log and 'Traceback' not in log, log

"""
The planner node over real DDS, in a subprocess, with a tiny random checkpoint.

Covers: planning outputs on valid states, a controlled stop with its reason for invalid and
NaN states, for inputs stale in simulation time and for a stalled clock (wall time) stamped
with the stale state's stamp, and fail-fast on a bad checkpoint.
"""
import os
import re
import subprocess
import sys
import time

from builtin_interfaces.msg import Time
from call_msgs.msg import Action, LatentState, NeighbourLatent, SharedInformation
from carla_msgs.msg import CarlaEgoVehicleControl
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from nav_msgs.msg import Odometry, Path
import numpy as np
import pytest
import rclpy
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
import torch
from visualization_msgs.msg import MarkerArray

ROLE = 'hero7'
DEADLINE_SIM = 0.3
DEADLINE_WALL = 5.0  # well past how long the sim-time tests take on a loaded machine
WAIT = 120.0         # bound of every wait (node start includes importing torch)
ANSWER_WAIT = 1.0    # bound of the wait for one step's answer (it may never come)


def _save_tiny_checkpoint(path: str) -> int:
    from call_world_model import checkpoint
    from call_world_model.actor_critic import ActorCritic
    from call_world_model.config import load_config
    from call_world_model.world_model import WorldModel
    torch.manual_seed(0)
    cfg = load_config('tiny')
    checkpoint.save(path, WorldModel(cfg), ActorCritic(cfg, cfg.feat_dim, cfg.num_actions),
                    cfg, 0, optimizers=False)
    return cfg.deter


def _stamp(t: float) -> Time:
    return Time(sec=int(t), nanosec=int(round((t - int(t)) * 1e9)))


def _seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class Harness(Node):
    """Plays simulator and world model for one planner; records everything it publishes."""

    def __init__(self, deter: int):
        super().__init__('planner_test_harness')
        self.deter = deter
        self.sim_time = 100.0
        self.clock_pub = self.create_publisher(Clock, '/clock', 10)
        self.odom_pub = self.create_publisher(Odometry, f'/carla/{ROLE}/odometry', 10)
        self.latent_pub = self.create_publisher(LatentState, f'/{ROLE}/latent_state', 10)
        self.shared_pub = self.create_publisher(SharedInformation, f'/{ROLE}/shared_info', 10)
        self.controls, self.actions, self.plans, self.diagnostics = [], [], [], []
        self.markers = []
        self.marker_sub = self.create_subscription(MarkerArray, f'/{ROLE}/plan_markers',
                                                   self.markers.append, 50)
        self.create_subscription(CarlaEgoVehicleControl, f'/carla/{ROLE}/vehicle_control_cmd',
                                 self.controls.append, 50)
        self.create_subscription(Action, f'/{ROLE}/action', self.actions.append, 50)
        self.create_subscription(Path, f'/{ROLE}/plan', self.plans.append, 50)
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 50)

    def _on_diag(self, msg):
        self.diagnostics.extend(s for s in msg.status if s.name == f'{ROLE}/planner')

    def spin_until(self, predicate, timeout=WAIT) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            rclpy.spin_once(self, timeout_sec=0.02)
        return predicate()

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(self, timeout_sec=0.02)

    def answered(self) -> bool:
        """Whether the planner has answered the current step: an action with its stamp."""
        return bool(self.actions) and \
            round(_seconds(self.actions[-1].header.stamp), 3) == self.sim_time

    def wait_for_answer(self, timeout: float = ANSWER_WAIT) -> bool:
        """Spin until the planner answered the current step, the pace of a lockstep run."""
        return self.spin_until(self.answered, timeout)

    def tick(self, latent=True, odometry=True, valid=True, h=None) -> None:
        """Advance sim time 0.1 s and publish clock (+ odometry, latent state)."""
        self.advance_clock()
        if odometry:
            self.publish_odometry(10.0, 5.0)
        if latent:
            self.publish_latent(valid, h)

    def advance_clock(self) -> None:
        self.sim_time = round(self.sim_time + 0.1, 3)
        self.clock_pub.publish(Clock(clock=_stamp(self.sim_time)))

    def publish_odometry(self, x: float, y: float, speed: float = 8.0) -> None:
        odom = Odometry()
        odom.header.stamp = _stamp(self.sim_time)
        odom.header.frame_id = 'map'
        odom.child_frame_id = ROLE
        odom.pose.pose.position.x = x
        odom.pose.pose.position.y = y
        odom.pose.pose.orientation.w = 1.0
        odom.twist.twist.linear.x = speed
        self.odom_pub.publish(odom)

    def publish_latent(self, valid=True, h=None) -> None:
        msg = LatentState()
        msg.header.stamp = _stamp(self.sim_time)
        rng = np.random.default_rng(int(self.sim_time * 10))
        msg.z_indices = rng.integers(0, 32, 32).astype(np.uint8).tobytes()
        msg.h = (rng.standard_normal(self.deter).astype(np.float32) if h is None
                 else h).tolist()
        msg.valid = valid
        self.latent_pub.publish(msg)

    def clear(self):
        for log in (self.controls, self.actions, self.plans, self.diagnostics, self.markers):
            log.clear()


def _is_stop(control) -> bool:
    return control.throttle == 0.0 and control.brake > 0.0 and control.steer == 0.0


def _stop_reasons(harness):
    return [s.message for s in harness.diagnostics if s.level == DiagnosticStatus.ERROR]


def run_planner_harness(tmp_path_factory, harness_class, params: dict):
    """Start a planner node with `params` and yield a `harness_class` node (fixture body)."""
    path = str(tmp_path_factory.mktemp('ckpt') / 'tiny.pt')
    deter = _save_tiny_checkpoint(path)
    args = [x for name, value in params.items() for x in ('-p', f'{name}:={value}')]
    proc = subprocess.Popen(
        [sys.executable, '-m', 'call_planner.planner_node', '--ros-args',
         '-r', f'__ns:=/{ROLE}', '-p', f'role_name:={ROLE}', '-p', f'checkpoint:={path}']
        + args, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    rclpy.init()
    node = harness_class(deter)
    try:
        yield node
    finally:
        node.destroy_node()
        rclpy.shutdown()
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope='module')
def harness(tmp_path_factory):
    yield from run_planner_harness(tmp_path_factory, Harness, {
        'deadline_sim': DEADLINE_SIM, 'deadline_wall': DEADLINE_WALL, 'K': 3,
        'monitor_enabled': 'false'})        # no BEV here: test_planner_monitor_node has them


def _warm_up(harness):
    """Tick until the planner answers a valid state with a planned (non-stop) command."""
    end = time.monotonic() + WAIT

    def planned():
        return harness.actions and any(not _is_stop(c) for c in harness.controls)

    while time.monotonic() < end and not planned():
        harness.tick()
        harness.spin_for(0.2)
    assert planned(), 'planner never answered a valid latent state'


def test_valid_states_are_planned_and_commanded(harness):
    _warm_up(harness)
    harness.clear()
    for _ in range(12):     # > diagnostics_period (1 s): an unchanged OK status goes out again
        harness.tick()
        assert harness.spin_until(harness.answered)
    assert all(0 <= a.index < 15 for a in harness.actions)
    assert harness.spin_until(lambda: harness.plans and len(harness.plans[-1].poses) == 3)
    assert harness.plans[-1].header.frame_id == 'map'
    planned = [c for c in harness.controls if not _is_stop(c)]
    assert planned, 'no planned (non-stop) control was published'
    assert all(0.0 <= c.throttle <= 1.0 and 0.0 <= c.brake <= 1.0 for c in harness.controls)
    ok = [s for s in harness.diagnostics if s.level == DiagnosticStatus.OK]
    assert ok and any(kv.key == 'latency_ms' for kv in ok[-1].values)
    assert len(ok) < 12, 'an unchanged status must not go out on every step'


def test_neighbour_intentions_become_markers_and_malformed_ones_are_skipped(harness):
    _warm_up(harness)
    shared = SharedInformation()
    shared.neighbours = [
        NeighbourLatent(sender_id='hero1', intention_xy=[20.0, 5.0, 22.0, 5.0, 24.0, 5.5]),
        NeighbourLatent(sender_id='hero2', intention_xy=[1.0, float('nan'), 2.0, 3.0]),
        NeighbourLatent(sender_id='hero3', intention_xy=[1.0, 2.0, 3.0]),
    ]
    harness.clear()
    harness.shared_pub.publish(shared)    # the markers below appear once it has arrived

    def neighbour_lines():
        return [m for array in harness.markers for m in array.markers
                if m.ns.endswith('shared_intentions')]
    end = time.monotonic() + WAIT
    while time.monotonic() < end and not neighbour_lines():
        harness.tick()
        harness.spin_for(0.2)
    lines = neighbour_lines()
    assert lines and all(len(m.points) == 3 for m in lines)
    assert lines[0].points[2].x == pytest.approx(24.0)


@pytest.mark.parametrize('kind', ['invalid', 'nan'])
def test_invalid_or_nan_state_commands_a_stop_with_its_reason(harness, kind):
    _warm_up(harness)
    harness.clear()
    h = np.full(harness.deter, np.nan, np.float32) if kind == 'nan' else None
    harness.tick(valid=(kind != 'invalid'), h=h)
    expected = 'invalid' if kind == 'invalid' else 'NaN'
    assert harness.spin_until(lambda: any(expected in r for r in _stop_reasons(harness)))
    assert harness.spin_until(lambda: any(_is_stop(c) for c in harness.controls))
    # the stop feeds the world model the braking action it executes, nothing planned
    answered = [a for a in harness.actions
                if _seconds(a.header.stamp) == pytest.approx(harness.sim_time)]
    assert answered and all(a.accel < 0.0 and a.steer == 0.0 for a in answered), (
        'an invalid state must not produce a planned action')


def test_latent_stale_in_sim_time_stops_within_the_deadline(harness):
    _warm_up(harness)
    last_latent = harness.sim_time
    harness.clear()
    # the simulation keeps running (clock + odometry) but the world model went silent:
    # ages 0.1 .. DEADLINE_SIM are on time, the next tick is past the deadline
    for _ in range(round(DEADLINE_SIM / 0.1)):
        harness.tick(latent=False)
        harness.spin_for(0.2)      # a few watchdog periods (50 ms) at each age
    harness.tick(latent=False)
    deadline_passed = harness.sim_time
    assert deadline_passed - last_latent > DEADLINE_SIM
    assert harness.spin_until(lambda: any(_is_stop(c) for c in harness.controls))
    # every stop says how stale the state was: never at an age within the deadline (the
    # ages come from the reasons, so a slow machine cannot make this fail)
    assert harness.spin_until(lambda: any('s sim' in r for r in _stop_reasons(harness)))
    ages = [float(age) for reason in _stop_reasons(harness)
            for age in re.findall(r'latent_state: stale ([0-9.]+) s sim', reason)]
    assert ages and min(ages) > DEADLINE_SIM, _stop_reasons(harness)
    stop = next(c for c in harness.controls if _is_stop(c))
    # the stop answers the stale state, not the running clock: a lockstep simulator must
    # not count it as this step's command
    assert _seconds(stop.header.stamp) == pytest.approx(last_latent)
    assert _seconds(stop.header.stamp) < deadline_passed
    assert harness.spin_until(lambda: any('latent_state: stale' in r and 'sim' in r
                                          for r in _stop_reasons(harness))), _stop_reasons(harness)


def test_stalled_clock_stops_on_the_wall_deadline(harness):
    _warm_up(harness)
    harness.clear()
    # nothing at all arrives any more: only the wall-clock watchdog can notice
    assert harness.spin_until(lambda: any('wall' in r for r in _stop_reasons(harness)),
                              timeout=DEADLINE_WALL + WAIT)
    assert harness.spin_until(lambda: any(_is_stop(c) for c in harness.controls))
    assert all(_seconds(c.header.stamp) == pytest.approx(harness.sim_time)
               for c in harness.controls if _is_stop(c)), 'stop must carry the last clock stamp'


def test_world_model_gone_past_the_wall_deadline_stops_on_the_current_step(harness):
    _warm_up(harness)
    last_latent = harness.sim_time
    harness.clear()
    # the world model died; a lockstep simulator keeps stepping on its timeout (here 0.5 s)
    silent_since = time.monotonic()
    while time.monotonic() - silent_since < DEADLINE_WALL + 1.0:
        harness.tick(latent=False)
        harness.spin_for(0.5)
    now = harness.sim_time
    # past the wall deadline the stop answers the published step, so it counts for the
    # lockstep and the other vehicles keep their pace
    assert harness.spin_until(lambda: any(
        _is_stop(c) and _seconds(c.header.stamp) == pytest.approx(now)
        for c in harness.controls)), [_seconds(c.header.stamp) for c in harness.controls]
    assert now > last_latent


def test_bad_checkpoint_fails_fast_with_a_reason(tmp_path):
    bad = tmp_path / 'bad.pt'
    bad.write_bytes(b'not a checkpoint')
    result = subprocess.run(
        [sys.executable, '-m', 'call_planner.planner_node', '--ros-args',
         '-p', f'checkpoint:={bad}'],
        env=dict(os.environ), capture_output=True, text=True, timeout=WAIT)
    assert result.returncode != 0
    assert 'corrupt or truncated' in result.stdout + result.stderr


def test_shared_info_is_followed_only_while_markers_have_viewers(harness):
    """Last in this module: it takes the harness's marker subscription away."""
    _warm_up(harness)
    assert harness.spin_until(lambda: harness.shared_pub.get_subscription_count() == 1)
    harness.destroy_subscription(harness.marker_sub)
    end = time.monotonic() + WAIT
    while time.monotonic() < end and harness.shared_pub.get_subscription_count() > 0:
        harness.tick()
        harness.spin_for(0.2)
    assert harness.shared_pub.get_subscription_count() == 0
    harness.tick()
    assert harness.spin_until(harness.answered)  # still plans

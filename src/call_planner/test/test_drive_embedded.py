"""
End to end over DDS: the planner drives a vehicle in the embedded simulator, no missed tick.

Four processes, as in the real graph of one CALL vehicle: call_sim's sim_node (lockstep with a
1 s timeout), perception_node, world_model_node and planner_node, the last two with one tiny
randomly initialised checkpoint sized for the real 128 px BEV. Once the pipeline answers
with planned actions, 100 further simulator ticks must pass without a missed tick
(`call_sim: lockstep` diagnostics), each stepped by a planner command.
"""
import os
import subprocess
import sys
import time

from call_msgs.msg import Action
from carla_msgs.msg import CarlaEgoVehicleControl
from diagnostic_msgs.msg import DiagnosticArray
import pytest
import rclpy
from rclpy.node import Node
import torch
import yaml

ROLE = 'hero0'
TICKS = 100
START_WAIT = 90.0     # bound for all four processes to come up (each imports torch)
RUN_WAIT = 120.0      # bound for the 100 ticks


def _save_checkpoint(path: str) -> None:
    from call_perception.bev_raster import CHANNELS
    from call_world_model import checkpoint
    from call_world_model.actor_critic import ActorCritic
    from call_world_model.config import load_config
    from call_world_model.world_model import WorldModel
    torch.manual_seed(0)
    cfg = load_config('tiny', {'bev_size': 128, 'bev_channels': len(CHANNELS),
                               'cnn_mults': [1, 1, 2, 2, 4]})
    checkpoint.save(path, WorldModel(cfg), ActorCritic(cfg, cfg.feat_dim, cfg.num_actions),
                    cfg, 0, optimizers=False)


class Observer(Node):
    """Records the simulator's lockstep counters and the planner's outputs."""

    def __init__(self):
        super().__init__('drive_test_observer')
        self.lockstep = []          # (step, missed_ticks) per simulator step
        self.actions, self.controls = [], []
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 100)
        self.create_subscription(Action, f'/{ROLE}/action', self.actions.append, 100)
        self.create_subscription(CarlaEgoVehicleControl, f'/carla/{ROLE}/vehicle_control_cmd',
                                 self.controls.append, 100)

    def _on_diag(self, msg):
        for status in msg.status:
            if status.name == 'call_sim: lockstep':
                values = {kv.key: kv.value for kv in status.values}
                self.lockstep.append((msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec,
                                      int(values['missed_ticks'])))

    def spin_until(self, predicate, timeout) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            rclpy.spin_once(self, timeout_sec=0.05)
        return predicate()


@pytest.fixture
def graph(tmp_path):
    ckpt = str(tmp_path / 'tiny128.pt')
    _save_checkpoint(ckpt)
    scenario = tmp_path / 'one_vehicle.yaml'
    scenario.write_text(yaml.safe_dump({
        'map': 'four_lane', 'num_controlled': 1, 'num_background': 10, 'seed': 3, 'K': 5,
        'episode_steps': 1000, 'respawn_done': True}))
    env = dict(os.environ)
    common = ['-r', f'__ns:=/{ROLE}', '-p', 'use_sim_time:=true', '-p', f'role_name:={ROLE}']
    commands = [
        ['call_sim.sim_node', '-p', f'scenario:={scenario}', '-p', 'lockstep_timeout:=1.0'],
        ['call_perception.perception_node', *common],
        ['call_world_model.world_model_node', *common, '-p', f'checkpoint:={ckpt}',
         '-p', 'publish_prediction:=false'],
        ['call_planner.planner_node', *common, '-p', f'checkpoint:={ckpt}'],
    ]
    logs = [open(tmp_path / f'{i}.log', 'w') for i in range(len(commands))]
    procs = [subprocess.Popen([sys.executable, '-m', module, '--ros-args', *args], env=env,
                              stdout=log, stderr=subprocess.STDOUT)
             for (module, *args), log in zip(commands, logs)]
    rclpy.init()
    observer = Observer()
    try:
        yield observer, procs, tmp_path
    finally:
        observer.destroy_node()
        rclpy.shutdown()
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait(timeout=10)
        for log in logs:
            log.close()


def _tail(tmp_path, count=4) -> str:
    return '\n'.join(f'--- {name}\n' + (tmp_path / f'{i}.log').read_text()[-1500:]
                     for i, name in enumerate(('sim', 'perception', 'world_model',
                                               'planner')[:count]))


def test_planner_drives_the_embedded_simulator_for_100_ticks_without_a_missed_tick(graph):
    observer, procs, tmp_path = graph
    # the pipeline is up once the planner answers a world-model state with a planned action
    assert observer.spin_until(lambda: len(observer.actions) >= 3 and observer.lockstep,
                               START_WAIT), _tail(tmp_path)
    assert all(proc.poll() is None for proc in procs), _tail(tmp_path)
    first_step, missed_before = observer.lockstep[-1]
    actions_before = len(observer.actions)
    assert observer.spin_until(
        lambda: len({s for s, _ in observer.lockstep if s > first_step}) >= TICKS,
        RUN_WAIT), _tail(tmp_path)
    window = [(s, m) for s, m in observer.lockstep if s > first_step]
    steps = sorted({s for s, _ in window})[:TICKS]
    missed = dict(window)
    assert missed[steps[-1]] == missed_before, (
        f'{missed[steps[-1]] - missed_before} missed ticks in {TICKS}\n' + _tail(tmp_path))
    # every one of those ticks was stepped by a planned action (not only safety stops)
    assert observer.spin_until(lambda: len(observer.actions) - actions_before >= TICKS,
                               10.0), _tail(tmp_path)
    assert all(0.0 <= c.throttle <= 1.0 and 0.0 <= c.brake <= 1.0 for c in observer.controls)

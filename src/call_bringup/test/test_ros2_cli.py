"""
The README's ROS 2 commands against a running graph: ros2 launch, topic hz/echo, param set.

The graph is started the way a user does, `ros2 launch call_bringup multi_vehicle.launch.py`
(3 vehicles in one container, the default layout), and watched by a probe over real DDS.
Needs the ROS 2 CLI (full install, or the overlay scripts/setup.sh builds); skips otherwise.
"""
import re
import time

from graph_probe import checkpoint_for_tests, GraphProbe, ROLES, stamp_key
import pytest
from ros_cli import Background, launch_command, run, SCENARIO, stop_daemon, tools_env

STARTUP_S = 120.0           # generous upper bounds of waits, never reached when things work
TICKS = 50
NODES = ['/carla_sim'] + [f'/{r}/{n}' for r in ROLES
                          for n in ('perception', 'world_model', 'comm', 'planner')]


class LaunchedGraph:
    """`ros2 launch` of the test graph plus a probe node in this process."""

    def __init__(self, env: dict, checkpoint: str, scenario: str = SCENARIO) -> None:
        self.env = env
        self.launch = Background(launch_command(checkpoint, scenario=scenario), env,
                                 'ros2_launch')
        self.probe = GraphProbe()

    def spin_until(self, done, timeout: float) -> bool:
        """Spin the probe until `done()`; False on timeout or when ros2 launch ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.launch.process.poll() is None:
            self.probe.executor.spin_once(timeout_sec=0.02)
            if done():
                return True
        return False

    def spin_for(self, seconds: float) -> None:
        """Keep receiving for a while."""
        self.spin_until(lambda: False, seconds)

    def close(self) -> None:
        """Ctrl-C the launch, stop the daemon the CLI started, drop the probe."""
        try:
            self.launch.interrupt(timeout=30.0)
        finally:
            self.launch.kill()
            stop_daemon(self.env)
            self.probe.close()


@pytest.fixture(scope='module')
def graph(tmp_path_factory):
    env = tools_env()
    checkpoint = checkpoint_for_tests(str(tmp_path_factory.mktemp('cli_ckpt')))
    launched = LaunchedGraph(env, checkpoint)
    try:
        assert launched.spin_until(launched.probe.live, STARTUP_S), \
            'not every vehicle published CommStats:\n' + launched.launch.output()[-3000:]
        yield launched
    finally:
        launched.close()


def test_launch_runs_50_ticks_with_every_node_alive_and_latents_flowing(graph):
    first = len(graph.probe.ticks)
    heard_before = len(graph.probe.latents)
    assert graph.spin_until(lambda: len(graph.probe.ticks) >= first + TICKS, 120.0), \
        graph.launch.output()[-3000:]
    senders = {msg.sender_key_id for (msg, _) in graph.probe.latents.values()}
    assert len(graph.probe.latents) - heard_before >= TICKS and len(senders) == len(ROLES)
    listed = []
    for _ in range(20):          # the ros2 daemon discovers the graph over a few seconds
        listed = run(['ros2', 'node', 'list'], graph.env, timeout=60).stdout.split()
        if set(NODES) <= set(listed):
            break
        graph.spin_for(1.0)
    assert sorted(set(listed) & set(NODES)) == sorted(NODES), listed
    output = graph.launch.output()
    assert 'process has died' not in output and 'Traceback' not in output, output[-3000:]


def test_topic_hz_reports_the_rate_of_the_latents(graph):
    hz = Background(['ros2', 'topic', 'hz', '/v2v/latents'], graph.env, 'topic_hz')
    try:
        # keep the graph's DDS traffic read while hz measures
        graph.spin_until(lambda: 'average rate' in hz.output(), 90.0)
    finally:
        hz.interrupt(timeout=10.0)
        hz.kill()
    rates = [float(r) for r in re.findall(r'average rate: ([0-9.]+)', hz.output())]
    assert rates and rates[-1] > 1.0, hz.output()[-2000:]


def test_topic_echo_once_prints_one_comm_stats(graph):
    echo = run(['ros2', 'topic', 'echo', '--once', '/hero0/comm_stats'], graph.env, timeout=90)
    assert echo.returncode == 0, echo.stdout[-2000:]
    assert 'vehicle_id: hero0' in echo.stdout and 'comm_range:' in echo.stdout


def test_param_set_of_c_on_the_running_comm_node_reaches_the_gate(graph):
    stats = graph.probe.stats['hero0']
    assert stats[-1].threshold != 0.0
    setter = Background(['ros2', 'param', 'set', '/hero0/comm', 'c', '0.0'],
                        graph.env, 'param_set')
    try:   # the probe receives the graph meanwhile
        graph.spin_until(lambda: setter.process.poll() is not None, 60.0)
    finally:
        setter.kill()
    assert 'Set parameter successful' in setter.output(), setter.output()
    # c = 0 shares with everyone: an infinite range (the largest float32 on the wire). The
    # probe's clock can lag the graph under load, so the step the node took c on is read from
    # its own CommStats (threshold is the c of that step's gate): from that step on, every
    # step reports c = 0, and its gate already used it (the range of that very step)
    after = len(stats)
    assert graph.spin_until(lambda: any(s.threshold == 0.0 for s in stats[after:]), 60.0)
    later = stats[after:]
    first = next(i for i, s in enumerate(later) if s.threshold == 0.0)
    assert all(s.threshold == 0.0 and s.comm_range > 1e30 for s in later[first:]), \
        [(stamp_key(s.header.stamp), s.threshold, s.comm_range) for s in later[first:]]
    assert graph.spin_until(lambda: len(stats) > after + first + 3, 60.0)
    assert all(s.threshold == 0.0 and s.comm_range > 1e30 for s in stats[after + first:])
    got = run(['ros2', 'param', 'get', '/hero0/comm', 'c'], graph.env, timeout=60)
    assert 'Double value is: 0.0' in got.stdout, got.stdout

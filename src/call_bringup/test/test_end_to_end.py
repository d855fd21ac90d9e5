"""
End to end over real DDS: the whole CALL graph as separate processes, 3 vehicles.

The pip-environment twin of test_multi_vehicle_launch.py (launch_testing): the graph comes
from the same build_graph and is started by the runner. A fixed communication range (a huge
c keeps the gate from growing it; c = inf would mean no communication) makes "in range" a
property the test can check.
"""
import os
import signal
import subprocess
import sys

from graph_probe import (accepted_messages, checkpoint_for_tests, control_key, distance,
                         GraphProbe, middleware_teardown_hang, ROLES, scenario_variant,
                         stamp_key, start_graph, unclean_stops)
import pytest

RANGE = 500.0                  # m; the scenario's vehicles are ~350 to ~1000 m apart
FIXED_RANGE = {'call_comm': {'initial_range': RANGE, 'max_range': RANGE}}
STARTUP_S = 90.0               # 13 node processes import torch/SUMO on 2 shared cores
TICKS = 100


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return checkpoint_for_tests(str(tmp_path_factory.mktemp('e2e_ckpt')))


def test_three_vehicles_drive_and_share_latents_only_in_range(checkpoint, tmp_path):
    supervisor = start_graph(str(tmp_path), checkpoint, c=1e9, overrides=FIXED_RANGE)
    probe = GraphProbe(fleet_file=os.path.join(str(tmp_path), 'keys', 'fleet.yaml'))
    exits: list = []
    try:
        # the window opens once every planner answers: on a loaded machine the nodes may
        # load after the simulator's start-up hold, which then steps without their commands
        assert probe.spin_until(
            lambda: probe.live() and probe.publishers_seen() and probe.answering(),
            STARTUP_S, supervisor, exits), \
            f'not every vehicle published CommStats and a command (or a writer is unseen); ' \
            f'exits: {exits}'
        first = len(probe.ticks)
        assert probe.spin_until(
            lambda: len(probe.ticks) >= first + TICKS + 2 and probe.missed_ticks_between(
                probe.ticks[first], probe.ticks[first + TICKS]) is not None,
            120.0, supervisor, exits), f'the simulation stalled; exits: {exits}'
    finally:
        supervisor.stop(sigint_wait=30.0)    # ample time: the exit codes are checked
        probe.close()
    assert not exits, '\n'.join(e.describe() for e in exits)
    unclean = unclean_stops(supervisor)
    # a stop that hung ends with its threads' stacks in those last lines
    assert not unclean, '\n'.join(e.describe() for e in unclean)
    window = probe.ticks[first:first + TICKS]
    for role in ROLES:
        # every vehicle answered each tick of the window with a command and the action it
        # declared, stamped for that tick (a count would take a re-sent answer for a
        # missing one), and moved
        commanded = {stamp_key(c.header.stamp) for c in probe.commands[role]}
        assert not set(window) - commanded, \
            (role, sorted(set(window) - commanded), probe.sim_status)
        acted = {stamp_key(a.header.stamp) for a in probe.actions[role]}
        assert not set(window) - acted, (role, sorted(set(window) - acted))
        poses = [probe.odometry[role][t] for t in window if t in probe.odometry[role]]
        assert len(poses) >= TICKS - 2
        assert distance(poses[0], poses[-1]) > 1.0
    # the simulator stepped each tick on every vehicle's answer to it, except where an answer
    # came after the lockstep timeout (1 s wall: a loaded machine): there it applied an older
    # command, and it counted (and reported) a missed tick
    dt = min(round(b - a, 3) for a, b in zip(window, window[1:]))
    late = checked = 0
    for step in window:
        stepped_to = round(step + dt, 3)     # its vehicle_status tells what was applied
        mismatched = False
        for role in ROLES:
            applied = probe.applied[role].get(stepped_to)
            if applied is None:
                continue
            checked += 1
            answers = {control_key(c) for c in probe.commands[role]
                       if stamp_key(c.header.stamp) == step}
            mismatched |= applied not in answers
        late += mismatched
    missed = probe.missed_ticks_between(probe.ticks[first], probe.ticks[first + TICKS])
    assert late <= missed, (late, missed, probe.sim_status)
    assert checked >= 0.9 * TICKS * len(ROLES), checked

    accepted = out_of_range = bytes_checked = ranges_checked = 0
    # steps from the window on: before it the probe's V2V subscription may not yet have
    # matched every writer (a volatile reader misses what was sent before)
    checked_from = max(min(stamp for _, stamp in probe.latents), probe.ticks[first]) + 0.5
    for receiver in ROLES:
        for stats in probe.stats[receiver]:
            t = round(stats.header.stamp.sec + stats.header.stamp.nanosec * 1e-9, 3)
            # skip steps while the probe's V2V subscription was being matched, and the
            # last ones, whose shared_info may still be on the way
            if t < checked_from or t > probe.ticks[-1] - 0.25:
                continue
            assert stats.comm_range == pytest.approx(RANGE)
            messages = accepted_messages(probe, receiver, t)
            assert messages is not None and None not in messages
            assert sorted(probe.sender(m) for m, _ in messages) == sorted(stats.neighbours)
            # latents flow only between vehicles in range (the receiver's pose of that step;
            # the probe may have missed a few odometry messages, counted below)
            own = probe.odometry[receiver].get(t, None)
            in_range = [distance(own, (m.x, m.y)) <= RANGE + 3.0 for m, _ in messages
                        if own is not None]
            assert all(in_range), (receiver, t)
            ranges_checked += len(in_range)
            accepted += len(messages)
            # CommStats bytes are the serialized sizes of what was accepted / sent (steps
            # whose own message the probe did not hear are counted below, not skipped)
            assert stats.bytes_received == sum(size for _, size in messages)
            sent = probe.latents.get((receiver, t))
            if sent is not None:
                assert stats.bytes_sent == sent[1]
            bytes_checked += sent is not None
        out_of_range += probe.stats[receiver][-1].dropped_out_of_range
    assert accepted > 0 and out_of_range > 0          # some pairs in range, some not
    # nearly every accepted message had its receiver's pose, and nearly every step its own
    # message, so the checks above ran on the run's data, not on a few leftovers
    assert ranges_checked >= 0.9 * accepted, (ranges_checked, accepted)
    assert bytes_checked >= TICKS


def test_runner_exits_non_zero_naming_the_node_that_died(checkpoint, tmp_path):
    """A comm node with a bad parameter dies at start-up: the runner says which, exits 1."""
    # two vehicles: the dead node's and one whose nodes must all be stopped too
    scenario = scenario_variant(str(tmp_path), 'two_vehicles', num_controlled=2)
    runner = subprocess.Popen(
        [sys.executable, '-m', 'call_bringup.run', '--scenario', scenario,
         '--checkpoint', checkpoint, '--keys-dir', str(tmp_path / 'keys'),
         '--set', '/hero1/comm.h_encoding=bogus'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = runner.communicate(timeout=90)
    finally:
        if runner.poll() is None:
            runner.send_signal(signal.SIGINT)
            runner.communicate(timeout=20)
    assert runner.returncode == 1, out
    assert 'ERROR: node hero1/comm died (exit code' in out
    assert 'h_encoding' in out                       # its last output is shown
    pids = [int(line.rsplit('pid ', 1)[1].rstrip(')')) for line in out.splitlines()
            if '[call_run] started ' in line]
    assert len(pids) == 9                            # the simulator, 2 x 4 nodes
    for pid in pids:                                 # nothing left running
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# the last lines of a simulator whose stop hung in Fast DDS's teardown deadlock (seen here,
# the stop watchdog's dump; paths shortened)
TEARDOWN_HANG = """[INFO] [1796516787.495771891] [carla_sim]: scenario 'three_vehicles.yaml'
Timeout (0:00:10)!
Thread 0x00007fc901dfb740 (most recent call first):
  File "/w/.venv/lib/python3.11/site-packages/rclpy/node.py", line 2082 in destroy_node
  File "/w/build/call_common/call_common/node_main.py", line 104 in spin_nodes_until_signal
  File "/w/build/call_common/call_common/node_main.py", line 58 in spin_until_signal
  File "/w/build/call_sim/call_sim/sim_node.py", line 326 in main""".splitlines()


def test_only_a_stop_hung_in_rclpys_teardown_counts_as_the_middlewares_deadlock():
    assert middleware_teardown_hang(TEARDOWN_HANG)
    # the node's own stop hung (a callback, on_stop): its fault, not the middleware's
    ours = [line.replace('rclpy/node.py", line 2082 in destroy_node',
                         'call_sim/sim_node.py", line 300 in stopped') for line in TEARDOWN_HANG]
    assert not middleware_teardown_hang(ours)
    # the supervisor's SIGUSR1 dump before SIGKILL, not the watchdog's
    assert not middleware_teardown_hang(TEARDOWN_HANG[:1] + TEARDOWN_HANG[2:])
    assert not middleware_teardown_hang([])

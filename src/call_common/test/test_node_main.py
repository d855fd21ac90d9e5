"""spin_until_signal in a real process: clean stop on SIGINT/SIGTERM, exit 2 on a start error."""
import os
import signal
import subprocess
import sys
import textwrap
from typing import Tuple

import pytest

SCRIPT = textwrap.dedent("""
    import ctypes
    import sys
    import time
    from call_common import node_main
    from call_common.node_main import spin_until_signal
    from rclpy.node import Node

    class Ticker(Node):
        def __init__(self):
            super().__init__('ticker')
            if sys.argv[1] == 'bad':
                raise ValueError('parameter x is bad')
            self.ticks = 0
            self.create_timer(0.01, self.tick)

        def tick(self):
            self.ticks += 1
            if self.ticks == 5:
                print('spinning', flush=True)

    def stopped(node):
        print('stopped', node.ticks > 0, flush=True)
        if sys.argv[1] == 'hang':        # a shutdown that never ends
            time.sleep(600)
        if sys.argv[1] == 'hang_holding_gil':
            # as a middleware call stuck in teardown: a C call that keeps the GIL (PyDLL)
            # and never returns (a default glibc mutex locked twice by one thread)
            libc = ctypes.PyDLL(None)
            mutex = ctypes.create_string_buffer(64)     # zeroed: PTHREAD_MUTEX_INITIALIZER
            libc.pthread_mutex_lock(mutex)
            libc.pthread_mutex_lock(mutex)

    if sys.argv[1].startswith('hang'):
        node_main.STOP_LIMIT = 1.0

    sys.exit(spin_until_signal(Ticker, name='ticker', start_errors=(ValueError,),
                               on_stop=stopped,
                               finished=lambda node: sys.argv[1] == 'finite'
                               and node.ticks >= 20))
""")


def _start(mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, '-c', SCRIPT, mode], env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _signalled(mode: str, *signums: int, timeout: float = 30.0) -> Tuple[int, str]:
    """Start the script in `mode`, send `signums` once it spins; its exit code and output."""
    proc = _start(mode)
    try:
        # printed from a timer callback: the signals land while callbacks keep running
        assert proc.stdout.readline().strip() == 'spinning'
        for signum in signums:
            proc.send_signal(signum)
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_node_cleanly(signum):
    code, out = _signalled('good', signum)
    assert code == 0, out
    assert out.strip().splitlines()[-1] == 'stopped True'
    assert 'Traceback' not in out and 'Exception ignored' not in out


def test_a_start_error_exits_2_with_the_reason():
    proc = _start('bad')
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert out.strip() == 'ticker: cannot start: parameter x is bad'


def test_a_finished_node_ends_the_run_cleanly():
    proc = _start('finite')
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert out.strip().splitlines() == ['spinning', 'stopped True']


@pytest.mark.parametrize('mode', ['hang', 'hang_holding_gil'])
def test_a_shutdown_that_hangs_ends_with_code_1_and_the_threads_stacks(mode):
    code, out = _signalled(mode, signal.SIGINT, timeout=60.0)
    assert code == 1, out
    assert 'Timeout (0:00:01)!' in out   # faulthandler's watchdog, STOP_LIMIT after the signal
    assert 'in stopped' in out           # the stack shows where it hung


def test_sigusr1_prints_the_threads_stacks_and_the_node_keeps_running():
    code, out = _signalled('good', signal.SIGUSR1, signal.SIGINT)
    assert code == 0, out
    assert 'most recent call first' in out and 'in spin_nodes_until_signal' in out, out
    assert out.strip().splitlines()[-1] == 'stopped True'

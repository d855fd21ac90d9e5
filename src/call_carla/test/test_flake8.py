"""
ament_flake8 over the package, in a child interpreter of its own.

flake8 checks files in a multiprocessing pool of fork()ed workers. Forked from this pytest
process, after tests that ran rclpy and Fast DDS in it, a worker inherits the memory of threads
that no longer exist in it (their locked mutexes included) and can block for ever, and a worker
that dies loses its file, on whose result the pool then waits for ever: the Jazzy suite hung
here. A child started with exec holds no DDS state, so its workers fork from a clean process.
"""
import subprocess
import sys

import pytest

DEADLINE_S = 900.0    # a hang fails the test instead of stalling the suite; never reached


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    done = subprocess.run([sys.executable, '-m', 'ament_flake8.main'], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=DEADLINE_S)
    report = done.stdout.split('Checked files:')[0]     # without the list of every file
    assert done.returncode == 0, 'code style errors / warnings:\n' + report

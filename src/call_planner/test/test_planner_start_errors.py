"""A planner that cannot start says why in one line and exits with code 2 (no traceback)."""
import os
import subprocess
import sys

import pytest

WAIT = 60.0


@pytest.mark.parametrize('param, expected', [
    (None, 'parameter checkpoint is empty: the planner needs a world model'),
    ('checkpoint:=/nonexistent/model.pt', "checkpoint '/nonexistent/model.pt' does not exist"),
])
def test_a_missing_checkpoint_exits_2_with_one_line(param, expected):
    args = [sys.executable, '-m', 'call_planner.planner_node', '--ros-args',
            '-r', '__ns:=/hero0'] + (['-p', param] if param else [])
    done = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=WAIT, env=dict(os.environ))
    assert done.returncode == 2, done.stdout
    assert done.stdout.strip().splitlines() == [f'planner_node: cannot start: {expected}']

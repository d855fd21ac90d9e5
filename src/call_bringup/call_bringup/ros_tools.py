"""
Where the ROS 2 command-line tools are: `ros2 launch|topic|param`, `launch_test`, rqt.

A full ROS 2 install has them on PATH. In the pip environment scripts/setup.sh builds them
from ../shared/ros-tools as an overlay and scripts/env.sh names it in $CALL_ROS_TOOLS; they
then run in child processes with that overlay sourced. The overlay stays out of the calling
process, because pytest >= 9 cannot load launch_testing's pytest plugin. ROS-free.
"""
import functools
import importlib.util
import os
import shutil
import subprocess
from typing import Optional

MISSING = ('ROS 2 CLI tools (ros2, launch_test, rqt) not found: scripts/setup.sh builds them '
           'where ../shared/ros-tools exists; a full ROS 2 install has them')


@functools.lru_cache(maxsize=4)
def _sourced(setup_bash: str, base: tuple) -> tuple:
    out = subprocess.run(['bash', '-c', f'. "{setup_bash}" >/dev/null && env -0'],
                         check=True, capture_output=True, env=dict(base)).stdout
    return tuple(item.split('=', 1) for item in out.decode().split('\0') if '=' in item)


def tools_environment() -> Optional[dict]:
    """
    Return an environment in which the tools run (None: not installed, see MISSING).

    The overlay's own prefix only (`local_setup.bash`), not its `setup.bash`: that one first
    sources the workspace the overlay was built on top of, so from a second checkout (a git
    worktree sharing the first one's overlay) `ros2 launch` and `launch_test` ran the first
    checkout's packages instead of the calling environment's.
    """
    overlay = os.environ.get('CALL_ROS_TOOLS', '')
    setup_bash = os.path.join(overlay, 'local_setup.bash')
    if overlay and os.path.isfile(setup_bash):
        env = dict(_sourced(setup_bash, tuple(sorted(os.environ.items()))))
    elif shutil.which('ros2') and importlib.util.find_spec('launch_testing') is not None:
        env = dict(os.environ)
    else:
        return None
    env['PYTHONUNBUFFERED'] = '1'
    env['RCUTILS_COLORIZED_OUTPUT'] = '0'
    return env

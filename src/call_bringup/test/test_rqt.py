"""
rqt against a running graph, under a virtual display: rqt_plot draws comm_range, rqt_topic opens.

`ros2 run rqt_plot rqt_plot /hero0/comm_stats/comm_range` and `ros2 run rqt_topic rqt_topic`
run under Xvfb next to `ros2 launch` of the test graph; xdotool sizes each window, imagemagick's
`import` screenshots it. The plot check reads pixels inside the axes frame: the curve's colour
must cross most of the plot's width (the legend's sample line is a few pixels wide).
Needs the ROS 2 tools (ros_cli) and Debian's xvfb, xdotool and imagemagick (scripts/setup.sh
installs them with apt-get); skips, saying why, without them.
"""
import os
import shutil
import subprocess
import time

import cv2
from graph_probe import checkpoint_for_tests
import numpy as np
import pytest
from ros_cli import Background, run, tools_env
from test_ros2_cli import LaunchedGraph

WINDOW = (1000, 700)
SHOTS = os.environ.get('CALL_RQT_SCREENSHOTS', '')   # keep the screenshots here (README)


@pytest.fixture(scope='module')
def display():
    missing = [tool for tool in ('Xvfb', 'xdotool', 'import') if shutil.which(tool) is None]
    if missing:
        pytest.skip(f'{", ".join(missing)} not installed (Debian xvfb, xdotool, imagemagick; '
                    'scripts/setup.sh installs them with apt-get where it may)')
    read, write = os.pipe()
    xvfb = subprocess.Popen(['Xvfb', '-displayfd', str(write), '-screen', '0', '1280x800x24',
                             '-nolisten', 'tcp'], pass_fds=(write,),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as stream:
        number = stream.readline().strip()
    try:
        yield f':{number}'
    finally:
        xvfb.terminate()
        xvfb.wait(timeout=10)


@pytest.fixture(scope='module')
def graph(tmp_path_factory, display):
    env = tools_env()
    launched = LaunchedGraph(env, checkpoint_for_tests(str(tmp_path_factory.mktemp('ckpt'))))
    try:
        assert launched.spin_until(launched.probe.live, 120.0), launched.launch.output()[-3000:]
        yield launched
    finally:
        launched.close()


def _window(graph, app: Background, env: dict) -> str:
    """Wait for the app's window, size it, let it draw; return its X window id."""
    ids = []
    deadline = time.monotonic() + 90.0
    while not ids and time.monotonic() < deadline and app.process.poll() is None:
        graph.spin_for(1.0)
        found = run(['xdotool', 'search', '--onlyvisible', '--name', 'rqt'], env, timeout=30)
        ids = found.stdout.split()
    assert ids, app.output()[-3000:]
    run(['xdotool', 'windowsize', ids[0], str(WINDOW[0]), str(WINDOW[1])], env, timeout=30)
    graph.spin_for(8.0)        # the graph keeps publishing while the window redraws
    return ids[0]


def _screenshot(window: str, env: dict, path: str) -> np.ndarray:
    shot = run(['import', '-window', window, path], env, timeout=60)
    assert shot.returncode == 0, shot.stdout
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        shutil.copy(path, SHOTS)
    return cv2.imread(path)[:, :, ::-1]


def _axes_frame(rgb: np.ndarray) -> tuple:
    """Find the plot's black axes frame: (top, bottom, left, right) pixel lines."""
    black = (rgb.max(axis=2) < 40)
    rows = np.flatnonzero(black.sum(axis=1) > 0.5 * rgb.shape[1])
    cols = np.flatnonzero(black.sum(axis=0) > 0.3 * rgb.shape[0])
    assert len(rows) >= 2 and len(cols) >= 2, 'no axes frame in the screenshot'
    return rows[0], rows[-1], cols[0], cols[-1]


def _curve_columns(rgb: np.ndarray, frame: tuple) -> float:
    """
    Share of the plot's columns that hold a pixel of the (blue) curve, inside the frame.

    The rows next to the frame count too: a value at the y axis' auto-scaled maximum (the
    range only grows) is drawn along the top of the frame.
    """
    top, bottom, left, right = frame
    inside = rgb[max(top - 2, 0):bottom + 3, left + 1:right].astype(int)
    red, green, blue = inside[..., 0], inside[..., 1], inside[..., 2]
    curve = (blue - np.maximum(red, green) > 30)
    return float(curve.any(axis=0).mean())


def test_rqt_plot_draws_the_communication_range(graph, display, tmp_path):
    env = dict(graph.env, DISPLAY=display)
    plot = Background(['ros2', 'run', 'rqt_plot', 'rqt_plot', '/hero0/comm_stats/comm_range'],
                      env, 'rqt_plot')
    share = 0.0
    try:
        window = _window(graph, plot, env)
        for _ in range(10):      # the first messages may still be on their way: look again
            rgb = _screenshot(window, env, str(tmp_path / 'rqt_plot.png'))
            share = _curve_columns(rgb, _axes_frame(rgb))
            if share > 0.5:
                break
            graph.spin_for(2.0)
    finally:
        plot.kill()
    assert share > 0.5, f'the curve covers {share:.0%} of the plot width'


def test_rqt_topic_lists_the_graph(graph, display, tmp_path):
    env = dict(graph.env, DISPLAY=display)
    topic = Background(['ros2', 'run', 'rqt_topic', 'rqt_topic'], env, 'rqt_topic')
    try:
        window = _window(graph, topic, env)
        rgb = _screenshot(window, env, str(tmp_path / 'rqt_topic.png'))
    finally:
        topic.kill()
    # text rows of the topic table: dark pixels on many rows of the window
    dark_rows = int(((rgb.max(axis=2) < 100).sum(axis=1) > 20).sum())
    assert dark_rows > 100, f'only {dark_rows} rows with text'

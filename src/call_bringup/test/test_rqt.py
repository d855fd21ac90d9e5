"""
rqt against a running graph, under a virtual display: rqt_plot draws comm_range, rqt_topic lists.

`ros2 run rqt_plot rqt_plot /hero0/comm_stats/comm_range` and `ros2 run rqt_topic rqt_topic`
run under Xvfb next to `ros2 launch` of the test graph; xdotool sizes each window, imagemagick's
`import` screenshots it. The plot check reads pixels inside the axes frame: the curve's colour
must cross most of the plot's width (the legend's sample line is a few pixels wide).

rqt_plot resolves a command-line topic once, in its plugin's constructor, right after its DDS
participant is created, and drops a topic that participant has not discovered yet without a
word (no curve, no legend; upstream rqt_plot issue 4). Discovering the graph's endpoints takes
0.4-4 s here, so the command-line topic is taken or not by chance. The test therefore does what
the README tells a user: while the probe sees no rqt_plot subscription on the topic, it types
the topic into rqt_plot's Topic field and presses Enter (rqt_plot checks the topic against its
participant's graph on every keystroke). The graph runs a long episode, so that it keeps
publishing for the whole module (the test scenario's episode ends the simulator's run).
Every wait polls for an event under a generous deadline.
Needs the ROS 2 tools (ros_cli) and Debian's xvfb, xdotool and imagemagick (scripts/setup.sh
installs them with apt-get); skips, saying why, without them.
"""
import os
import shutil
import subprocess
import time
from typing import Callable, Optional

import cv2
from graph_probe import checkpoint_for_tests, scenario_variant
import numpy as np
import pytest
from ros_cli import Background, run, tools_env
from test_ros2_cli import LaunchedGraph

WINDOW = (1000, 700)
SCREEN = '1280x800x24'
PLOTTED = '/hero0/comm_stats/comm_range'
LISTED = 12                 # topic lines at least: the graph has over 40, the window shows ~35
EPISODE_STEPS = 1_000_000   # the graph publishes until the module's end (Ctrl-C), not 100 s
RETYPE_S = 15.0             # look this long for rqt_plot's subscription before typing again
DEADLINE_S = 180.0          # generous upper bound of every wait, never reached when things work
X_REFUSED = 'could not connect to display'   # Qt's words when the X server refused it
SHOTS = os.environ.get('CALL_RQT_SCREENSHOTS', '')   # keep the screenshots here (README)


@pytest.fixture(scope='module')
def display():
    missing = [tool for tool in ('Xvfb', 'xdotool', 'import') if shutil.which(tool) is None]
    if missing:
        pytest.skip(f'{", ".join(missing)} not installed (Debian xvfb, xdotool, imagemagick; '
                    'scripts/setup.sh installs them with apt-get where it may)')
    xvfb, number = None, ''
    # a display number of this run's own: X's socket files in /tmp/.X11-unix are shared by
    # every network namespace, so concurrent runs on one machine must not both take :0
    for candidate in range(100 + os.getpid() % 3000, 3200):
        read, write = os.pipe()
        xvfb = subprocess.Popen(['Xvfb', f':{candidate}', '-displayfd', str(write), '-screen',
                                 '0', SCREEN, '-nolisten', 'tcp'], pass_fds=(write,),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(write)
        with os.fdopen(read) as stream:
            number = stream.readline().strip()   # written once Xvfb accepts clients
        if number:
            break
        xvfb.wait(timeout=30)                  # display taken: Xvfb exited, try the next
    assert number, 'Xvfb did not start'
    try:
        yield f':{number}'
    finally:
        xvfb.terminate()
        xvfb.wait(timeout=30)


@pytest.fixture(scope='module')
def graph(tmp_path_factory, display):
    env = tools_env()
    work = str(tmp_path_factory.mktemp('rqt_graph'))
    scenario = scenario_variant(work, 'three_vehicles_long', episode_steps=EPISODE_STEPS)
    launched = LaunchedGraph(env, checkpoint_for_tests(work), scenario)
    try:
        assert launched.spin_until(launched.probe.live, DEADLINE_S), \
            launched.launch.output()[-3000:]
        yield launched
    finally:
        launched.close()


@pytest.fixture
def gui_env(graph, display, tmp_path):
    """Return the tools' environment on the virtual display, with no rqt configuration yet."""
    # rqt restores the topics of its last session from its settings: start from none
    return dict(graph.env, DISPLAY=display, XDG_CONFIG_HOME=str(tmp_path / 'config'))


def _poll(graph, check: Callable[[], Optional[object]], app: Background,
          timeout: float = DEADLINE_S, every: float = 0.5):
    """Return check()'s first truthy value, receiving the graph between checks (None: never)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and app.process.poll() is None:
        found = check()
        if found:
            return found
        graph.spin_for(every)
    return None


def _top_level(env: dict) -> Optional[str]:
    """Return the X window id of a visible rqt window on the display, or None."""
    found = run(['xdotool', 'search', '--onlyvisible', '--name', 'rqt'], env, timeout=60)
    ids = found.stdout.split()
    return ids[0] if ids else None


def _start(graph, command: list, env: dict, name: str) -> Background:
    """
    Start a GUI tool and wait until its window shows or it exits.

    Under heavy load the virtual X server once refused a client (rqt_plot exited with "could
    not connect to display") and served the next one; such a start is retried, twice at most.
    Any other failure is left to the test.
    """
    for _ in range(3):
        app = Background(command, env, name)
        _poll(graph, lambda: _top_level(env), app)
        if app.process.poll() is None or X_REFUSED not in app.output():
            break
        app.kill()
    return app


def _window(graph, app: Background, env: dict) -> str:
    """Wait for the app's top-level window, size it; return its X window id."""
    window = _poll(graph, lambda: _top_level(env), app)
    assert window, 'no rqt window:\n' + app.output()[-3000:]

    def sized() -> bool:
        run(['xdotool', 'windowsize', window, str(WINDOW[0]), str(WINDOW[1])], env, timeout=60)
        geometry = run(['xdotool', 'getwindowgeometry', window], env, timeout=60).stdout
        return f'Geometry: {WINDOW[0]}x{WINDOW[1]}' in geometry

    assert _poll(graph, sized, app), app.output()[-3000:]
    return window


def _screenshot(window: str, env: dict, path: str) -> np.ndarray:
    shot = run(['import', '-window', window, path], env, timeout=120)
    assert shot.returncode == 0, shot.stdout
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        shutil.copy(path, SHOTS)
    return cv2.imread(path)[:, :, ::-1]


def _painted(rgb: np.ndarray) -> bool:
    """Tell whether the window drew itself at its new size (X leaves undrawn area black)."""
    return float((rgb.max(axis=2) < 8).mean()) < 0.02


def _text_lines(rgb: np.ndarray) -> int:
    """
    Count the lines of text in the white body of a table (rqt_topic's topic list).

    Rows that are mostly white belong to the table's body; a run of such rows with dark
    (text) pixels is one line.
    """
    white_rows = (rgb.min(axis=2) > 245).mean(axis=1) > 0.5
    text_rows = white_rows & ((rgb.max(axis=2) < 120).sum(axis=1) >= 3)
    return int(np.count_nonzero(text_rows[1:] & ~text_rows[:-1]) + int(text_rows[0]))


def _axes_frame(rgb: np.ndarray) -> Optional[tuple]:
    """Find the plot's black axes frame: (top, bottom, left, right) pixel lines, or None."""
    black = (rgb.max(axis=2) < 40)
    rows = np.flatnonzero(black.sum(axis=1) > 0.5 * rgb.shape[1])
    cols = np.flatnonzero(black.sum(axis=0) > 0.3 * rgb.shape[0])
    if len(rows) < 2 or len(cols) < 2:
        return None
    return rows[0], rows[-1], cols[0], cols[-1]


def _curve_columns(rgb: np.ndarray) -> float:
    """
    Share of the plot's columns that hold a pixel of the (blue) curve, inside the axes frame.

    The rows next to the frame count too: a value at the y axis' auto-scaled maximum (the
    range only grows) is drawn along the top of the frame. 0 while the window is not drawn.
    """
    frame = _axes_frame(rgb) if _painted(rgb) else None
    if frame is None:
        return 0.0
    top, bottom, left, right = frame
    inside = rgb[max(top - 2, 0):bottom + 3, left + 1:right].astype(int)
    red, green, blue = inside[..., 0], inside[..., 1], inside[..., 2]
    curve = (blue - np.maximum(red, green) > 30)
    return float(curve.any(axis=0).mean())


def _subscriptions(graph, topic: str) -> set:
    """Return the endpoint ids of every subscription on `topic` the probe has discovered."""
    return {bytes(info.endpoint_gid)
            for info in graph.probe.node.get_subscriptions_info_by_topic(topic)}


def _topic_field(rgb: np.ndarray) -> Optional[tuple]:
    """
    Find rqt_plot's Topic field: the longest white run in the window's top band; its centre.

    The field is the only white widget above the plot's toolbar (the canvas starts lower).
    """
    band = rgb[:min(80, rgb.shape[0])].min(axis=2) > 250
    best = (0, None)
    for row in range(band.shape[0]):
        padded = np.concatenate(([0], band[row].astype(np.int8), [0]))
        edges = np.flatnonzero(np.diff(padded))
        for begin, end in zip(edges[::2], edges[1::2]):
            if end - begin > best[0]:
                best = (end - begin, (int(begin + end) // 2, row))
    return best[1] if best[0] >= 100 else None


def _type_topic(window: str, env: dict, path: str, topic: str) -> None:
    """Type `topic` into rqt_plot's Topic field and press Enter, as a user adds a curve."""
    field = _topic_field(_screenshot(window, env, path))
    if field is None:
        return                  # not drawn yet: the caller tries again
    for command in (['mousemove', '--window', window, str(field[0]), str(field[1])],
                    ['click', '1'], ['key', '--clearmodifiers', 'ctrl+a'],
                    ['type', '--delay', '30', topic],
                    ['key', 'Escape'],          # closes the topic completer's pop-up
                    ['key', 'Return']):         # adds the topic when rqt_plot deems it plottable
        run(['xdotool', *command], env, timeout=60)


def test_rqt_plot_draws_the_communication_range(graph, gui_env, tmp_path):
    topic = PLOTTED.rsplit('/', 1)[0]
    stats = graph.probe.stats['hero0']
    published, before = len(stats), _subscriptions(graph, topic)
    share, typed, log = 0.0, 0, ''
    plot = _start(graph, ['ros2', 'run', 'rqt_plot', 'rqt_plot', PLOTTED], gui_env, 'rqt_plot')
    try:
        window = _window(graph, plot, gui_env)
        path = str(tmp_path / 'rqt_plot_comm_range.png')
        # rqt's node name reaches the probe later than its endpoints: compare endpoints
        subscribed = _poll(graph, lambda: _subscriptions(graph, topic) - before, plot,
                           timeout=RETYPE_S)
        deadline = time.monotonic() + DEADLINE_S
        while not subscribed and time.monotonic() < deadline and plot.process.poll() is None:
            _type_topic(window, gui_env, path, PLOTTED)
            typed += 1
            subscribed = _poll(graph, lambda: _subscriptions(graph, topic) - before, plot,
                               timeout=RETYPE_S)
        log += (f'subscribed {bool(subscribed)} (topic typed in {typed} times), '
                f'{len(stats) - published} CommStats of hero0 published meanwhile\n')
        if subscribed:
            def drawn() -> bool:
                nonlocal share
                share = _curve_columns(_screenshot(window, gui_env, path))
                return share > 0.5

            # the line grows from the right edge as simulated seconds pass: look until it spans
            _poll(graph, drawn, plot, every=2.0)
        log += f'{len(stats) - published} CommStats of hero0 published since the start\n'
        print(log)      # shown with -s or -rA: whether the command-line topic was taken
    finally:
        plot.interrupt(timeout=60.0)    # Ctrl-C: rqt closes, its participant leaves
        plot.kill()
    assert share > 0.5, (f'the curve covers {share:.0%} of the plot width\n' + log
                         + plot.output()[-2000:])


def test_rqt_topic_lists_the_graph(graph, gui_env, tmp_path):
    topic = _start(graph, ['ros2', 'run', 'rqt_topic', 'rqt_topic'], gui_env, 'rqt_topic')
    lines = 0
    try:
        window = _window(graph, topic, gui_env)
        path = str(tmp_path / 'rqt_topic.png')

        def listed() -> bool:
            nonlocal lines
            rgb = _screenshot(window, gui_env, path)
            lines = _text_lines(rgb) if _painted(rgb) else 0
            return lines >= LISTED

        # rqt_topic adds the topics its participant discovers, refreshing once a second
        _poll(graph, listed, topic, every=2.0)
    finally:
        topic.interrupt(timeout=60.0)
        topic.kill()
    assert lines >= LISTED, f'{lines} topics listed\n' + topic.output()[-3000:]

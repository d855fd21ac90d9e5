"""
The Foxglove live view, seen by a real WebSocket client connected to a running CALL graph.

`call_run --foxglove` starts the simulator, two CALL vehicles (one container) and the live
view; the client (PyPI `websockets`, Foxglove WebSocket protocol) checks the advertised
channels and subscribes to all of them, and each must deliver a message.
"""
import asyncio
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

from call_bringup.foxglove_live import layout, live_topics
import pytest
import websockets

ROLES = ['hero0', 'hero1']
STARTUP_S = 180.0       # the nodes load torch and the checkpoint (slow on a loaded CI machine)
DELIVERY_S = 10.0       # once the graph is live, every channel delivers within this
MESSAGE_DATA = 0x01     # binary opcode of the Foxglove WebSocket protocol
SUBPROTOCOLS = ['foxglove.sdk.v1', 'foxglove.websocket.v1']   # current, older servers


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


async def watch(port: int, process: subprocess.Popen) -> tuple[dict, dict, float]:
    """Subscribe to every channel; return the channels, first-message times, live time."""
    deadline = time.monotonic() + STARTUP_S
    while True:
        assert process.poll() is None, 'call_run exited before the live view came up'
        try:
            connection = await websockets.connect(f'ws://127.0.0.1:{port}',
                                                  subprotocols=SUBPROTOCOLS, max_size=None)
            break
        except OSError:
            assert time.monotonic() < deadline, 'no Foxglove server on the port'
            await asyncio.sleep(0.5)
    channels, first, live = {}, {}, None
    async with connection:
        while time.monotonic() < deadline:
            timeout = deadline - time.monotonic()
            if live is not None:
                timeout = min(timeout, live + DELIVERY_S - time.monotonic())
            if timeout <= 0:
                break
            try:
                frame = await asyncio.wait_for(connection.recv(), timeout)
            except asyncio.TimeoutError:
                break
            if isinstance(frame, str):
                message = json.loads(frame)
                if message.get('op') == 'advertise':
                    fresh = [c for c in message['channels'] if c['id'] not in channels]
                    channels.update({c['id']: c for c in message['channels']})
                    await connection.send(json.dumps({'op': 'subscribe', 'subscriptions': [
                        {'id': c['id'], 'channelId': c['id']} for c in fresh]}))
                continue
            if frame[0] != MESSAGE_DATA:
                continue
            subscription, = struct.unpack_from('<I', frame, 1)
            topic = channels[subscription]['topic']
            first.setdefault(topic, time.monotonic())
            if live is None and topic.endswith('/comm_stats'):
                live = time.monotonic()           # a vehicle's pipeline runs: the graph is up
            if len(first) == len(channels) == len(live_topics(ROLES)):
                break
    return channels, first, live


def test_live_view_serves_every_channel(tmp_path):
    port = free_port()
    command = [sys.executable, '-m', 'call_bringup.run', '--num-vehicles', str(len(ROLES)),
               '--compose', '--vehicles-per-process', str(len(ROLES)), '--foxglove',
               '--foxglove-port', str(port), '--scenario-set', 'num_background=10',
               '--keys-dir', str(tmp_path / 'keys'), '--c', '0']
    process = subprocess.Popen(command, stdout=open(tmp_path / 'run.log', 'w'),
                               stderr=subprocess.STDOUT, start_new_session=True,
                               env=dict(os.environ, PYTHONUNBUFFERED='1'))
    try:
        channels, first, live = asyncio.run(watch(port, process))
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    expected = live_topics(ROLES)
    advertised = {c['topic']: c for c in channels.values()}
    assert set(advertised) == set(expected), (tmp_path / 'run.log').read_text()[-3000:]
    for topic, kind in expected.items():
        assert advertised[topic]['schemaName'] == kind
        assert advertised[topic]['encoding'] == 'cdr'
        assert advertised[topic]['schemaEncoding'] == 'ros2msg'
    assert live is not None, (tmp_path / 'run.log').read_text()[-3000:]
    late = {t: round(first[t] - live, 1) if t in first else None for t in expected
            if t not in first or first[t] > live + DELIVERY_S}
    assert not late, f'channels without a message within {DELIVERY_S} s of the graph being ' \
        f'live: {late}'


def test_shipped_layout_opens_the_live_topics():
    """The layout file in config/ is the one `layout()` makes for the demo's four vehicles."""
    path = os.path.join(os.path.dirname(__file__), '..', 'config', 'foxglove_layout.json')
    with open(path, encoding='utf-8') as stream:
        shipped = json.load(stream)
    assert shipped == layout([f'hero{i}' for i in range(4)])
    opened = json.dumps(shipped)
    for topic in live_topics([f'hero{i}' for i in range(4)]):
        if not topic.endswith('comm_stats'):
            assert f'"{topic}"' in opened


def test_scene_shows_vehicles_ranges_and_links():
    """One step's MarkerArray: both CALL vehicles, a range circle each, the accepted link."""
    from types import SimpleNamespace

    from builtin_interfaces.msg import Time
    from call_bringup.foxglove_live import scene_markers
    from call_msgs.msg import CommStats
    from geometry_msgs.msg import Pose
    import numpy as np
    from visualization_msgs.msg import Marker

    def pose(x: float) -> Pose:
        out = Pose()
        out.position.x, out.orientation.w = x, 1.0
        return out
    poses = {'hero0': pose(0.0), 'hero1': pose(30.0)}
    comm = {'hero0': CommStats(vehicle_id='hero0', comm_range=40.0, neighbours=['hero1'],
                               prediction_error=20.0, threshold=15.0),
            'hero1': CommStats(vehicle_id='hero1', comm_range=20.0, neighbours=[])}
    lane = SimpleNamespace(centerline=np.array([[-50.0, 0.0], [50.0, 0.0]]), width=3.5)
    scene = scene_markers(Time(sec=1), ROLES, poses, {}, comm, [lane])
    by_ns: dict = {}
    for marker in scene.markers:
        by_ns.setdefault(marker.ns, []).append(marker)
    assert scene.markers[0].action == Marker.DELETEALL
    assert len(by_ns['call_vehicles']) == 2 and len(by_ns['ranges']) == 2
    circle = by_ns['ranges'][0]
    assert max(p.x for p in circle.points) == pytest.approx(40.0, abs=0.5)
    link, = by_ns['v2v_links']
    assert [(p.x, p.y) for p in link.points] == [(30.0, 0.0), (0.0, 0.0)]  # hero1 -> hero0
    assert 'E=20 c=15' in by_ns['labels'][0].text
    assert len(by_ns['road']) == 2                                    # the lane's two edges

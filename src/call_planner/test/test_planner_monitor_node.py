"""
The planner node's TTC safety monitor over real DDS, with a tiny random checkpoint.

A harness plays simulator, perception and world model: the ego drives +x at 8 m/s (odometry)
towards a standing vehicle drawn by call_perception's rasteriser into the BEV, either as seen
or only as shared, or not drawn at all but stated by a neighbour's message (comm's
`shared_info`: pose, speed, intention). Whatever the random planner picks, the monitor must
command the emergency
deceleration, tell the world model the nearest discrete action, and say why in /diagnostics.
A BEV that stops coming, or odometry that turns non-finite, must end in a controlled stop
with the reason.
"""

from call_msgs.msg import NeighbourLatent, SharedInformation
from call_perception.bev_raster import BevConfig, BevRasterizer
from call_perception.road_map import RoadMap
from call_planner.ttc_monitor import MonitorConfig
from call_sim.types import VehicleState
from call_vehicle.vehicle_control import ControlModel
from diagnostic_msgs.msg import DiagnosticStatus
import numpy as np
import pytest
from sensor_msgs.msg import Image
from test_planner_node import (_is_stop, _seconds, _stamp, _stop_reasons, Harness, ROLE,
                               run_planner_harness)

DEADLINE_SIM = 0.3
SPEED = 8.0


class MonitorHarness(Harness):
    """Harness whose ego moves and whose perception publishes BEVs with one other vehicle."""

    def __init__(self, deter: int):
        super().__init__(deter)
        self.bev_pub = self.create_publisher(Image, f'/{ROLE}/bev', 10)
        self.shared_pub = self.create_publisher(SharedInformation, f'/{ROLE}/shared_info', 10)
        self.raster = BevRasterizer(BevConfig(), RoadMap.empty())
        self.channel = 'seen'
        self.other_x = None        # the standing vehicle's x (None: none)
        self.ego_x = 10.0

    def tick(self, latent=True, odometry=True, valid=True, h=None, bev=True,
             odometry_nan=False) -> None:
        """One step: clock, odometry, BEV, then (as in the real graph) the latent state."""
        self.advance_clock()
        self.ego_x += SPEED * 0.1
        if odometry:
            self.publish_odometry(float('nan') if odometry_nan else self.ego_x, 5.0, SPEED)
        if bev:
            self.publish_bev()
        self.publish_shared()
        if latent:
            self.spin_for(0.05)
            self.publish_latent(valid, h)

    def publish_shared(self) -> None:
        """Comm's shared information of the step before, as it comes before this latent."""
        msg = SharedInformation()
        msg.header.stamp = _stamp(round(self.sim_time - 0.1, 3))
        msg.header.frame_id = 'map'
        msg.comm_range = 100.0
        if self.channel == 'message' and self.other_x is not None:
            n = NeighbourLatent(sender_id='hero1', x=float(self.other_x), y=5.0, yaw=0.0,
                                speed=0.0, distance=float(self.other_x - self.ego_x))
            n.stamp = _stamp(round(self.sim_time - 0.2, 3))
            n.intention_xy = [float(self.other_x), 5.0] * 5      # standing: where it is
            msg.neighbours.append(n)
        self.shared_pub.publish(msg)

    def publish_bev(self) -> None:
        ego = VehicleState(1, ROLE, self.ego_x, 5.0, 0.0, SPEED, 4.8, 2.0, 0.0)
        others = [] if self.other_x is None else [
            VehicleState(2, 'hero1', self.other_x, 5.0, 0.0, 0.0, 4.8, 2.0, 0.0)]
        pixels = self.raster.render(ego, others if self.channel == 'seen' else [],
                                    others if self.channel == 'shared' else [])
        pixels = np.ascontiguousarray(pixels.transpose(1, 2, 0))
        msg = Image(height=pixels.shape[0], width=pixels.shape[1],
                    encoding=f'8UC{pixels.shape[2]}', step=pixels.shape[1] * pixels.shape[2])
        msg.header.stamp = _stamp(self.sim_time)
        msg.data = pixels.tobytes()
        self.bev_pub.publish(msg)


@pytest.fixture(scope='module')
def harness(tmp_path_factory):
    yield from run_planner_harness(tmp_path_factory, MonitorHarness,
                                   {'deadline_sim': DEADLINE_SIM, 'K': 3})


def _drive_until(harness, predicate, ticks=80):
    for _ in range(ticks):
        harness.tick()
        harness.wait_for_answer()
        if predicate():
            return True
    harness.spin_for(0.5)       # what the last step published after its action
    return predicate()


def _warnings(harness):
    return [s for s in harness.diagnostics if s.level == DiagnosticStatus.WARN]


@pytest.mark.parametrize('channel', ['seen', 'shared', 'message'])
def test_vehicle_ahead_seen_or_only_shared_gets_the_emergency_deceleration(harness, channel):
    harness.other_x = None
    harness.channel = channel
    assert _drive_until(harness, lambda: harness.actions, ticks=200), 'planner never answered'
    harness.clear()
    harness.other_x = harness.ego_x + 30.0           # standing, 30 m ahead in the ego's lane
    assert _drive_until(harness, lambda: any('emergency' in s.message
                                             for s in _warnings(harness))), [
        s.message for s in harness.diagnostics]
    warning = next(s for s in _warnings(harness) if 'emergency' in s.message)
    assert f'{"shared" if channel == "message" else channel} vehicle' in warning.message
    values = {kv.key: kv.value for kv in warning.values}
    assert int(values['overrides_emergency']) >= 1
    assert float(values['learned_share']) < 1.0
    # an emergency step's command realises -6 m/s^2 (no discrete action brakes that hard)
    # with the planner's steer; the world model hears the nearest discrete action (index of
    # -2 m/s^2) and the accel field carries the real one
    decel = MonitorConfig().emergency_decel
    model = ControlModel()
    overridden = [c for c in harness.controls if c.throttle == 0.0 and c.brake == pytest.approx(
        model.to_control(-decel, c.steer, SPEED).brake, abs=1e-3)]
    assert overridden
    stamps = {_seconds(c.header.stamp) for c in overridden}
    heard = [a for a in harness.actions if _seconds(a.header.stamp) in stamps]
    assert heard and all(a.index // 5 == 0 and a.accel == pytest.approx(-decel) for a in heard)
    harness.other_x = None
    for _ in range(20):                               # hold_time passes, planning resumes
        harness.tick()
        harness.wait_for_answer()


@pytest.mark.parametrize('tick, reason', [
    ({'bev': False}, 'bev: stale'),                   # perception went silent
    ({'odometry_nan': True}, 'odometry: stale'),      # non-finite odometry is dropped
])
def test_stale_or_non_finite_input_gives_a_controlled_stop_with_its_reason(
        harness, tick, reason):
    harness.other_x = None
    assert _drive_until(harness, lambda: harness.actions, ticks=200)
    harness.clear()
    for _ in range(round(DEADLINE_SIM / 0.1) + 3):
        harness.tick(**tick)
        harness.spin_for(0.2)
    assert harness.spin_until(lambda: any(reason in r for r in _stop_reasons(harness))), \
        _stop_reasons(harness)
    assert any(_is_stop(c) for c in harness.controls)

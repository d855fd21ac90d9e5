"""Planner commands are valid bridge controls; metrics reuse call_sim.measures."""
import math

from call_carla.control_conversion import command_for_action, is_valid, message_fields
from call_carla.metrics import EpisodeMetrics
from call_vehicle.actions import ActionSet
from call_vehicle.vehicle_control import VehicleControl
from carla_msgs.msg import CarlaEgoVehicleControl
import numpy as np
import pytest

CARLA_MISSING = ('the carla client (PyPI carla==0.9.16, requirements.txt) is not installed; '
                 'scripts/setup.sh installs it')


def test_every_action_is_a_valid_carla_control():
    carla = pytest.importorskip('carla', reason=CARLA_MISSING)
    actions = ActionSet()
    for index in range(len(actions)):
        for speed in (0.0, 2.0, 5.0, 15.0, 30.0, 45.0):
            control = command_for_action(index, speed, actions)
            assert is_valid(control), (index, speed, control)
            msg = CarlaEgoVehicleControl(**message_fields(control))  # real message type
            assert 0.0 <= msg.throttle <= 1.0 and 0.0 <= msg.brake <= 1.0
            assert msg.steer == pytest.approx(actions.action(index)[1])
            native = carla.VehicleControl(throttle=msg.throttle, steer=msg.steer,
                                          brake=msg.brake)
            assert native.throttle == pytest.approx(msg.throttle, abs=1e-6)


def test_braking_action_brakes_and_accelerating_action_throttles():
    actions = ActionSet()
    brake = command_for_action(actions.index(-2.0, 0.0), 10.0, actions)
    throttle = command_for_action(actions.index(2.0, 0.0), 10.0, actions)
    assert brake.brake > 0.0 and brake.throttle == 0.0
    assert throttle.throttle > 0.0 and throttle.brake == 0.0


@pytest.mark.parametrize('control', [
    VehicleControl(throttle=1.5), VehicleControl(steer=-1.2), VehicleControl(brake=math.nan),
    VehicleControl(throttle=0.5, brake=0.5)])
def test_invalid_controls_are_refused(control):
    assert not is_valid(control)
    with pytest.raises(ValueError):
        message_fields(control)


def test_metrics_from_measures():
    metrics = EpisodeMetrics(goal_radius_m=2.0, ttc_cap_s=10.0)
    ego = np.array([0.0, 0.0, 0.0, 10.0, 4.8, 2.0])
    leader = np.array([[24.8, 0.0, 0.0, 5.0, 4.8, 2.0]])  # gap 20 m, closing 5 m/s
    step = metrics.step(ego, leader)
    assert step['ttc'] == pytest.approx(4.0) and step['collision'] == 0.0
    metrics.step(ego, np.array([[3.0, 0.5, 0.0, 0.0, 4.8, 2.0]]))  # boxes overlap
    metrics.step(np.array([50.0, 0.0, 0.0, 10.0, 4.8, 2.0]), np.zeros((0, 6)),
                 goal=np.array([51.0, 0.0]))
    summary = metrics.summary()
    assert summary['steps'] == 3
    assert summary['collision_rate_pct'] == pytest.approx(100.0 / 3.0)
    assert summary['average_ttc_s'] == pytest.approx((4.0 + 0.0 + 10.0) / 3.0)
    assert summary['success'] == 0.0  # goal reached, but it collided on the way
    clean = EpisodeMetrics()
    clean.step(ego, np.zeros((0, 6)), goal=np.array([1.0, 0.0]))
    assert clean.summary()['success'] == 1.0
    event = EpisodeMetrics()
    event.step(ego, np.zeros((0, 6)), collision_event=True)
    assert event.summary()['collision_rate_pct'] == 100.0

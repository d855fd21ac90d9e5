"""Control mapping and intention waypoints against call_vehicle's models."""
from call_planner.control_output import command_for_action, stop_command
from call_vehicle.actions import ActionSet
from call_vehicle.intention import intention_waypoints
from call_vehicle.vehicle_control import ControlModel
from call_vehicle.vehicle_model import BicycleModel
import numpy as np
import pytest

MODEL = ControlModel()


@pytest.mark.parametrize('index', range(15))
@pytest.mark.parametrize('speed', [0.5, 8.0, 15.0])
def test_every_action_maps_to_a_valid_carla_control_that_realises_it(index, speed):
    accel, steer = ActionSet().action(index)
    control = command_for_action(accel, steer, speed, MODEL)
    assert 0.0 <= control.throttle <= 1.0 and 0.0 <= control.brake <= 1.0
    assert control.throttle == 0.0 or control.brake == 0.0
    assert control.steer == steer
    realised, realised_steer = MODEL.to_accel(control, speed)
    assert realised == pytest.approx(accel, abs=1e-9)
    assert realised_steer == steer


def test_accelerating_uses_throttle_and_braking_uses_brake():
    assert command_for_action(2.0, 0.0, 10.0, MODEL).throttle > 0.0
    assert command_for_action(-2.0, 0.0, 10.0, MODEL).brake > 0.0


def test_stop_command_brakes_at_the_comfortable_deceleration_with_straight_wheels():
    control = stop_command(12.0, 3.0, MODEL)
    assert control.steer == 0.0 and control.throttle == 0.0
    assert MODEL.to_accel(control, 12.0)[0] == pytest.approx(-3.0)
    held = stop_command(0.0, 3.0, MODEL)
    assert held.brake == pytest.approx(3.0 / MODEL.max_brake_decel)
    with pytest.raises(ValueError):
        stop_command(5.0, 0.0, MODEL)


def test_intention_follows_the_planned_actions_in_the_map_frame():
    model = BicycleModel()
    straight = intention_waypoints(model, (10.0, -5.0, np.pi / 2), 10.0, [(0.0, 0.0)] * 5)
    assert straight.shape == (5, 2)
    np.testing.assert_allclose(straight[:, 0], 10.0, atol=1e-9)
    np.testing.assert_allclose(straight[:, 1], -5.0 + np.arange(1, 6) * 1.0, atol=1e-9)
    left = intention_waypoints(model, (0.0, 0.0, 0.0), 10.0, [(0.0, 0.6)] * 5)
    right = intention_waypoints(model, (0.0, 0.0, 0.0), 10.0, [(0.0, -0.6)] * 5)
    assert left[-1, 1] > 0.5 and right[-1, 1] < -0.5
    cruise = intention_waypoints(model, (0.0, 0.0, 0.0), 10.0, [(0.0, 0.0)] * 5)
    slower = intention_waypoints(model, (0.0, 0.0, 0.0), 10.0, [(-2.0, 0.0)] * 5)
    assert cruise[-1, 0] == pytest.approx(5.0)
    assert slower[-1, 0] < cruise[-1, 0] - 0.1

"""The driver rule: actions to controls through the control model, intention by rollout."""
from call_vehicle.actions import ActionSet
from call_vehicle.driver import Driver
from call_vehicle.intention import intention_waypoints
from call_vehicle.vehicle_control import ControlModel
from call_vehicle.vehicle_model import BicycleModel
import numpy as np
import pytest

MODEL = ControlModel()
DRIVER = Driver(control_model=MODEL)


@pytest.mark.parametrize('index', range(15))
@pytest.mark.parametrize('speed', [0.5, 8.0, 15.0])
def test_every_action_maps_to_a_valid_carla_control_that_realises_it(index, speed):
    accel, steer = ActionSet().action(index)
    command = DRIVER.drive(index, None, (0.0, 0.0, 0.0), speed)
    control = command.control
    assert command.action == index and command.waypoints is None
    assert 0.0 <= control.throttle <= 1.0 and 0.0 <= control.brake <= 1.0
    assert control.throttle == 0.0 or control.brake == 0.0
    assert control.steer == steer
    realised, realised_steer = MODEL.to_accel(control, speed)
    assert realised == pytest.approx(accel, abs=1e-9)
    assert realised_steer == steer


def test_accelerating_uses_throttle_and_braking_uses_brake():
    actions = ActionSet()
    pose = (0.0, 0.0, 0.0)
    assert DRIVER.drive(actions.index(2.0, 0.0), None, pose, 10.0).control.throttle > 0.0
    assert DRIVER.drive(actions.index(-2.0, 0.0), None, pose, 10.0).control.brake > 0.0


def test_stop_brakes_at_the_comfortable_deceleration_with_straight_wheels():
    stop = DRIVER.stop((0.0, 0.0, 0.0), 12.0)
    control = stop.control
    assert control.steer == 0.0 and control.throttle == 0.0
    assert MODEL.to_accel(control, 12.0)[0] == pytest.approx(-3.0)
    assert ActionSet().action(stop.action) == (-2.0, 0.0)    # nearest: hardest brake, straight
    np.testing.assert_allclose(stop.waypoints[:, 1], 0.0, atol=1e-12)
    assert np.all(np.diff(stop.waypoints[:, 0]) > 0)
    held = DRIVER.stop(None, 0.0)
    assert held.control.brake == pytest.approx(3.0 / MODEL.max_brake_decel)
    assert held.waypoints is None
    with pytest.raises(ValueError):
        Driver(comfortable_decel=0.0)


def test_a_renewed_plan_declares_its_rollout_and_a_kept_one_nothing():
    planned = [ActionSet().index(0.0, 0.6)] * 5
    command = DRIVER.drive(planned[0], planned, (1.0, 2.0, 0.3), 8.0)
    expected = intention_waypoints(BicycleModel(), (1.0, 2.0, 0.3), 8.0, [(0.0, 0.6)] * 5)
    np.testing.assert_array_equal(command.waypoints, expected)


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

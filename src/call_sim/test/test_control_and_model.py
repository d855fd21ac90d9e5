"""Action set, CARLA control mapping and bicycle model (incl. a lane change at typical speeds)."""
import math

from call_sim.config import load_yaml
from call_sim.road_network import RoadNetwork
from call_vehicle.actions import ActionSet
from call_vehicle.vehicle_control import ControlModel, sanitize, VehicleControl
from call_vehicle.vehicle_model import BicycleModel, BicycleState
import numpy as np
import pytest

VEHICLE = load_yaml('vehicle.yaml')


def test_action_index_layout_matches_developers_contract():
    actions = ActionSet()
    assert len(actions) == 15
    assert actions.action(0) == (-2.0, -0.6)
    assert actions.action(7) == (0.0, 0.0)
    assert actions.action(1 * 5 + 3) == (0.0, 0.2)
    assert actions.action(14) == (2.0, 0.6)
    for index in range(len(actions)):
        assert actions.index(*actions.action(index)) == index
    with pytest.raises(IndexError):
        actions.action(15)


def test_action_set_is_configurable_and_validated():
    actions = ActionSet.from_config({'steers': [-0.1, 0.0, 0.1]})
    assert len(actions) == 9 and actions.action(5) == (0.0, 0.1)
    with pytest.raises(ValueError):
        ActionSet(steers=(2.0,))


@pytest.mark.parametrize('speed', [0.0, 5.0, 10.0, 20.0])
def test_control_mapping_round_trip_for_every_action(speed):
    model = ControlModel.from_config(VEHICLE['control'])
    for accel, steer in (ActionSet().action(i) for i in range(15)):
        control = model.to_control(accel, steer, speed)
        assert 0.0 <= control.throttle <= 1.0 and 0.0 <= control.brake <= 1.0
        assert control.throttle == 0.0 or control.brake == 0.0
        back_accel, back_steer = model.to_accel(control, speed)
        assert back_accel == pytest.approx(accel, abs=1e-9)
        assert back_steer == steer


def test_control_mapping_hand_values():
    model = ControlModel(max_throttle_accel=3.0, max_brake_decel=8.0,
                         rolling_resistance=0.05, drag_coefficient=0.0005)
    # at 10 m/s resistance = 0.05 + 0.0005 * 100 = 0.1 m/s^2
    assert model.to_control(2.0, 0.0, 10.0).throttle == pytest.approx(2.1 / 3.0)
    assert model.to_control(-2.0, 0.0, 10.0).brake == pytest.approx(1.9 / 8.0)
    assert model.to_control(0.0, 0.0, 10.0).throttle == pytest.approx(0.1 / 3.0)
    assert model.to_control(50.0, 3.0, 0.0) == VehicleControl(throttle=1.0, steer=1.0)


def test_sanitize_rejects_non_finite_and_clamps_out_of_range():
    control, reasons = sanitize(VehicleControl(throttle=float('nan')))
    assert control is None and 'non-finite throttle' in reasons[0]
    control, reasons = sanitize(VehicleControl(throttle=1.5, steer=-3.0, brake=-0.2))
    assert control == VehicleControl(throttle=1.0, steer=-1.0, brake=0.0)
    assert len(reasons) == 3
    control, reasons = sanitize(VehicleControl(throttle=0.3, steer=0.1))
    assert control == VehicleControl(throttle=0.3, steer=0.1) and reasons == []


def test_bicycle_straight_and_turn_direction():
    model = BicycleModel(wheelbase=2.9, max_steer_angle=0.5, max_speed=20.0, dt=0.1)
    state = model.step(BicycleState(0.0, 0.0, 0.0, 10.0), 2.0, 0.0)
    assert state.speed == pytest.approx(10.2)
    assert state.x == pytest.approx(1.01) and state.y == pytest.approx(0.0)
    left = model.step(BicycleState(0.0, 0.0, 0.0, 10.0), 0.0, 0.6)
    assert left.yaw > 0.0 and left.y > 0.0
    stopped = model.step(BicycleState(0.0, 0.0, 0.0, 0.1), -2.0, 0.0)
    assert stopped.speed == 0.0
    rows = model.rollout(BicycleState(0.0, 0.0, 0.0, 5.0), [(0.0, 0.0)] * 10)
    assert rows.shape == (10, 4) and rows[-1, 0] == pytest.approx(5.0)


def _lane_change(model, speed, steer, hold):
    """Steer, hold straight, counter-steer: the discrete-action lane change."""
    actions = ([(0.0, steer)] * hold + [(0.0, 0.0)] * 12 + [(0.0, -steer)] * hold)
    rows = model.rollout(BicycleState(100.0, -8.75, 0.0, speed), actions)
    rows = np.vstack([rows, model.rollout(BicycleState(*rows[-1]), [(0.0, 0.0)] * 5)])
    return rows


@pytest.mark.parametrize('speed', [5.0, 7.5, 10.0])
def test_lane_change_with_paper_actions_stays_on_the_road(speed):
    """At 5-10 m/s the paper's steer set moves one lane (3.5 m) without leaving the road."""
    model = BicycleModel.from_config(VEHICLE['bicycle'])
    road = RoadNetwork('four_lane')
    steers = ActionSet.from_config(VEHICLE['actions']).steers
    best = None
    for steer in (s for s in steers if s > 0):
        for hold in range(1, 15):
            rows = _lane_change(model, speed, steer, hold)
            shift = rows[-1, 1] - rows[0, 1]
            if abs(shift - 3.5) < 0.6 and abs(rows[-1, 2]) < 0.05:
                best = rows
                break
        if best is not None:
            break
    assert best is not None, f'no lane change found at {speed} m/s'
    assert road.locate(best[-1, 0], best[-1, 1]).lane_id == 'main_2'
    assert road.road_of(best[-1, 0], best[-1, 1]) == 'main'      # the lane's road (edge)
    assert max(road.locate(x, y).edge_excess for x, y in best[:, :2]) <= 0.0
    assert np.abs(best[:, 2]).max() < math.radians(30)

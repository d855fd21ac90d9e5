"""The override diagnosis tells a velocity the real vehicle has from one it does not."""
import math

from call_experiments.override_diagnosis import classify
from call_planner.ttc_monitor import Track
from call_sim.types import VehicleState


def vehicle(x, y, yaw, speed, actor_id=1):
    return VehicleState(actor_id, '', x, y, yaw, speed, 4.5, 1.9, 0.0)


EGO = vehicle(0.0, 0.0, 0.0, 8.0, actor_id=0)


def track(x, y, vx, vy, shared_only=False):
    return Track(x, y, math.atan2(vy, vx), 4.5, 1.9, vx, vy, shared_only)


def test_a_standing_vehicle_tracked_as_coming_at_the_ego_is_a_phantom():
    verdict = classify(track(20.0, 0.5, -5.0, 0.0, shared_only=True), EGO,
                       [vehicle(20.3, 0.0, 0.0, 0.0)])
    assert verdict['kind'] == 'oncoming' and verdict['matched']
    assert verdict['phantom'] and verdict['shared_only']
    assert verdict['ahead_m'] == 20.0 and verdict['left_m'] == 0.5


def test_a_vehicle_that_does_come_at_the_ego_is_no_phantom():
    verdict = classify(track(20.0, 3.5, -5.0, 0.0), EGO, [vehicle(20.3, 3.5, math.pi, 5.5)])
    assert verdict['kind'] == 'oncoming' and not verdict['phantom']


def test_slow_tracks_and_tracks_without_a_vehicle_are_not_judged():
    slow = classify(track(20.0, 0.0, -1.0, 0.0), EGO, [vehicle(20.0, 0.0, 0.0, 0.0)])
    assert slow['kind'] == 'oncoming' and not slow['phantom']
    alone = classify(track(20.0, 0.0, -5.0, 0.0), EGO, [vehicle(30.0, 0.0, 0.0, 0.0)])
    assert not alone['matched'] and not alone['phantom']


def test_kinds_follow_the_estimated_velocity():
    others = [vehicle(15.0, 5.0, 0.0, 0.0)]
    assert classify(track(15.0, 5.0, 0.0, -6.0), EGO, others)['kind'] == 'crossing'
    assert classify(track(15.0, 5.0, 6.0, 0.5), EGO, others)['kind'] == 'following'
    assert classify(track(15.0, 5.0, 0.1, 0.0), EGO, others)['kind'] == 'standing'

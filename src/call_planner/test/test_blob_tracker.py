"""BlobTracker: one-to-one gated tracks and fitted velocities (pure numpy, no ROS)."""
from call_planner.blob_tracker import BlobTracker
import numpy as np


def _tracker(**kwargs):
    return BlobTracker(**{'gate': 3.0, 'window': 0.5, 'shared_window': 1.5, 'coast': 0.3,
                          **kwargs})


def test_a_new_blob_has_no_velocity_and_a_second_frame_gives_one():
    tracker = _tracker()
    velocity, has = tracker.update(0.0, [[10.0, 0.0]], [False])
    assert not has[0] and not velocity.any()
    velocity, has = tracker.update(0.1, [[10.8, 0.0]], [False])
    assert has[0]
    np.testing.assert_allclose(velocity[0], [8.0, 0.0], atol=1e-9)


def test_a_car_at_constant_velocity_gets_its_velocity_exactly():
    tracker = _tracker()
    for k in range(12):
        velocity, has = tracker.update(0.1 * k, [[5.0 + 0.8 * k, -1.0 + 0.3 * k]], [False])
    assert has[0]
    np.testing.assert_allclose(velocity[0], [8.0, 3.0], atol=1e-9)


def test_two_blobs_keep_their_own_tracks():
    # two cars 2.5 m apart, both within the gate of either: the nearest pair goes first, so
    # each keeps its own history and neither borrows the other's past centre
    tracker = _tracker()
    for k in range(6):
        velocity, has = tracker.update(0.1 * k, [[0.0, 0.0], [0.0, 2.5 + 0.5 * k]],
                                       [False, False])
    assert has.all()
    np.testing.assert_allclose(velocity, [[0.0, 0.0], [0.0, 5.0]], atol=1e-9)


def test_a_vehicle_speeding_up_is_followed_by_its_prediction_beyond_the_gate():
    # 9 m/s, then 12 m/s: 1.2 m from where it was, more than the gate, but 0.3 m from where
    # its velocity put it
    tracker = _tracker(gate=1.0)
    tracker.update(0.0, [[0.0, 0.0]], [False])
    tracker.update(0.1, [[0.9, 0.0]], [False])
    velocity, has = tracker.update(0.2, [[2.1, 0.0]], [False])
    assert has[0]
    np.testing.assert_allclose(velocity[0], [10.5, 0.0], atol=1e-9)


def test_a_track_coasts_over_a_missed_frame_then_ends():
    tracker = _tracker(coast=0.3)
    tracker.update(0.0, [[0.0, 0.0]], [True])
    tracker.update(0.1, [[0.5, 0.0]], [True])
    velocity, has = tracker.update(0.3, [[1.5, 0.0]], [True])   # 0.2 s missing: coasted
    assert has[0]
    np.testing.assert_allclose(velocity[0], [5.0, 0.0], atol=1e-9)
    _, has = tracker.update(0.8, [[4.0, 0.0]], [True])          # 0.5 s missing: a new one
    assert not has[0]


def test_a_decoded_blob_that_jumps_about_a_standing_vehicle_fits_near_standing():
    # a reconstruction's centre, 1 m either side of where the vehicle stands, frame by frame:
    # two centres 0.5 s apart read up to 4 m/s; the fit over 1.5 s reads far less
    jumps = [1.0, -1.0, 0.6, -0.8, 1.0, -0.4, 0.9, -1.0, 0.2, -0.9, 1.0, -0.6, 0.8, -1.0,
             0.5, -0.7]
    seen, shared = _tracker(), _tracker()
    for k, dx in enumerate(jumps):
        as_seen, _ = seen.update(0.1 * k, [[20.0 + dx, 0.0]], [False])
        as_shared, _ = shared.update(0.1 * k, [[20.0 + dx, 0.0]], [True])
    assert abs(as_seen[0, 0]) > 1.5          # the 0.5 s baseline of a seen blob
    assert abs(as_shared[0, 0]) < 0.6

"""StampedPoses: a step runs with the pose of its own stamp or not at all."""
from call_comm.stamped_poses import StampedPoses
import pytest

A, B, C = (1.0, 0.0, 0.0, 5.0), (2.0, 0.0, 0.0, 5.0), (900.0, 0.0, 0.0, 0.0)


def test_pose_already_known_is_used_at_once():
    poses = StampedPoses()
    poses.add(100, A)
    poses.add(200, B)
    assert poses.match(100, 'old') == [('old', A)]
    assert poses.match(200, 'new') == [('new', B)]
    assert poses.skipped == 0


def test_state_that_overtakes_its_odometry_waits_for_it():
    poses = StampedPoses()
    poses.add(100, A)
    assert poses.match(200, 'state') == []
    assert poses.add(200, C) == [('state', C)]          # e.g. a respawn teleport
    assert poses.add(300, A) == []                      # nothing waits any more


def test_odometry_of_t_after_the_state_of_t_plus_1_pairs_both_with_their_own_poses():
    poses = StampedPoses()
    poses.add(100, A)
    assert poses.match(200, 't') == []
    assert poses.match(300, 't+1') == []            # must not release 't' with pose A
    assert poses.add(200, C) == [('t', C)]
    assert poses.add(300, B) == [('t+1', B)]
    assert poses.skipped == 0


def test_a_state_whose_odometry_was_lost_is_skipped_never_given_another_pose():
    poses = StampedPoses()
    poses.add(100, A)
    assert poses.match(200, 'lost odometry') == []
    assert poses.match(300, 'next') == []
    assert poses.add(300, C) == [('next', C)]       # 200 can no longer arrive
    assert poses.skipped == 1


def test_a_state_older_than_the_kept_poses_is_skipped():
    poses = StampedPoses(capacity=2)
    for stamp, pose in ((100, A), (200, B), (300, C)):
        poses.add(stamp, pose)
    assert poses.match(100, 'late') == []
    assert poses.match(150, 'never had odometry') == []
    assert poses.skipped == 2


def test_waiting_items_are_bounded_and_a_reset_drops_the_old_timeline():
    poses = StampedPoses(max_waiting=2)
    poses.add(10, A)
    for stamp in (100, 200, 300):
        assert poses.match(stamp, stamp) == []
    assert poses.skipped == 1                       # 100 evicted
    assert poses.add(5, B) == []                    # time went back: 200 and 300 are gone
    assert poses.skipped == 3
    assert poses.add(200, C) == []
    with pytest.raises(ValueError):
        StampedPoses(capacity=0)

"""StampedPoses: a step runs with the pose of its own stamp, never waits more than a step."""
from call_comm.stamped_poses import StampedPoses
import pytest

A, B, C = (1.0, 0.0, 0.0, 5.0), (2.0, 0.0, 0.0, 5.0), (900.0, 0.0, 0.0, 0.0)


def test_pose_already_known_is_used_at_once():
    poses = StampedPoses()
    poses.add(100, A)
    poses.add(200, B)
    assert poses.match(100, 'old') == [('old', A)]
    assert poses.match(200, 'new') == [('new', B)]


def test_state_that_overtakes_its_odometry_waits_for_it():
    poses = StampedPoses()
    poses.add(100, A)
    assert poses.match(200, 'state') == []
    assert poses.add(200, C) == ('state', C)          # e.g. a respawn teleport
    assert poses.add(300, A) is None                    # nothing waits any more


def test_a_waiting_state_is_released_by_the_next_one_with_the_newest_pose():
    poses = StampedPoses()
    poses.add(100, A)
    assert poses.match(200, 'lost odometry') == []
    poses.add(150, B)                   # not the stamp it waits for
    assert poses.match(300, 'next') == [('lost odometry', B)]
    assert poses.add(300, C) == ('next', C)


def test_a_state_older_than_the_kept_poses_takes_the_newest():
    poses = StampedPoses(capacity=2)
    for stamp, pose in ((100, A), (200, B), (300, C)):
        poses.add(stamp, pose)
    assert poses.match(100, 'late') == [('late', C)]


def test_no_pose_ever_gives_none_and_capacity_is_checked():
    poses = StampedPoses()
    assert poses.latest is None
    assert poses.match(100, 'first') == []
    assert poses.match(200, 'second') == [('first', None)]
    with pytest.raises(ValueError):
        StampedPoses(capacity=0)

"""Collision, TTC (hand-computed), jerk, and every reward term."""
import math

from call_sim import reward
from call_sim.config import load_yaml
from call_sim.measures import (boxes_overlap, collisions, jerk, time_to_collision,
                               ttc_partners)
import numpy as np
import pytest


def row(x, y, yaw=0.0, speed=0.0, length=4.8, width=2.0):
    return np.array([x, y, yaw, speed, length, width], dtype=float)


def test_oriented_box_overlap():
    assert boxes_overlap(row(0, 0), row(4.0, 0))
    assert not boxes_overlap(row(0, 0), row(5.0, 0))
    assert not boxes_overlap(row(0, 0), row(0, 2.1))
    # rotated by 45 deg: corner reaches x = 2.4 + (2.4 + 1.0) * cos45 ~ 4.8 at y = 0
    assert boxes_overlap(row(0, 0), row(4.5, 0, math.pi / 4))
    assert not boxes_overlap(row(0, 0), row(6.0, 0, math.pi / 4))
    others = np.stack([row(4.0, 0), row(20, 0), row(0, 1.9)])
    assert list(collisions(row(0, 0), others)) == [0, 2]


def test_ttc_hand_computed():
    ego = row(0, 0, 0.0, 10.0)
    leader = row(30.0, 0.5, 0.0, 5.0)
    # gap = 30 - (4.8 + 4.8) / 2 = 25.2 m, closing = 10 - 5 = 5 m/s -> 5.04 s
    ttc, gap = time_to_collision(ego, np.stack([leader]))
    assert ttc == pytest.approx(5.04) and gap == pytest.approx(25.2)
    # a faster leader, a vehicle in the next lane and one behind that is slower never conflict
    others = np.stack([row(30.0, 0, 0, 12.0), row(10.0, 3.5, 0, 0.0), row(-20.0, 0, 0, 5.0)])
    assert time_to_collision(ego, others)[0] == math.inf
    # a faster vehicle behind closes in: gap 15.2 m at 4 m/s -> 3.8 s
    assert time_to_collision(ego, np.stack([row(-20.0, 0, 0, 14.0)]))[0] == pytest.approx(3.8)
    # head-on in the ego lane: gap 25.2 at 20 m/s
    assert time_to_collision(ego, np.stack([row(30, 0, math.pi, 10.0)]))[0] == pytest.approx(
        1.26)
    assert time_to_collision(ego, np.stack([row(4.0, 0)]))[0] == 0.0


def test_jerk():
    assert jerk(2.0, 0.0, 0.1) == pytest.approx(20.0)


TERMS = load_yaml('reward.yaml')['terms']


def test_safe_term():
    assert reward.safe_term(10.0, False, 3.0) == 0.0
    assert reward.safe_term(1.5, False, 3.0) == pytest.approx(-0.5)
    assert reward.safe_term(0.0, False, 3.0) == -1.0
    assert reward.safe_term(10.0, True, 3.0) == -1.0


def test_comfort_term():
    assert reward.comfort_term(0.0, 0.0, 10.0, 3.0) == 0.0
    assert reward.comfort_term(5.0, 1.5, 10.0, 3.0) == pytest.approx(-0.5)
    assert reward.comfort_term(-50.0, -9.0, 10.0, 3.0) == -1.0


def test_time_term():
    assert reward.time_term(False, 10.0) == -1.0
    assert reward.time_term(True, 10.0) == 10.0


def test_velocity_term():
    assert reward.velocity_term(8.0, 20.0, 5.0, 10.0, 5.0) == 0.0
    assert reward.velocity_term(4.0, 3.0, 5.0, 10.0, 5.0) == 0.0
    assert reward.velocity_term(7.5, 3.0, 5.0, 10.0, 5.0) == pytest.approx(-0.5)
    assert reward.velocity_term(30.0, 3.0, 5.0, 10.0, 5.0) == -1.0


def test_orientation_term():
    assert reward.orientation_term(0.1, 0.1, math.pi / 4) == 0.0
    assert reward.orientation_term(math.pi / 8, 0.0, math.pi / 4) == pytest.approx(-0.5)
    assert reward.orientation_term(math.pi - 0.01, -math.pi + 0.01, math.pi / 4) == \
        pytest.approx(-0.02 / (math.pi / 4))


def test_target_term():
    assert reward.target_term(0.0, 2.0) == 0.0
    assert reward.target_term(1.0, 2.0) == -0.5
    assert reward.target_term(9.0, 2.0) == -1.0


def test_total_reward_is_weighted_sum():
    config = load_yaml('reward.yaml')
    inputs = reward.RewardInputs(ttc=1.5, collision=False, jerk=5.0, accel=1.5, reached=False,
                                 speed=7.5, leader_gap=3.0, yaw=math.pi / 8, lane_yaw=0.0,
                                 route_distance=1.0)
    terms = reward.reward_terms(inputs, config['terms'])
    expected_terms = {'safe': -0.5, 'comfort': -0.5, 'time': -1.0, 'velocity': -0.5,
                      'orientation': -0.5, 'target': -0.5}
    assert terms == pytest.approx(expected_terms, abs=1e-5)
    w = config['weights']
    expected = -0.5 * sum(w.values()) - 0.5 * w['time']
    assert reward.total_reward(terms, w) == pytest.approx(expected, abs=1e-5)
    with pytest.raises(ValueError):
        reward.validate_reward_config({'weights': {}, 'terms': {}})


def test_ttc_partner_is_the_row_of_the_nearest_conflict():
    egos = np.stack([row(0, 0, 0.0, 10.0), row(0, 20.0, 0.0, 10.0)])
    rows = np.vstack([egos, np.stack([row(30.0, 0, 0, 5.0),      # 5.04 s
                                      row(20.0, 0, 0, 5.0),      # nearer: 3.04 s
                                      row(30.0, 20.0, 0, 12.0)])])   # faster: no conflict
    ttc, _, partner = ttc_partners(egos, rows, np.array([0, 1]))
    assert ttc[0] == pytest.approx(3.04) and list(partner) == [3, -1]
    assert ttc[1] == math.inf

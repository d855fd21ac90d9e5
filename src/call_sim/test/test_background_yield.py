"""Background drivers' speed cap for CALL vehicles in their path (pure numpy, no SUMO)."""
import math

from call_sim.background_yield import yield_speeds
import numpy as np
import pytest

CAR = (4.6, 1.9)          # background car: length, width
HERO = (4.8, 2.0)


def _caps(hero_x, hero_y, hero_yaw=0.0, speed=8.0):
    background = np.array([[0.0, 0.0, 0.0, speed, *CAR]])      # at the origin, heading +x
    heroes = np.array([[hero_x, hero_y, hero_yaw, 0.0, *HERO]])
    return yield_speeds(background, heroes, headway=1.5, standstill=1.0, decel=4.5,
                        margin=0.3)


def test_a_standing_call_vehicle_ahead_caps_the_speed_to_stop_short_of_it():
    # its rear 10 - 2.4 = 7.6 m from the centre, 5.3 m from the front; stop 1 m short
    assert _caps(10.0, 0.0)[0] == pytest.approx(math.sqrt(2.0 * 4.5 * 4.3))


def test_a_call_vehicle_across_the_lane_boundary_counts_by_its_box():
    # its centre 2.4 m to the side, turned 30 deg: a corner reaches into the corridor
    assert math.isfinite(_caps(10.0, 2.4, math.radians(30.0))[0])
    assert math.isinf(_caps(10.0, 2.4)[0])           # straight, it stays beside it


@pytest.mark.parametrize('x, y', [(10.0, 3.5), (-10.0, 0.0), (30.0, 0.0)])
def test_no_cap_for_the_next_lane_behind_or_beyond_the_corridor(x, y):
    # the corridor: 1.5 s x 8 m/s + 1 m = 13 m ahead of the front
    assert math.isinf(_caps(x, y)[0])


def test_touching_means_standing_and_nothing_to_cap_without_vehicles():
    assert _caps(4.0, 0.0)[0] == 0.0
    assert yield_speeds(np.zeros((0, 6)), np.array([[0, 0, 0, 0, *HERO]]), 1.5, 1.0, 4.5,
                        0.3).shape == (0,)

"""The driving metrics follow the conventions their module states."""
import math

from call_sim.driving_metrics import (conflicts, intervals_overlap, mean_interval,
                                      MetricConventions, override_shares, route_completion,
                                      success_rate, summarise, VehicleStep)
import pytest

INF = math.inf


def _trip(trip, ttcs, accels=None, collisions=(), overrides=None, dt=0.1):
    accels = accels or [0.0] * len(ttcs)
    overrides = overrides or [''] * len(ttcs)
    return [VehicleStep(trip, round(k * dt, 3), ttc, k in collisions, accel, override)
            for k, (ttc, accel, override) in enumerate(zip(ttcs, accels, overrides))]


def test_free_flow_steps_enter_no_ttc_figure():
    steps = _trip('a', [40.0] * 50 + [2.5, 1.8, 1.2, 2.0, 2.9] + [30.0] * 50)
    found = conflicts(steps)
    assert len(found) == 1
    assert found[0].min_ttc == pytest.approx(1.2)
    assert (found[0].start, found[0].end) == (pytest.approx(5.0), pytest.approx(5.4))
    summary = summarise(steps, ['reached'], [1.0])
    assert summary['conflict_min_ttc_mean_s'] == pytest.approx(1.2)   # not a mean of 105 steps


def test_close_runs_merge_and_far_runs_do_not():
    ttcs = [9.0] * 10 + [2.0] * 3 + [9.0] * 3 + [1.0] * 2 + [9.0] * 10 + [2.5] + [9.0] * 5
    found = conflicts(_trip('a', ttcs))
    assert [round(c.min_ttc, 3) for c in found] == [1.0, 2.5]
    assert len(conflicts(_trip('a', ttcs), MetricConventions(merge_gap=20))) == 1


def test_a_collision_is_a_conflict_with_ttc_zero_and_conflicts_stay_per_trip():
    steps = _trip('a', [9.0] * 5 + [INF], collisions={5}) + _trip('b', [2.0] * 3)
    found = conflicts(steps)
    expected = [('a', True, 0.0), ('b', False, 2.0)]
    assert [(c.trip, c.collided, c.min_ttc) for c in found] == expected


def test_first_deceleration_is_relative_to_the_conflict_start():
    ttcs = [9.0] * 30 + [2.0] * 10 + [9.0] * 10
    late = _trip('a', ttcs, accels=[0.0] * 33 + [-2.0] * 17)
    early = _trip('b', ttcs, accels=[0.0] * 18 + [-1.5] * 32)     # 1.2 s before the start
    never = _trip('c', ttcs, accels=[-0.5] * 50)
    by_trip = {c.trip: c.first_deceleration for c in conflicts(late + early + never)}
    assert by_trip['a'] == pytest.approx(0.3)
    assert by_trip['b'] == pytest.approx(-1.2)
    assert math.isnan(by_trip['c'])
    summary = summarise(late + early + never, ['reached'] * 3, [1.0] * 3)
    assert summary['conflicts_without_deceleration'] == 1
    assert summary['first_deceleration_mean_s'] == pytest.approx(-0.45)


def test_rates_completion_and_overrides():
    steps = _trip('a', [9.0] * 8 + [INF, INF], collisions={9},
                  overrides=['', '', 'comfortable', 'emergency', 'emergency'] + [''] * 5)
    shares = override_shares(steps)
    assert shares == pytest.approx({'comfortable': 0.1, 'emergency': 0.2, 'learned': 0.7})
    summary = summarise(steps, ['collision'], [0.4])
    assert summary['collision_rate'] == pytest.approx(0.1)
    assert success_rate(['reached', 'collision', 'cut_short', 'timeout']) == pytest.approx(1 / 3)
    assert route_completion(['reached', 'cut_short', 'timeout'], [1.0, 0.1, 0.5]) == \
        pytest.approx(0.75)
    with pytest.raises(ValueError):
        success_rate(['arrived'])


def test_mean_interval_and_overlap():
    mean, low, high = mean_interval([0.8, 0.9, 0.85])
    assert mean == pytest.approx(0.85)
    assert (low, high) == (pytest.approx(0.85 - 4.303 * 0.05 / math.sqrt(3)),
                           pytest.approx(0.85 + 4.303 * 0.05 / math.sqrt(3)))
    assert intervals_overlap([0.01, 0.012, 0.011], [0.03, 0.031, 0.029]) is False
    assert intervals_overlap([0.01, 0.03, 0.02], [0.025, 0.03, 0.02]) is True
    assert intervals_overlap([0.01], [0.02]) is None

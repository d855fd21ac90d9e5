"""The driving metrics follow the conventions their module states."""
import math

from call_sim.driving_metrics import (AT_FAULT_CLASSES, collision_class,
                                      conflicts, intervals_overlap, mean_interval,
                                      MetricConventions, override_shares, path_conflicts,
                                      route_completion, success_rate, summarise, VehicleStep)
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


def _seen(steps, partner, unseen_from=None, unseen_until=None):
    """Name the TTC's partner and the ego's own sensors' seen sets on the steps."""
    out = []
    for k, s in enumerate(steps):
        hidden = (unseen_from is not None and unseen_from <= k
                  and (unseen_until is None or k < unseen_until))
        out.append(VehicleStep(s.trip, s.time, s.ttc, s.collision, s.accel, s.override,
                               partner if s.ttc < INF else None,
                               frozenset({99} if hidden else {99, partner})))
    return out


def test_occluded_conflicts_are_those_whose_partner_the_ego_did_not_see_just_before():
    ttcs = [9.0] * 30 + [2.0] * 10 + [9.0] * 10       # conflict from step 30 (3.0 s)
    # hidden until the start: braked 1.5 s before it (it was told)
    hidden = _seen(_trip('a', ttcs, accels=[0.0] * 15 + [-1.5] * 35), 7, 0, 31)
    # seen for 3 s before the start: braked 0.5 s after it
    seen = _seen(_trip('b', ttcs, accels=[0.0] * 35 + [-2.0] * 15), 8, 0, 0)
    # came into view 0.5 s before the start, collided, never braked
    crash = _seen(_trip('c', ttcs[:35], collisions={34}), 9, 10, 25)
    # hidden 2 s before the start only: outside the 1 s window, not occluded
    early = _seen(_trip('d', ttcs), 10, 5, 10)
    steps = hidden + seen + crash + early
    found = {c.trip: c for c in conflicts(steps)}
    assert {t: (c.partner, c.occluded) for t, c in found.items()} == {
        'a': (7, True), 'b': (8, False), 'c': (9, True), 'd': (10, False)}
    assert found['a'].last_unseen == pytest.approx(0.0)
    assert found['c'].last_unseen == pytest.approx(-0.6)
    assert found['d'].last_unseen == pytest.approx(-2.1)
    assert math.isnan(found['b'].last_unseen)
    summary = summarise(steps, ['reached'] * 4, [1.0] * 4)
    assert summary['conflicts'] == 4
    assert summary['occluded_conflicts'] == 2
    assert summary['first_deceleration_occluded_mean_s'] == pytest.approx(-1.5)
    assert summary['first_deceleration_occluded_median_s'] == pytest.approx(-1.5)
    assert summary['occluded_conflicts_without_deceleration'] == 1
    assert summary['occluded_collisions'] == 1
    # the all-conflict figure is unchanged: mean of -1.5 and 0.5 (c and d never braked)
    assert summary['first_deceleration_mean_s'] == pytest.approx(-0.5)
    # the window is a convention: 3 s takes d in, 0 s (the start step alone) leaves c out
    wide = summarise(steps, ['reached'] * 4, [1.0] * 4, MetricConventions(occlusion_window=3.0))
    assert wide['occluded_conflicts'] == 3
    assert {c.trip for c in conflicts(steps, MetricConventions(occlusion_window=0.0))
            if c.occluded} == {'a'}
    # without visibility records no conflict is occluded
    bare = summarise(_trip('a', ttcs), ['reached'], [1.0])
    assert bare['occluded_conflicts'] == 0
    assert math.isnan(bare['first_deceleration_occluded_mean_s'])
    with pytest.raises(ValueError):
        MetricConventions(occlusion_window=6.0)


def _with_path(steps, path_ttcs, partner, unseen_until):
    """Give the steps ground-truth contact times with `partner`, unseen before a step."""
    return [VehicleStep(s.trip, s.time, s.ttc, s.collision, s.accel, s.override, s.partner,
                        frozenset({99} if k < unseen_until else {99, partner}),
                        p, partner if p < INF else None)
            for k, (s, p) in enumerate(zip(steps, path_ttcs))]


def test_a_path_conflict_stays_in_the_sample_when_an_early_ease_off_avoids_the_ttc_conflict():
    # the partner's and the ego's held motions meet from step 10 (path TTC 5.5 s falling);
    # the ego, told of it, eases off at step 12: the simulator's TTC never falls below 3 s,
    # so there is no conflict, but the path conflict keeps the encounter and its early brake
    path = [INF] * 10 + [5.5 - 0.1 * k for k in range(20)] + [INF] * 20
    told = _with_path(_trip('a', [9.0] * 50, accels=[0.0] * 12 + [-1.0] * 38), path, 7, 30)
    # without the message it brakes only when the TTC falls below 3 s (step 30, 2 s later)
    # (its held motion meets the partner's longer: it has not eased off)
    longer = [INF] * 10 + [5.5 - 0.1 * k for k in range(25)] + [INF] * 15
    late = _with_path(_trip('b', [9.0] * 30 + [2.5] * 5 + [9.0] * 15,
                            accels=[0.0] * 30 + [-2.0] * 20), longer, 8, 29)
    assert conflicts(told) == [] and len(conflicts(late)) == 1
    found = {c.trip: c for c in path_conflicts(told + late)}
    partners = {t: (c.partner, c.occluded) for t, c in found.items()}
    assert partners == {'a': (7, True), 'b': (8, True)}
    assert found['a'].start == pytest.approx(1.0) and found['a'].min_ttc == pytest.approx(3.6)
    assert found['a'].first_deceleration == pytest.approx(0.2)
    assert found['b'].first_deceleration == pytest.approx(2.0)
    summary = summarise(told + late, ['reached'] * 2, [1.0] * 2)
    assert summary['path_conflicts'] == 2 and summary['path_occluded_conflicts'] == 2
    assert summary['first_deceleration_path_occluded_mean_s'] == pytest.approx(1.1)
    # the threshold is a convention: below the 3.6 s the held motions reach, no path conflict
    assert path_conflicts(told, MetricConventions(path_conflict_ttc=3.5)) == []


@pytest.mark.parametrize('ego_speed, other_speed, ahead, left, expected', [
    (0.0, 6.0, -4.5, 0.0, 'ego_stopped'),       # run into while standing
    (0.05, 6.0, 4.5, 0.0, 'ego_stopped'),       # nuPlan's threshold stands
    (6.0, 0.0, 4.5, 0.0, 'other_stopped'),      # the ego ran into a standing vehicle
    (1.0, 6.0, -4.5, 0.5, 'rear'),              # struck from behind while crawling
    (1.0, 6.0, -4.5, 1.7, 'rear'),              # 3.05 m behind the axle, 1.7 m aside: 29 deg
    (1.0, 6.0, -4.5, 2.0, 'front_or_side'),     # ... 2 m aside: 33 deg, a side contact
    (6.0, 3.0, 4.5, 0.3, 'front_or_side'),      # the ego ran into a slower leader
    (6.0, 8.0, 0.5, 2.0, 'front_or_side'),      # side by side
])
def test_collision_classes_are_nuplans(ego_speed, other_speed, ahead, left, expected):
    assert collision_class(ego_speed, other_speed, ahead, left) == expected
    assert (expected in AT_FAULT_CLASSES) == (expected in ('other_stopped', 'front_or_side'))

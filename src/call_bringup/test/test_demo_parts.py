"""The demo's summary arithmetic and its top-down rendering, on hand-made inputs."""
import math
from types import SimpleNamespace

from call_bringup.conflicts import ConflictTracker
from call_bringup.run_metrics import format_comparison, format_summary, RunMetrics, StepReport
from call_bringup.step_view import format_views, StepViews
from call_bringup.topdown import (Box, frame_layout, hero_colour, LINK, mark_shared, overview,
                                  SHARED_MARK, TopDownRenderer)
import numpy as np
import pytest


def test_summary_counts_routes_collisions_overrides_and_bytes():
    metrics = RunMetrics(['hero0', 'hero1', 'hero2'])
    ok = StepReport(ttc=4.0)
    metrics.add_step({'hero0': ok, 'hero1': StepReport(ttc=math.inf), 'hero2': ok})
    metrics.add_step({'hero0': StepReport(collision=True, ttc=0.0), 'hero1': ok,
                      'hero2': StepReport(off_road=True)})
    metrics.add_step({'hero0': StepReport(collision=True, ttc=0.0),     # same episode
                      'hero1': StepReport(reached=True, ttc=2.0), 'hero2': ok})
    metrics.add_step({'hero0': ok, 'hero1': StepReport(reached=True), 'hero2': ok})
    metrics.add_step({'hero0': ok, 'hero1': ok, 'hero2': StepReport(reached=True)})
    metrics.add_comm(0.1, 'hero0', 100)
    metrics.add_comm(0.1, 'hero1', 50)
    metrics.add_comm(0.2, 'hero0', 30)
    metrics.add_planner_counts('hero0', {'planned': '90', 'overrides_comfortable': '6',
                                         'overrides_emergency': '4'})
    metrics.add_planner_counts('hero1', {'planned': '100', 'overrides_comfortable': '0',
                                         'overrides_emergency': '0'})
    metrics.add_planner_counts('hero1', {'watchdog': 'stale'})         # not counters: kept
    summary = metrics.summary()
    assert summary['steps'] == 5 and summary['vehicle_steps'] == 15
    assert summary['collision_rate'] == pytest.approx(2 / 15)
    # ended: hero0 collided, hero2 left the road then reached its next route, hero1 reached
    # one; hero0 and hero1 are driving unfinished routes, counted apart from the success rate
    assert (summary['reached'], summary['routes_ended'], summary['unfinished']) == (2, 4, 2)
    assert summary['routes'] == 6
    assert summary['success_rate'] == pytest.approx(0.5)
    assert summary['overrides'] == {'comfortable': 6, 'emergency': 4}
    assert summary['override_rate'] == pytest.approx(10 / 200)
    assert summary['mean_bytes_per_step'] == pytest.approx((150 + 30) / 2)
    assert metrics.bytes_at(0.1) == 150 and metrics.bytes_at(0.3) is None
    assert metrics.steps_with_bytes() == pytest.approx(2 / 5)      # of all 5 steps
    text = format_summary(summary)
    assert 'success rate: 50.0 % (2/4 routes that ended; 2 still driving at the end)' in text
    assert 'safety-monitor overrides: 5.0 %' in text and 'TTC:' not in text


def test_bytes_count_from_the_first_measured_step_whenever_they_came_in():
    metrics = RunMetrics(['hero0'])
    # CommStats of a startup step and of the first two live steps, all before the caller
    # knew which step was the first live one
    for stamp, received in ((0.1, 999), (0.2, 40), (0.3, 0)):
        metrics.add_comm(stamp, 'hero0', received)
    metrics.measured_from = 0.2
    metrics.add_step({'hero0': StepReport()})
    metrics.add_step({'hero0': StepReport()})
    assert metrics.summary()['mean_bytes_per_step'] == pytest.approx(20.0)
    assert metrics.steps_with_bytes() == pytest.approx(1 / 2)


def test_bytes_of_steps_after_the_last_measured_one_are_left_out():
    metrics = RunMetrics(['hero0', 'hero1'])
    for _ in range(2):
        metrics.add_step({'hero0': StepReport(), 'hero1': StepReport()})
    metrics.measured_until = 0.2
    metrics.add_comm(0.1, 'hero0', 10)
    metrics.add_comm(0.1, 'hero1', 20)
    metrics.add_comm(0.2, 'hero0', 30)
    # hero1 lags: its CommStats of the last step are still on their way
    assert metrics.comm_behind(0.2, ['hero0', 'hero1']) == {'hero1'}
    metrics.add_comm(0.3, 'hero0', 999)           # a step the run no longer measures
    metrics.add_comm(0.2, 'hero1', 40)
    assert metrics.comm_behind(0.2, ['hero0', 'hero1']) == set()
    assert metrics.summary()['mean_bytes_per_step'] == pytest.approx((30 + 70) / 2)


def test_summary_without_an_ended_route_has_no_success_rate():
    metrics = RunMetrics(['hero0'])
    metrics.add_step({'hero0': StepReport()})
    summary = metrics.summary()
    assert summary['success_rate'] is None and summary['override_rate'] is None
    assert 'success rate: n/a (0/0 routes that ended; 1 still driving' in format_summary(summary)


def test_step_report_parses_simulator_diagnostics():
    report = StepReport.from_values({'collision': 'True', 'ttc': '1.500', 'reached': 'False',
                                     'off_road': 'False'})
    assert report.collision and report.ttc == 1.5 and not report.reached


def test_topdown_places_vehicles_north_up_around_the_centre():
    lane = SimpleNamespace(centerline=np.array([[-100.0, 0.0], [100.0, 0.0]]), width=3.5)
    renderer = TopDownRenderer([lane], size_px=100, m_per_px=0.5)
    heroes = {'hero0': Box(10.0, 0.0, 0.0)}
    image = renderer.render((0.0, 0.0), heroes, [Box(0.0, 10.0, 0.0)])
    assert tuple(image[50, 70]) == hero_colour('hero0', heroes)       # 10 m east = 20 px right
    assert tuple(image[30, 50]) == (150, 150, 150)                    # 10 m north = 20 px up
    assert tuple(image[50, 20]) == (70, 70, 70)                       # road
    assert tuple(image[10, 10]) == (25, 25, 25)                       # off road
    strip = overview(heroes, [Box(0.0, 10.0, 0.0)], 200)
    prediction = np.full((128, 648, 3), 200, np.uint8)
    frame = frame_layout([('hero0', image, np.zeros((128, 128, 3), np.uint8), prediction)],
                         strip, 't=0')
    assert frame.shape == (20 + strip.shape[0] + 200, 800, 3)
    row = 20 + strip.shape[0]
    assert tuple(frame[row + 30, 500]) == (200, 200, 200)             # prediction, 2 tiles wide
    assert tuple(frame[row + 30, 300]) == (0, 0, 0)                   # the (black) BEV


def test_topdown_draws_ranges_and_v2v_links():
    renderer = TopDownRenderer([], size_px=100, m_per_px=1.0)
    heroes = {'hero0': Box(-20.0, 0.0, 0.0), 'hero1': Box(20.0, 0.0, 0.0)}
    plain = renderer.render((0.0, 0.0), heroes, [])
    drawn = renderer.render((0.0, 0.0), heroes, [], ranges={'hero0': 10.0},
                            links=[('hero1', 'hero0')])
    assert tuple(drawn[50, 50]) == LINK and tuple(plain[50, 50]) != LINK   # link midpoint
    assert tuple(drawn[40, 30]) == hero_colour('hero0', heroes)          # 10 m north of hero0
    assert tuple(plain[40, 30]) != hero_colour('hero0', heroes)


def test_mark_shared_outlines_only_the_shared_vehicles():
    bev = np.zeros((40, 40, 3), np.uint8)
    mask = np.zeros((40, 40), np.uint8)
    mask[10:14, 20:22] = 255
    marked = mark_shared(bev, mask)
    assert tuple(marked[8, 21]) == SHARED_MARK and tuple(marked[30, 30]) == (0, 0, 0)
    assert not bev.any()                                                 # input untouched


def test_conflicts_min_ttc_and_first_deceleration():
    # the definitions are call_sim.driving_metrics's: runs closer than 5 steps are one
    # conflict, first deceleration = first commanded accel <= -1 m/s^2 from 5 s before
    tracker = ConflictTracker(ttc_threshold=3.0, dt=0.1)
    ttcs = [5.0, 2.5, 1.0, 2.0] + [6.0] * 10 + [2.9, 6.0]
    for i, ttc in enumerate(ttcs):
        tracker.add_ttc('hero0', round(0.1 * i, 1), ttc)
    tracker.add_action('hero0', 0.3, -2.0)            # brakes two steps into the first conflict
    tracker.add_action('hero0', 0.4, -0.5)            # too gentle to count
    tracker.add_action('hero1', 0.0, -2.0)            # braking before its conflict began
    tracker.add_ttc('hero1', 0.2, 2.0)
    tracker.add_ttc('hero1', 0.3, 0.0, collision=True)
    conflicts = tracker.finish()
    by_role = {(c.role, round(c.start, 1)): c for c in conflicts}
    first = by_role[('hero0', 0.1)]
    assert first.min_ttc == 1.0 and first.first_deceleration == pytest.approx(0.2)
    # the second conflict of hero0 looks back 5 s and finds the braking at 0.3 s
    assert by_role[('hero0', 1.4)].first_deceleration == pytest.approx(0.3 - 1.4)
    crash = by_role[('hero1', 0.2)]
    assert crash.min_ttc == 0.0 and crash.first_deceleration == pytest.approx(-0.2)
    summary = tracker.summary()
    assert summary['conflicts'] == 3 and summary['not_decelerated'] == 0
    assert summary['lowest_min_ttc_s'] == 0.0
    assert summary['mean_min_ttc_s'] == pytest.approx((1.0 + 2.9 + 0.0) / 3)


def test_a_conflict_never_braked_in_has_no_deceleration_time():
    tracker = ConflictTracker()
    for i in range(5):
        tracker.add_ttc('hero0', round(0.1 * i, 1), 2.0)
    tracker.add_action('hero0', 0.2, 0.0)
    (conflict,) = tracker.finish()
    assert conflict.first_deceleration is None
    assert tracker.summary()['not_decelerated'] == 1


def test_step_views_join_comm_and_perception_reports():
    views = StepViews(['hero0', 'hero1'])
    views.add_comm(0.3, 'hero0', 25.0, ['hero1'], 20.0, 15.0, 147)
    views.add_shared_only(0.3, 'hero0', 1)
    views.add_shared_only(0.3, 'hero1', 0)
    assert views.links(0.3) == [('hero1', 'hero0')]
    line = format_views(views.at(0.3))
    assert 'ranges 25/- m' in line and 'hears 1/-' in line and '+BEV 1/0' in line
    assert 'E>c 1/-' in line


def test_comparison_table_has_a_column_per_run():
    metrics = RunMetrics(['hero0'])
    metrics.add_step({'hero0': StepReport(ttc=2.0)})
    metrics.add_comm(0.1, 'hero0', 147)
    tracker = ConflictTracker()
    tracker.add_ttc('hero0', 0.1, 2.0)
    tracker.finish()
    call = dict(metrics.summary(), **tracker.summary())
    local = dict(call, mean_bytes_per_step=0.0)
    table = format_comparison({'CALL': call, 'local': local})
    assert table.splitlines()[0].split() == ['CALL', 'local']
    assert '147 B' in table and '0 B' in table and 'min TTC per conflict' in table

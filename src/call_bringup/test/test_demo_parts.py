"""The demo's summary arithmetic and its top-down rendering, on hand-made inputs."""
import math
from types import SimpleNamespace

from call_bringup.run_metrics import format_summary, RunMetrics, StepReport
from call_bringup.topdown import Box, frame_layout, hero_colour, overview, TopDownRenderer
import numpy as np
import pytest


def test_summary_counts_routes_collisions_ttc_and_bytes():
    metrics = RunMetrics(['hero0', 'hero1'])
    ok = StepReport(ttc=4.0)
    metrics.add_step({'hero0': ok, 'hero1': StepReport(ttc=math.inf)})
    metrics.add_step({'hero0': StepReport(collision=True, ttc=0.0), 'hero1': ok})
    metrics.add_step({'hero0': StepReport(collision=True, ttc=0.0),     # same episode
                      'hero1': StepReport(reached=True, ttc=2.0)})
    metrics.add_step({'hero0': ok, 'hero1': ok})                          # both on new routes
    metrics.add_comm(0.1, 'hero0', 100)
    metrics.add_comm(0.1, 'hero1', 50)
    metrics.add_comm(0.2, 'hero0', 30)
    summary = metrics.summary()
    assert summary['steps'] == 4 and summary['vehicle_steps'] == 8
    assert summary['collision_rate'] == pytest.approx(2 / 8)
    assert summary['mean_ttc_s'] == pytest.approx((4 + 0 + 4 + 0 + 2 + 4 + 4) / 7)
    # routes: hero0 failed one, hero1 reached one, both are driving an unfinished one
    assert (summary['reached'], summary['routes']) == (1, 4)
    assert summary['success_rate'] == pytest.approx(0.25)
    assert summary['mean_bytes_per_step'] == pytest.approx((150 + 30) / 2)
    assert metrics.bytes_at(0.1) == 150 and metrics.bytes_at(0.3) is None
    assert 'success rate: 25.0 % (1/4 routes)' in format_summary(summary)


def test_summary_reports_ttc_per_conflict_and_route_completion():
    metrics = RunMetrics(['hero0'])
    free = [StepReport(ttc=30.0, accel=0.0, progress=p, route_length=100.0)
            for p in range(0, 40, 2)]
    closing = [StepReport(ttc=t, accel=a, progress=40.0 + i, route_length=100.0)
               for i, (t, a) in enumerate([(2.5, 0.0), (1.5, -2.0), (1.0, -2.0), (2.8, -2.0)])]
    for k, report in enumerate(free + closing + free[:5]):
        metrics.add_step({'hero0': report}, round(0.1 * k, 3))
    summary = metrics.summary()
    # one conflict (four steps under 3 s), its minimum 1.0 s: the free-flow 30 s steps do
    # not dilute it; braking began 0.1 s after the conflict began
    assert summary['conflicts'] == 1
    assert summary['conflict_min_ttc_mean_s'] == pytest.approx(1.0)
    assert summary['first_deceleration_mean_s'] == pytest.approx(0.1)
    assert summary['route_completion'] == pytest.approx(0.08)   # the last report: 8 of 100 m
    text = format_summary(summary)
    assert 'min TTC per conflict: mean 1.00 s' in text and 'route completion: 8.0 %' in text
    assert 'safety-monitor overrides: n/a' in text            # no planner counters yet
    metrics.add_planner_counts('hero0', {'planned': '90', 'overrides_comfortable': '6',
                                         'overrides_emergency': '4'})
    summary = metrics.summary()
    assert summary['override_comfortable'] == pytest.approx(0.06)
    assert summary['override_emergency'] == pytest.approx(0.04)


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
    frame = frame_layout([('hero0', image, np.zeros((128, 128, 3), np.uint8))], strip, 't=0')
    assert frame.shape == (20 + strip.shape[0] + 200, 400, 3)

"""The driving evaluation's per-seed figures and their intervals over seeds."""
import math

from call_experiments.driving_eval import (drive_seed, load_policy_models, planner_settings,
                                           rows_for, SeedResult, shipped_checkpoint)
from call_sim import driving_metrics
import pytest


def test_a_short_real_run_records_every_vehicle_step_and_the_warm_up_stops():
    loaded = load_policy_models(shipped_checkpoint())
    result = drive_seed(loaded, 'lsi', 'four_lane_demo', 3000, 20, planner_settings(), 50.0,
                        60.0)
    assert len(result.steps) == 4 * 20              # 4 CALL vehicles, every step recorded
    summary = result.summary()
    # the world model needs K steps of E before a state is valid: the warm-up stops
    assert 0.0 < summary['stop_share'] < 1.0
    assert summary['trips'] == len(result.outcomes) >= 4


def test_planner_overrides_are_typed_and_unknown_names_fail():
    assert planner_settings({'route_weight': '1'})['route_weight'] == 1.0
    with pytest.raises(ValueError):
        planner_settings({'route_wieght': '1'})
    with pytest.raises(ValueError):
        planner_settings({'K': 'five'})


def test_rows_hold_the_mean_and_interval_over_seeds():
    def seed(collided):
        steps = [driving_metrics.VehicleStep(('hero0', 0), 0.1 * k, math.inf,
                                             collided and k == 9, -2.0 if k > 5 else 0.0)
                 for k in range(10)]
        return SeedResult(steps, ['collision' if collided else 'reached', 'cut_short'],
                          [0.5, 0.1])
    rows = {r['metric']: r for r in rows_for('lsi', [seed(False), seed(True), seed(False)])}
    success = rows['success_rate']
    assert success['mean'] == pytest.approx(2 / 3)
    assert success['ci_low'] < success['mean'] < success['ci_high']
    assert success['seeds'] == 3 and success['routes'] == 3    # cut-short trips excluded
    assert rows['collision_rate']['mean'] == pytest.approx(0.1 / 3)

"""Selection and report window sets of the prediction evaluation, and its interval."""
from call_learning.evaluate_prediction import (mean_interval, REPORT_SEEDS, seeds_for,
                                               SELECTION_SEEDS, summarise)
import numpy as np
import pytest


def test_selection_and_report_seeds_are_disjoint():
    assert not set(SELECTION_SEEDS) & set(REPORT_SEEDS)
    assert seeds_for('report', None, None) == list(REPORT_SEEDS)
    assert seeds_for('selection', None, None) == list(SELECTION_SEEDS)
    assert seeds_for(None, None, None) == [SELECTION_SEEDS[0]]     # the old default
    assert seeds_for(None, [7, 8], None) == [7, 8]
    with pytest.raises(ValueError, match='overlap the selection'):
        seeds_for('report', [REPORT_SEEDS[0], SELECTION_SEEDS[1]], None)
    with pytest.raises(ValueError, match='overlap the selection'):
        seeds_for('report', None, SELECTION_SEEDS[0])
    with pytest.raises(ValueError, match='overlap the report'):
        seeds_for('selection', [REPORT_SEEDS[2]], None)


def test_mean_interval_is_the_student_t_interval():
    mean, half = mean_interval([1.0, 2.0, 3.0])
    assert mean == pytest.approx(2.0)
    assert half == pytest.approx(4.303 * 1.0 / np.sqrt(3))        # t(0.975, 2) * s / sqrt(n)
    assert mean_interval([0.5])[0] == 0.5 and np.isnan(mean_interval([0.5])[1])
    assert mean_interval([0.2, float('nan'), 0.4])[0] == pytest.approx(0.3)   # nan IoU skipped
    runs = [{5: {'model': {'pixel_accuracy': a}, 'copy_last': {'pixel_accuracy': 0.9}}}
            for a in (0.91, 0.93, 0.95)]
    summary = summarise(runs)
    assert summary[5]['model']['pixel_accuracy'][0] == pytest.approx(0.93)
    assert summary[5]['copy_last']['pixel_accuracy'] == (pytest.approx(0.9), pytest.approx(0.0))

"""The range gate of paper section 3.3: grow exactly one step when E > c, else keep."""
import math

from call_comm.neighbours import in_range
from call_comm.prediction_error import PredictionErrorWindow
from call_comm.range_gate import RangeGate
import pytest


def test_grows_by_exactly_one_step_only_when_error_exceeds_threshold():
    gate = RangeGate(initial_range=20.0, range_step=5.0, max_range=100.0, c=10.0)
    assert gate.update(10.5) == 25.0
    assert gate.last_above
    assert gate.update(10.0) == 25.0          # E == c is not above c
    assert not gate.last_above
    assert gate.update(3.0) == 25.0
    assert gate.update(11.0) == 30.0
    assert gate.update(math.nan) == 30.0      # a faulted world model never grows the range


def test_range_is_capped_at_max_and_decay_is_off_by_default():
    gate = RangeGate(initial_range=90.0, range_step=5.0, max_range=100.0, c=1.0)
    assert [gate.update(2.0) for _ in range(4)] == [95.0, 100.0, 100.0, 100.0]
    assert gate.update(0.0) == 100.0


def test_optional_decay_returns_toward_initial_range():
    gate = RangeGate(initial_range=20.0, range_step=5.0, max_range=100.0, c=1.0, decay=2.0)
    gate.update(5.0)
    gate.update(5.0)
    assert gate.comm_range == 30.0
    assert [gate.update(0.0) for _ in range(6)] == [28.0, 26.0, 24.0, 22.0, 20.0, 20.0]


def test_c_zero_shares_with_everyone_and_c_inf_with_no_one():
    senders = [('a', 1.0, 0.0), ('b', 1e4, 0.0), ('c', -3e5, 2e5)]
    share_all = RangeGate(initial_range=0.0, c=0.0, max_range=50.0)
    share_none = RangeGate(initial_range=50.0, c=math.inf, max_range=100.0)
    for error in (0.0, 1.0, 1e9):
        assert {s for s, _ in in_range((0.0, 0.0), senders, share_all.update(error))} == {
            'a', 'b', 'c'}
        assert in_range((0.0, 0.0), senders, share_none.update(error)) == []


def test_in_range_sorts_by_distance_and_includes_the_boundary():
    got = in_range((0.0, 0.0), [('far', 30.0, 40.0), ('near', 3.0, 4.0), ('out', 60.0, 0.0)],
                   50.0)
    assert got == [('near', 5.0), ('far', 50.0)]


@pytest.mark.parametrize('kwargs', [
    {'initial_range': -1.0}, {'initial_range': 200.0}, {'c': -1.0},
    {'c': math.nan}, {'range_step': math.inf}, {'decay': -1.0}])
def test_bad_configuration_fails_fast(kwargs):
    args = {'initial_range': 10.0, 'range_step': 5.0, 'max_range': 100.0, 'c': 10.0}
    args.update(kwargs)
    with pytest.raises(ValueError):
        RangeGate(**args)


def test_prediction_error_window_keeps_last_k_pairs():
    window = PredictionErrorWindow(horizon_k=2)
    assert window.push([0.0, 0.0], [3.0, 4.0]) == 5.0
    assert window.push([1.0, 1.0], [1.0, 1.0]) == 5.0
    window.push([0.0], [0.0])
    assert window.error() == 0.0  # the 3-4-5 pair left the window

"""RecentSteps: the newest few per-step inputs by stamp."""
from call_common.recent_steps import RecentSteps
import pytest


def test_keeps_the_newest_entries_in_insertion_order():
    recent = RecentSteps(3)
    for stamp in (10, 20, 30, 40):
        recent[stamp] = f'step {stamp}'
    assert list(recent) == [20, 30, 40]          # the oldest went first
    recent[20] = 'again'                          # an update keeps its place, as in a dict
    recent[50] = 'step 50'
    assert list(recent) == [30, 40, 50] and 20 not in recent


def test_a_capacity_below_one_fails_fast():
    with pytest.raises(ValueError, match='capacity'):
        RecentSteps(0)

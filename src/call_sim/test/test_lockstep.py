"""Lockstep bookkeeping without ROS."""
from call_sim.lockstep import Lockstep
import pytest


def test_tick_due_when_every_role_commanded():
    lock = Lockstep(['hero0', 'hero1'], timeout=1.0)
    lock.open_tick(10.0)
    lock.command('hero0')
    lock.command('intruder')
    assert not lock.due(10.5)
    lock.command('hero1')
    assert lock.due(10.5) and lock.missed_ticks == 0 and lock.last_missing == []


def test_timeout_records_missed_tick_and_silent_roles():
    lock = Lockstep(['hero0', 'hero1'], timeout=1.0)
    lock.open_tick(0.0)
    lock.command('hero0')
    assert not lock.due(0.99)
    assert lock.due(1.0)
    assert lock.missed_ticks == 1 and lock.last_missing == ['hero1']
    lock.open_tick(1.0, roles=['hero0'])
    lock.command('hero0')
    assert lock.due(1.0) and lock.missed_ticks == 1


def test_bad_timeout_fails_fast():
    with pytest.raises(ValueError):
        Lockstep(['hero0'], timeout=0.0)

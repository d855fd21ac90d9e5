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


def test_only_commands_for_the_open_step_or_unstamped_complete_the_tick():
    lock = Lockstep(['hero0', 'hero1'], timeout=1.0)
    lock.open_tick(0.0, stamp=200_000_000)
    assert not lock.command('hero0', 100_000_000)      # answers the previous step
    assert lock.stale_commands == 1 and not lock.due(0.5)
    assert lock.command('hero0', 200_000_000)
    assert lock.command('hero1', 0)                     # unstamped external controller
    assert lock.due(0.5) and lock.missed_ticks == 0
    lock.open_tick(0.5, stamp=300_000_000)
    assert not lock.command('hero0', 200_000_000) and not lock.command('hero1', 200_000_000)
    assert lock.due(1.5) and lock.missed_ticks == 1
    assert lock.last_missing == ['hero0', 'hero1'] and lock.stale_commands == 3


def test_paused_reopen_keeps_the_step_stamp():
    lock = Lockstep(['hero0'], timeout=1.0)
    lock.open_tick(0.0, stamp=500_000_000)
    lock.open_tick(0.2)
    assert lock.stamp == 500_000_000 and lock.command('hero0', 500_000_000)


def test_startup_holds_ticks_for_vehicles_never_heard_then_times_out():
    lock = Lockstep(['hero0', 'hero1'], timeout=1.0, startup_timeout=10.0)
    lock.open_tick(0.0, stamp=100)
    lock.command('hero0', 100)
    assert not lock.due(5.0)            # hero1's nodes are still loading: no missed tick
    lock.command('hero1', 99)           # heard (a stale stop), so the normal timeout applies
    assert lock.due(5.0) and lock.missed_ticks == 1 and lock.last_missing == ['hero1']
    silent = Lockstep(['hero0', 'hero1'], timeout=1.0, startup_timeout=10.0)
    silent.open_tick(0.0)
    silent.command('hero0')
    assert not silent.due(9.9)
    assert silent.due(10.0) and silent.last_missing == ['hero1']   # a dead vehicle: no hang
    with pytest.raises(ValueError):
        Lockstep(['hero0'], timeout=1.0, startup_timeout=-1.0)

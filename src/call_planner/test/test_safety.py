"""Watchdog deadlines and model-state validation."""
from call_planner.safety import InputWatchdog, model_state_fault, SafetyConfig
import numpy as np
import pytest

CFG = SafetyConfig(deadline_sim=0.5, deadline_wall=2.0, comfortable_decel=3.0)


def test_fresh_inputs_are_not_stale():
    dog = InputWatchdog(['latent_state', 'odometry'], CFG, started_wall=100.0)
    dog.feed('latent_state', 10.0, 100.1)
    dog.feed('odometry', 10.0, 100.1)
    assert dog.stale_reasons(sim_now=10.4, wall_now=101.0) == []


def test_sim_time_deadline():
    dog = InputWatchdog(['latent_state', 'odometry'], CFG, started_wall=100.0)
    dog.feed('latent_state', 10.0, 100.0)
    dog.feed('odometry', 10.6, 100.5)
    reasons = dog.stale_reasons(sim_now=10.6, wall_now=100.5)
    assert len(reasons) == 1 and reasons[0].startswith('latent_state: stale')
    assert 'sim' in reasons[0]


def test_wall_time_deadline_when_the_clock_stopped():
    dog = InputWatchdog(['latent_state'], CFG, started_wall=100.0)
    dog.feed('latent_state', 10.0, 100.0)
    assert dog.stale_reasons(sim_now=10.0, wall_now=101.9) == []
    reasons = dog.stale_reasons(sim_now=10.0, wall_now=102.1)
    assert len(reasons) == 1 and 'wall' in reasons[0]


def test_never_received_input_is_stale_after_the_wall_deadline():
    dog = InputWatchdog(['odometry'], CFG, started_wall=100.0)
    assert dog.stale_reasons(sim_now=None, wall_now=101.0) == []
    assert 'never received' in dog.stale_reasons(sim_now=None, wall_now=102.5)[0]


@pytest.mark.parametrize('kwargs', [{'deadline_sim': 0.0}, {'deadline_wall': -1.0},
                                    {'comfortable_decel': float('nan')}])
def test_bad_safety_config_fails_fast(kwargs):
    with pytest.raises(ValueError):
        SafetyConfig(**kwargs)


def _fault(valid=True, z=None, h=None):
    z = np.zeros(32, np.uint8) if z is None else z
    h = np.zeros(16, np.float32) if h is None else h
    return model_state_fault(valid, z, h, stoch=32, classes=32, deter=16)


def test_valid_state_has_no_fault():
    assert _fault() is None


def test_state_faults_name_their_reason():
    assert 'invalid' in _fault(valid=False)
    h = np.zeros(16, np.float32)
    h[3] = np.nan
    assert 'NaN' in _fault(h=h)
    assert 'h has 15' in _fault(h=np.zeros(15, np.float32))
    assert 'z has 31' in _fault(z=np.zeros(31, np.uint8))
    assert 'out of range' in _fault(z=np.full(32, 40, np.uint8))


def test_an_age_exactly_at_the_deadline_is_on_time_despite_float_rounding():
    dog = InputWatchdog(['latent_state'], CFG, started_wall=0.0)
    dog.feed('latent_state', 100.1, 0.0)
    assert dog.stale_reasons(sim_now=100.6, wall_now=0.0) == []      # 0.5000000000000142
    assert dog.stale_reasons(sim_now=100.7, wall_now=0.0) != []

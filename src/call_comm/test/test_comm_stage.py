"""The comm stage's rules: E gates only while valid, only valid states are sent."""
import math

from call_comm.comm_stage import CommStage
from call_comm.range_gate import RangeGate


def stage():
    return CommStage(RangeGate(initial_range=20.0, range_step=5.0, max_range=100.0, c=10.0))


def test_an_invalid_state_never_widens_the_range_a_valid_one_does():
    comm = stage()
    assert comm.step(False, 99.0) == 20.0 and math.isnan(comm.gate.last_error)
    assert comm.step(True, 99.0) == 25.0
    assert comm.step(True, 3.0) == 25.0


def test_only_valid_states_are_sent():
    assert CommStage.sends(True) and not CommStage.sends(False)


def test_accepted_are_the_senders_in_range_nearest_first():
    comm = stage()
    senders = [('far', 30.0, 0.0), ('near', 5.0, 0.0), ('mid', 0.0, 12.0)]
    assert [name for name, _ in comm.accept((0.0, 0.0), senders)] == ['near', 'mid']
    comm.step(True, 50.0)
    comm.step(True, 50.0)       # 30 m now
    assert [name for name, _ in comm.accept((0.0, 0.0), senders)] == ['near', 'mid', 'far']

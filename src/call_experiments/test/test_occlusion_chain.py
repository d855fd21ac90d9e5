"""
The occlusion chain: per stage, when an ego held a conflict's partner through sharing.

Real torch (the shipped checkpoint) and the real simulator: short runs of the occluded
crossroad through `driving_eval.drive_seed` with the chain's probe, sharing with every
vehicle (c = 0) and without (local), and the per-conflict first times on hand-made records.
"""
import math

from call_experiments.driving_eval import drive_seed, load_policy_models, shipped_checkpoint
from call_experiments.occlusion_chain import chain, ChainProbe, STAGES
from call_planner.plan_stage import planner_params
from call_sim.driving_metrics import Conflict
import pytest

STEPS = 30


@pytest.fixture(scope='module')
def run():
    """Give a getter of the seed run in a mode (sharing: c = 0), with a probe; each run once."""
    loaded = load_policy_models(shipped_checkpoint())
    done = {}

    def get(mode, probe=True):
        if (mode, probe) not in done:
            chain_probe = ChainProbe(3.0) if probe else None
            result = drive_seed(loaded, mode, 'crossroad_occluded', 10, STEPS,
                                planner_params(), 0.0, 60.0, probe=chain_probe)
            done[mode, probe] = (result, chain_probe)
        return done[mode, probe]
    return get


def test_the_probe_holds_one_record_per_vehicle_step_keyed_as_the_steps(run):
    result, probe = run('local')
    # the keys conflicts are looked up by: the step records' (trip, time)
    assert set(probe.records) == {(s.trip, round(s.time, 2)) for s in result.steps}
    # and the probe only reads: the run with it equals the run without one
    plain, _ = run('local', probe=False)
    assert [(s.trip, s.time, s.accel, s.ttc) for s in plain.steps] == \
        [(s.trip, s.time, s.accel, s.ttc) for s in result.steps]


def test_sharing_stages_hold_vehicles_only_when_the_ego_shares(run):
    shared, local = run('lsi')[1].records.values(), run('local')[1].records.values()
    # the other CALL vehicles' sensors see vehicles whatever the ego's mode
    assert any(r['sensed'] for r in local) and any(r['sensed'] for r in shared)
    # a local ego accepts no sender, so nothing reaches it through sharing
    assert not any(r['sender'] or r['in_view'] or r['tracked'] or r['told'] or r['crossing']
                   or r['contact'] for r in local)
    # sharing with every vehicle: senders tell of vehicles, some reach the ego's BEV
    assert any(r['sender'] for r in shared) and any(r['in_view'] for r in shared)
    for r in shared:
        assert r['told'] <= r['tracked']       # a track with a velocity is a track
        assert r['crossing'] <= r['told']      # anticipation is for told tracks only
        assert r['contact'] <= r['crossing']


def _records(partner, times):
    """Make records of trip ('hero0', 0): each stage holds `partner` from its `times` on."""
    out = {}
    for k in range(0, 121):
        t = round(0.1 * k, 2)
        out[(('hero0', 0), t)] = {
            **{stage: ({partner} if times.get(stage) is not None and t >= times[stage] - 1e-6
                       else set()) for stage in STAGES},
            'range': 20.0, 'nearest_seer': {partner: 40.0}, 'senders': 1,
            'error': 10.0}
    return out


def test_each_stage_first_time_is_taken_within_the_look_back_relative_to_the_start():
    probe = ChainProbe(3.0)
    probe.records = _records(7, {'sensed': 2.0, 'sender': 7.5, 'in_view': 8.0,
                                 'tracked': 8.0, 'told': 9.2})
    conflict = Conflict(('hero0', 0), 10.0, 10.5, 2.0, False, -1.0, partner=7,
                        occluded=True)
    row = chain([conflict], probe, 5.0)[0]
    # sensed from t = 2, but the look-back starts at 5: it counts from there
    assert row['sensed'] == pytest.approx(-5.0)
    assert row['sender'] == pytest.approx(-2.5)
    assert row['in_view'] == row['tracked'] == pytest.approx(-2.0)
    assert row['told'] == pytest.approx(-0.8)
    assert row['range_m'] == 20.0 and row['nearest_seer_m'] == 40.0
    # another partner: no stage held it
    other = chain([Conflict(('hero0', 0), 10.0, 10.5, 2.0, False, math.nan, partner=8)],
                  probe, 5.0)[0]
    assert all(other[stage] is None for stage in STAGES)

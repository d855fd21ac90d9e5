"""plan_together / LookaheadBatcher: one imagination gives every vehicle its own plan."""
from call_planner.indexed_lookahead import IndexedLookahead
from call_planner.lookahead_batch import LookaheadBatcher, LookaheadRequest, plan_together
from call_planner.occupancy_cost import OccupancyConfig, OccupancyCost
from call_planner.replanning import LookaheadConfig, ReplanningPolicy
import numpy as np
import pytest
from test_indexed_lookahead import _models, _random_state
import torch

torch.set_num_threads(1)


@pytest.fixture(scope='module')
def models():
    cfg, model, actor = _models(3)
    # every imagined step decoded, with a large weight: the occupancy rows are compared too
    return cfg, model, actor, OccupancyCost(model, OccupancyConfig(weight=50.0, every=1))


def _requests(models, count, gamma=0.997):
    cfg, model, actor, cost = models
    # one IndexedLookahead per vehicle, as every planner node builds its own
    return [LookaheadRequest(IndexedLookahead(model, actor, cost), _random_state(cfg, 40 + i),
                             cfg.num_actions, 5, gamma) for i in range(count)]


def test_a_batch_of_one_is_exactly_the_plain_look_ahead(models):
    request = _requests(models, 1)[0]
    got = plan_together([request])[0]
    alone = request.lookahead.plan(request.state, request.num_actions, 5, 0.997,
                                   imagine_kwargs={'sample': False})
    assert np.array_equal(got.scores, alone.scores)
    assert (got.first_action, got.actions) == (alone.first_action, alone.actions)
    assert np.array_equal(got.candidates, alone.candidates)


def test_a_batch_gives_each_vehicle_its_own_plan(models):
    requests = _requests(models, 4)
    together = plan_together(requests)
    alone = [r.alone() for r in requests]
    assert len({p.first_action for p in alone}) > 1 or \
        len({tuple(np.round(p.scores, 3)) for p in alone}) == 4   # distinct vehicles
    for got, ref in zip(together, alone):
        assert ref.scores.std() > 1e-3
        assert got.scores == pytest.approx(ref.scores, rel=1e-6, abs=1e-5)   # float32
        assert (got.first_action, got.actions) == (ref.first_action, ref.actions)
        assert np.array_equal(got.candidates, ref.candidates)


def test_requests_with_other_numbers_are_planned_apart(models):
    requests = _requests(models, 2) + _requests(models, 1, gamma=0.5)
    together = plan_together(requests)
    assert together[2].scores == pytest.approx(requests[2].alone().scores, rel=1e-6)
    assert not np.allclose(together[2].scores, plan_together(_requests(models, 1))[0].scores)


def test_the_batcher_queues_until_flushed_and_answers_each_node(models):
    cfg, model, actor, _ = models
    batcher = LookaheadBatcher.for_model(model)
    assert LookaheadBatcher.for_model(model) is batcher
    requests = _requests(models, 3)
    answers = {}
    opened = [batcher.submit(r, lambda plan, i=i: answers.__setitem__(i, plan))
              for i, r in enumerate(requests)]
    assert opened == [True, False, False] and not answers
    assert batcher.flush() == 3 and batcher.flush() == 0
    assert [answers[i].actions for i in range(3)] == [r.alone().actions for r in requests]
    assert batcher.stats['largest'] == 3


def test_policy_requests_only_due_deterministic_look_aheads(models):
    cfg, model, actor, cost = models
    policy = ReplanningPolicy(model, actor, cfg.num_actions, LookaheadConfig(K=5), None, cost)
    state = _random_state(cfg, 1)
    request = policy.lookahead_request(state, {'sample': False})
    assert request is not None
    assert policy.lookahead_request(state, {'sample': True}) is None   # sampled z: alone
    decision = policy.step(state, {'sample': False}, planned=plan_together([request])[0])
    assert decision.replanned
    # the kept plan runs K steps without a look-ahead: nothing to request meanwhile
    assert policy.lookahead_request(state, {'sample': False}) is None
    reference = ReplanningPolicy(model, actor, cfg.num_actions, LookaheadConfig(K=5), None,
                                 cost).step(state, {'sample': False})
    assert decision.action == reference.action
    assert decision.active.actions == reference.active.actions

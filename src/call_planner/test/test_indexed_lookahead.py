"""The index-gather look-ahead computes what the reference look-ahead computes."""
from call_planner import indexed_lookahead
from call_planner.indexed_lookahead import IndexedLookahead
from call_planner.lookahead import expand_state, plan
from call_planner.occupancy_cost import OccupancyConfig, OccupancyCost
from call_planner.replanning import LookaheadConfig, ReplanningPolicy
import pytest
import torch
from toy_models import GruWorldModel, RandomActorCritic

torch.set_num_threads(1)


def _models(seed: int = 0, conditioned: bool = False, preset: str = 'tiny',
            overrides: dict = None):
    from call_world_model.actor_critic import ActorCritic
    from call_world_model.config import load_config
    from call_world_model.world_model import WorldModel
    torch.manual_seed(seed)
    cfg = load_config(preset, {'condition_sequence_model': conditioned, **(overrides or {})})
    model = WorldModel(cfg).eval()
    actor = ActorCritic(cfg, cfg.feat_dim, cfg.num_actions).eval()
    with torch.no_grad():      # reward/critic outputs start at zero: give every head a say
        for module in (model, actor):
            for param in module.parameters():
                param.add_(0.05 * torch.randn_like(param))
    return cfg, model, actor


def _random_state(cfg, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randint(0, cfg.classes, (1, cfg.stoch), generator=gen)
    return {'deter': torch.tanh(torch.randn(1, cfg.deter, generator=gen)),
            'stoch': torch.nn.functional.one_hot(z, cfg.classes).float()}


@pytest.mark.parametrize('seed', range(4))
def test_indexed_plan_equals_the_reference_plan(seed):
    cfg, model, actor = _models(seed)
    fast = IndexedLookahead(model, actor)
    state = _random_state(cfg, 100 + seed)
    kwargs = {'sample': False}
    ref = plan(model, actor, state, cfg.num_actions, 5, 0.997, imagine_kwargs=kwargs)
    got = fast.plan(state, cfg.num_actions, 5, 0.997, imagine_kwargs=kwargs)
    assert ref.scores.std() > 1e-3          # the comparison is not between constants
    assert got.scores == pytest.approx(ref.scores, abs=1e-4)
    assert (got.first_action, got.actions) == (ref.first_action, ref.actions)


def test_sampled_indexed_plans_follow_the_generators_like_the_reference():
    cfg, model, actor = _models(7)
    fast = IndexedLookahead(model, actor)
    state = _random_state(cfg, 3)
    plans = []
    for run in (lambda g: plan(model, actor, state, cfg.num_actions, 4, 0.99, sample=True,
                               generator=g, imagine_kwargs={'sample': True}),
                lambda g: fast.plan(state, cfg.num_actions, 4, 0.99, sample=True,
                                    generator=g, imagine_kwargs={'sample': True})):
        torch.manual_seed(11)     # imagined z are drawn from the global generator
        plans.append(run(torch.Generator().manual_seed(5)))
    assert plans[1].scores == pytest.approx(plans[0].scores, abs=1e-4)
    assert plans[1].actions == plans[0].actions


@pytest.mark.parametrize('preset, rows, sample', [
    ('tiny', 15, False), ('tiny', 60, True), ('small64g8c', 15, False), ('small64g8c', 4, True)])
def test_heads_stacked_over_the_steps_give_the_scores_of_one_step_at_a_time(
        monkeypatch, preset, rows, sample):
    """
    The reward and continue heads run after the loop on all steps' rows: the same scores.

    The same rows through the same operators, but how BLAS blocks a product of 4 x 6 rows
    against one of 4 depends on the CPU: one of this project's machines rounds them 1.8e-7
    apart, the others not at all. So the scores agree to float rounding, the actions exactly.
    """
    cfg, model, actor = _models(4, preset=preset)
    fast = IndexedLookahead(model, actor, OccupancyCost(model, OccupancyConfig(every=2)))
    gen = torch.Generator().manual_seed(rows)
    z = torch.randint(0, cfg.classes, (rows, cfg.stoch), generator=gen)
    start = {'deter': torch.tanh(torch.randn(rows, cfg.deter, generator=gen)),
             'stoch': torch.nn.functional.one_hot(z, cfg.classes).float()}
    first = torch.arange(rows) % cfg.num_actions

    def scores():
        torch.manual_seed(3)         # imagined z are drawn from the global generator
        return fast.rollout_scores(start, first, 6, 0.99, sample, sample,
                                   torch.Generator().manual_seed(4))
    stacked, stacked_actions = scores()
    monkeypatch.setattr(indexed_lookahead, 'MIN_STACKED_ROWS', rows + 1)   # step by step
    one_by_one, actions = scores()
    assert stacked.std() > 1e-3
    assert torch.allclose(stacked, one_by_one, rtol=1e-6, atol=1e-6)
    assert torch.equal(stacked_actions, actions)


def test_refresh_reads_changed_weights():
    cfg, model, actor = _models(1)
    fast = IndexedLookahead(model, actor)
    state = expand_state(_random_state(cfg, 9), cfg.num_actions)
    before, _ = fast.rollout_scores(state, torch.arange(cfg.num_actions), 3, 0.99)
    with torch.no_grad():
        actor.critic.hidden[0][0].weight.mul_(-1.0)
    stale, _ = fast.rollout_scores(state, torch.arange(cfg.num_actions), 3, 0.99)
    fast.refresh()
    fresh, _ = fast.rollout_scores(state, torch.arange(cfg.num_actions), 3, 0.99)
    assert torch.equal(stale, before)
    assert not torch.allclose(fresh, before)


def test_replanning_policy_takes_the_indexed_path_only_where_it_applies():
    cfg, model, actor = _models(2)
    config = LookaheadConfig(K=3)
    assert ReplanningPolicy(model, actor, cfg.num_actions, config)._indexed is not None
    _, legacy, legacy_actor = _models(2, conditioned=True)
    assert not IndexedLookahead.supports(legacy, legacy_actor)
    assert ReplanningPolicy(legacy, legacy_actor, cfg.num_actions, config)._indexed is None
    assert ReplanningPolicy(GruWorldModel(), RandomActorCritic(), 15, config)._indexed is None
    with pytest.raises(ValueError, match='unconditioned'):
        IndexedLookahead(legacy, legacy_actor)


def test_replanning_policy_on_the_indexed_path_replans_every_step():
    cfg, model, actor = _models(3)
    policy = ReplanningPolicy(model, actor, cfg.num_actions,
                              LookaheadConfig(K=3, replan_every=1))
    decisions = [policy.step(_random_state(cfg, seed), {'sample': False}) for seed in range(7)]
    assert all(d.replanned for d in decisions)
    assert [d.refreshed for d in decisions] == [True, False, False] * 2 + [True]
    for seed, decision in enumerate(decisions):
        ref = plan(model, actor, _random_state(cfg, seed), cfg.num_actions, 3, 0.997,
                   imagine_kwargs={'sample': False})
        assert decision.action == ref.first_action

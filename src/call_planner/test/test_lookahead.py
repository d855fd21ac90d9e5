"""Eq. 3 look-ahead: chosen action, batching equivalence, discounting, re-planning."""
from call_planner.lookahead import expand_state, plan, rollout_scores
from call_planner.replanning import LookaheadConfig, ReplanningPolicy
import numpy as np
import pytest
import torch
from toy_models import (FixedActorCritic, GruWorldModel, LastActionWorldModel, NUM_ACTIONS,
                        RandomActorCritic)

torch.set_num_threads(1)


def test_planner_picks_the_action_the_reward_head_favours():
    rewards = torch.zeros(NUM_ACTIONS)
    rewards[11] = 1.0
    model = LastActionWorldModel(rewards)
    actor = FixedActorCritic(preferred=2)
    result = plan(model, actor, model.initial_state(1), NUM_ACTIONS, horizon=5, gamma=0.99)
    assert result.first_action == 11
    # after the first step the actor drives: its mode is action 2 every step
    assert result.actions == (11, 2, 2, 2, 2)
    assert result.scores.shape == (NUM_ACTIONS,)
    assert result.value == pytest.approx(1.0)
    assert result.scores[0] == pytest.approx(0.0)


def test_score_is_discounted_reward_plus_bootstrapped_value():
    rewards = torch.linspace(-1.0, 1.0, NUM_ACTIONS)
    values = torch.linspace(2.0, -2.0, NUM_ACTIONS)
    model = LastActionWorldModel(rewards)
    actor = FixedActorCritic(preferred=4, value_per_action=values)
    gamma, horizon = 0.9, 3
    result = plan(model, actor, model.initial_state(1), NUM_ACTIONS, horizon, gamma)
    for a in range(NUM_ACTIONS):
        expected = (rewards[a] + gamma * rewards[4] + gamma ** 2 * rewards[4]
                    + gamma ** 3 * values[4])
        assert result.scores[a] == pytest.approx(float(expected), rel=1e-5)


def test_imagined_termination_stops_reward_and_value():
    rewards = torch.ones(NUM_ACTIONS)
    cont = torch.ones(NUM_ACTIONS)
    cont[6] = 0.0          # action 6 ends the episode in imagination (a crash)
    model = LastActionWorldModel(rewards, cont)
    actor = FixedActorCritic(preferred=3, value_per_action=torch.full((NUM_ACTIONS,), 5.0))
    result = plan(model, actor, model.initial_state(1), NUM_ACTIONS, horizon=4, gamma=1.0)
    assert result.scores[6] == pytest.approx(1.0)      # its own transition reward only
    assert result.scores[0] == pytest.approx(4.0 + 5.0)
    assert result.first_action != 6


def test_batched_rollouts_equal_sequential_per_action_rollouts():
    model, actor = GruWorldModel(), RandomActorCritic()
    start = {'deter': torch.randn(1, 24, generator=torch.Generator().manual_seed(3))}
    batched = plan(model, actor, start, NUM_ACTIONS, horizon=6, gamma=0.997)
    for a in range(NUM_ACTIONS):
        score, actions = rollout_scores(model, actor, start, torch.tensor([a]), 6, 0.997)
        assert float(score[0]) == pytest.approx(batched.scores[a], abs=1e-5)
        if a == batched.first_action:
            assert tuple(actions[0].tolist()) == batched.actions
    assert batched.first_action == int(np.argmax(batched.scores))


def test_sampled_actor_rollouts_are_reproducible_with_a_generator():
    model, actor = GruWorldModel(), RandomActorCritic()
    start = {'deter': torch.zeros(1, 24)}
    plans = [plan(model, actor, start, NUM_ACTIONS, 5, 0.99, sample=True,
                  generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    np.testing.assert_array_equal(plans[0].scores, plans[1].scores)
    assert plans[0].actions == plans[1].actions


def test_expand_state_rejects_batched_input():
    with pytest.raises(ValueError):
        expand_state({'deter': torch.zeros(2, 3)}, 15)


def test_non_finite_scores_fail_loudly():
    rewards = torch.zeros(NUM_ACTIONS)
    rewards[0] = float('nan')
    model = LastActionWorldModel(rewards)
    with pytest.raises(FloatingPointError):
        plan(model, FixedActorCritic(1), model.initial_state(1), NUM_ACTIONS, 3, 0.99)


def _policy(replan_every, horizon=3):
    rewards = torch.zeros(NUM_ACTIONS)
    rewards[5] = 1.0
    model = LastActionWorldModel(rewards)
    policy = ReplanningPolicy(model, FixedActorCritic(preferred=9), NUM_ACTIONS,
                              LookaheadConfig(K=horizon, gamma=0.9,
                                              replan_every=replan_every))
    return model, policy


def test_commit_mode_executes_the_kept_plan_for_k_steps():
    model, policy = _policy(replan_every=3)
    decisions = [policy.step(model.initial_state(1)) for _ in range(7)]
    assert [d.action for d in decisions] == [5, 9, 9, 5, 9, 9, 5]
    assert [d.replanned for d in decisions] == [True, False, False] * 2 + [True]
    assert [d.refreshed for d in decisions] == [True, False, False] * 2 + [True]


def test_receding_mode_replans_every_step_but_keeps_the_intention_for_k_steps():
    model, policy = _policy(replan_every=1)
    decisions = [policy.step(model.initial_state(1)) for _ in range(6)]
    assert [d.action for d in decisions] == [5] * 6
    assert all(d.replanned for d in decisions)
    assert [d.refreshed for d in decisions] == [True, False, False, True, False, False]
    assert decisions[1].intention is decisions[0].intention
    assert decisions[1].active is not decisions[0].active


@pytest.mark.parametrize('kwargs', [{'K': 0}, {'K': 3, 'replan_every': 4},
                                    {'K': 3, 'replan_every': -1}, {'gamma': 1.5}])
def test_bad_lookahead_config_fails_fast(kwargs):
    with pytest.raises(ValueError):
        LookaheadConfig(**kwargs)


def test_default_replans_at_t_plus_k_as_the_paper():
    assert LookaheadConfig(K=3).replan_every == 3
    assert LookaheadConfig(K=4, replan_every=0).replan_every == 4
    assert LookaheadConfig().replan_every == LookaheadConfig().K


def test_real_world_model_batched_plan_equals_sequential_rollouts():
    from call_world_model.actor_critic import ActorCritic
    from call_world_model.config import load_config
    from call_world_model.world_model import WorldModel
    torch.manual_seed(0)
    cfg = load_config('tiny')
    model = WorldModel(cfg).eval()
    actor = ActorCritic(cfg, cfg.feat_dim, cfg.num_actions).eval()
    start = model.initial_state(1)
    kwargs = {'sample': False}
    batched = plan(model, actor, start, cfg.num_actions, 5, 0.997, imagine_kwargs=kwargs)
    for a in range(cfg.num_actions):
        score, actions = rollout_scores(model, actor, start, torch.tensor([a]), 5, 0.997,
                                        imagine_kwargs=kwargs)
        assert float(score[0]) == pytest.approx(batched.scores[a], abs=1e-4)
        if a == batched.first_action:
            assert tuple(actions[0].tolist()) == batched.actions

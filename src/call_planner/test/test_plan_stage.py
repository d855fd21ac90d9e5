"""The planning stage outside ROS plans with the planner node's parameters and seeds."""
from call_common.param_files import package_defaults
from call_planner.plan_stage import FleetLookahead, planner_params
import pytest
import torch


def _models():
    from call_world_model.actor_critic import ActorCritic
    from call_world_model.config import load_config
    from call_world_model.world_model import WorldModel
    torch.manual_seed(0)
    cfg = load_config('tiny')
    return WorldModel(cfg).eval(), ActorCritic(cfg, cfg.feat_dim, cfg.num_actions).eval()


def test_planner_params_are_the_node_yaml_with_overrides():
    assert planner_params() == package_defaults('call_planner', 'planner.yaml')
    changed = planner_params({'K': '3', 'route_weight': 0})
    assert changed['K'] == 3 and changed['route_weight'] == 0.0
    assert isinstance(changed['route_weight'], float)
    with pytest.raises(ValueError, match='unknown parameter'):
        planner_params({'k': 3})
    with pytest.raises(ValueError, match='occupancy_weight'):
        planner_params({'occupancy_weight': True})


def test_fleet_stages_are_seeded_per_vehicle_and_episode():
    """Vehicle i of episode e samples with its own generator: seed_of(i, e)."""
    world_model, actor_critic = _models()
    fleet = FleetLookahead(world_model, actor_critic, planner_params(),
                           seed_of=lambda index, episode: 1000 + 10 * index + episode)
    assert fleet.stage(2).policy.generator.initial_seed() == 1020
    first = fleet.stage(2)
    assert fleet.stage(2) is first              # kept for the episode
    fleet.restart(3)
    assert fleet.stage(2) is not first
    assert fleet.stage(2).policy.generator.initial_seed() == 1023
    assert fleet.stage(0).policy.generator.initial_seed() == 1003


def test_fleet_stages_default_to_the_seed_parameter():
    world_model, actor_critic = _models()
    fleet = FleetLookahead(world_model, actor_critic, planner_params({'seed': 7}))
    fleet.restart(5)
    assert fleet.stage(1).policy.generator.initial_seed() == 7


def _steps(stage, latents, planned_by_batch):
    from call_planner.lookahead_batch import plan_together
    decisions = []
    torch.manual_seed(11)      # a sampled imagination draws from the global generator too
    for z, h in latents:
        request = stage.lookahead_request(z, h) if planned_by_batch else None
        planned = plan_together([request])[0] if request is not None else None
        decisions.append(stage.decide(z, h, None, planned))
    return decisions


@pytest.mark.parametrize('sample_latent', [False, True])
def test_a_stage_makes_the_model_state_only_for_a_look_ahead(monkeypatch, sample_latent):
    """Most steps keep their plan and never read the state: it is made for a look-ahead."""
    import numpy as np
    from call_planner import plan_stage
    world_model, actor_critic = _models()
    cfg = world_model.cfg
    rng = np.random.default_rng(3)
    latents = [(rng.integers(0, cfg.classes, cfg.stoch).astype(np.uint8),
                rng.standard_normal(cfg.deter).astype(np.float32)) for _ in range(12)]
    params = planner_params({'sample_latent': sample_latent})
    reference = _steps(FleetLookahead(world_model, actor_critic, params).stage(0), latents,
                       planned_by_batch=False)
    made = []
    real = plan_stage.state_from_latent

    def counted(*args):
        made.append(args)
        return real(*args)
    monkeypatch.setattr(plan_stage, 'state_from_latent', counted)
    decisions = _steps(FleetLookahead(world_model, actor_critic, params).stage(0), latents,
                       planned_by_batch=True)
    replans = sum(d.replanned for d in decisions)
    assert 1 <= replans < len(latents)
    assert len(made) == replans
    assert [d.action for d in decisions] == [d.action for d in reference]
    assert [d.replanned for d in decisions] == [d.replanned for d in reference]

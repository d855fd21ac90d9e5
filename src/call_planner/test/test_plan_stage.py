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

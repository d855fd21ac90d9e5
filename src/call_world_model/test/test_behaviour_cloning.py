"""
The teacher drives the real simulator, and behaviour cloning fits a real actor to it.

Tiny world model (torch, 1 thread) on the embedded simulator's two-lane scenario: the pairs
come from the world model's posterior features while the teacher drives, and a few epochs
of cross-entropy must raise the actor's agreement with the teacher on held-out pairs above
both its untrained agreement and the majority-action baseline.
"""
from call_sim.actions import ActionSet
from call_sim.config import load_yaml
from call_sim.env import MultiVehicleEnv
from call_world_model.actor_critic import ActorCritic
from call_world_model.behaviour_cloning import (braking_actions, clone_actor, CloneConfig,
                                                collect_pairs, TeacherCollector)
from call_world_model.collect import CollectConfig
from call_world_model.config import load_config
from call_world_model.teacher import teacher_accel, TeacherConfig
from call_world_model.train import load_train_config
from call_world_model.world_model import WorldModel
import pytest
import torch

torch.set_num_threads(1)


def test_teacher_brakes_for_a_vehicle_crossing_its_route():
    scenario = {**load_yaml('scenarios/crossroad.yaml'), 'num_controlled': 2,
                'num_background': 0}
    starts = {'hero0': {'edge': 'south_in', 'lane': 0, 'pos': 170.0, 'speed': 8.0},
              'hero1': {'edge': 'east_in', 'lane': 0, 'pos': 170.0, 'speed': 8.0}}
    with MultiVehicleEnv.from_scenario(scenario) as env:
        obs, _ = env.reset(seed=1, options={'starts': starts})   # seed 1: hero0 goes straight
        assert abs(obs['hero0'].route[:, 0] - obs['hero0'].ego.x).max() < 1.0
        crossing = teacher_accel(obs['hero0'], TeacherConfig())
        obs['hero0'].others.clear()                  # the same scene without hero1
        free = teacher_accel(obs['hero0'], TeacherConfig())
    assert crossing <= -TeacherConfig().comfortable_decel < free


def test_cloning_raises_held_out_agreement_with_the_teacher():
    torch.manual_seed(0)
    cfg = load_config('tiny', {'bev_size': 32})
    world_model = WorldModel(cfg).eval()
    actor_critic = ActorCritic(cfg, cfg.feat_dim, cfg.num_actions)
    settings = CollectConfig.from_mapping({**load_train_config(), 'mode': 'lsi'})
    scenario = {**load_yaml('scenarios/two_lane.yaml'), 'num_background': 6}
    with MultiVehicleEnv.from_scenario(scenario) as env:
        collector = TeacherCollector(env, world_model, settings, seed=3)
        features, actions = collect_pairs(collector, 150)
    assert features.shape[0] == actions.shape[0] >= 150
    assert len(torch.unique(actions)) >= 2         # the teacher does more than one thing
    figures = clone_actor(actor_critic, features, actions,
                          CloneConfig(epochs=30, batch=64, lr=3e-3, holdout=0.2),
                          braking_actions(ActionSet()))
    assert figures['heldout_agreement'] > figures['heldout_agreement_before']
    assert figures['heldout_agreement'] >= figures['majority_baseline'] - 0.05


@pytest.mark.parametrize('kwargs', [{'steps': 0}, {'holdout': 1.0}])
def test_bad_clone_config_fails_fast(kwargs):
    with pytest.raises(ValueError):
        CloneConfig(**kwargs)

"""
The L preset's parameter count, and the figure the README states for it.

Why: the paper's model is "77 M parameters"; our L preset follows its Table 5 sizes and comes
out at 79.7 M (world model) and 92.5 M with the actor-critic. The README must say the count
the code builds, so this test builds the preset (on the meta device: shapes only, no memory,
no training) and reads the README.
"""
import os
import re

from call_world_model.actor_critic import ActorCritic
from call_world_model.config import load_config
from call_world_model.world_model import WorldModel
import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
L_WORLD_MODEL = 79_737_671
L_ACTOR_CRITIC = 12_808_461


def parameter_counts(preset: str, device: str = 'meta') -> tuple:
    """(world-model, actor-critic) parameter counts of a preset, built on ``device``."""
    cfg = load_config(preset)
    with torch.device(device):
        world_model = WorldModel(cfg)
        actor_critic = ActorCritic(cfg, cfg.feat_dim, cfg.num_actions)
    return (sum(p.numel() for p in world_model.parameters()),
            sum(p.numel() for p in actor_critic.parameters()))


def test_meta_device_counts_what_a_real_build_has():
    torch.manual_seed(0)
    assert parameter_counts('tiny') == parameter_counts('tiny', device='cpu')


def test_l_preset_parameter_count():
    world_model, actor_critic = parameter_counts('L')
    assert (world_model, actor_critic) == (L_WORLD_MODEL, L_ACTOR_CRITIC)


def test_readme_states_the_l_preset_count():
    with open(os.path.join(ROOT, 'README.md'), encoding='utf-8') as handle:
        text = handle.read()
    line = next((x for x in text.splitlines() if '--preset L' in x), None)
    assert line is not None, 'README.md no longer mentions --preset L'
    figures = [float(x) for x in re.findall(r'(\d+(?:\.\d+)?) M\b', line)]
    assert round(L_WORLD_MODEL / 1e6, 1) in figures, line
    assert round((L_WORLD_MODEL + L_ACTOR_CRITIC) / 1e6, 1) in figures, line

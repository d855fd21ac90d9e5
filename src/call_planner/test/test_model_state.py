"""Rebuilding the world-model state from LatentState fields."""
from call_planner.lookahead import plan
from call_planner.model_state import imagination_kwargs, state_from_latent
import numpy as np
import pytest
import torch

torch.set_num_threads(1)


def test_state_is_h_and_the_one_hot_of_z():
    z = np.arange(32, dtype=np.uint8)[::-1].copy()
    h = np.linspace(-1.0, 1.0, 16).astype(np.float32)
    state = state_from_latent(z, h, stoch=32, classes=32)
    assert state['deter'].shape == (1, 16)
    np.testing.assert_array_equal(state['deter'][0].numpy(), h)
    assert state['stoch'].shape == (1, 32, 32)
    np.testing.assert_array_equal(state['stoch'][0].argmax(-1).numpy(), z)
    assert float(state['stoch'].sum()) == 32.0


def test_wrong_latent_count_is_rejected():
    with pytest.raises(ValueError):
        state_from_latent(np.zeros(31, np.uint8), np.zeros(16, np.float32), 32, 32)


def test_rebuilt_state_plans_with_the_real_world_model():
    from call_world_model.actor_critic import ActorCritic
    from call_world_model.config import load_config
    from call_world_model.world_model import WorldModel
    torch.manual_seed(0)
    cfg = load_config('tiny')
    model = WorldModel(cfg).eval()
    actor = ActorCritic(cfg, cfg.feat_dim, cfg.num_actions).eval()
    posterior = model.initial_state(1)
    z = posterior['stoch'][0].argmax(-1).numpy().astype(np.uint8)
    h = posterior['deter'][0].detach().numpy()
    rebuilt = state_from_latent(z, h, cfg.stoch, cfg.classes)
    kwargs = imagination_kwargs(model, sample_latent=False)
    assert kwargs['shared_vec'].shape == (1, cfg.shared_dim)
    direct = plan(model, actor, {k: v.detach() for k, v in posterior.items()},
                  cfg.num_actions, 4, 0.99, imagine_kwargs={'sample': False})
    via_msg = plan(model, actor, rebuilt, cfg.num_actions, 4, 0.99, imagine_kwargs=kwargs)
    # the initial prior's z is its mode, so the message round trip loses nothing
    np.testing.assert_allclose(via_msg.scores, direct.scores, atol=1e-5)
    assert via_msg.actions == direct.actions

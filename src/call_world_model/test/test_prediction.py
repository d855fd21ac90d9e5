"""Prediction error E: zero for a perfect model, grows with surprise and plan changes."""
from call_world_model.prediction import (latent_l1, PredictionErrorTracker, waypoint_change,
                                         waypoint_changes)
from call_world_model.world_model import WorldModel
from helpers_wm import tiny_config
import numpy as np
import pytest
import torch


def test_latent_l1_range():
    a = torch.full((1, 32, 32), -1e9)
    b = a.clone()
    a[..., 0] = 0.0
    b[..., 1] = 0.0
    assert float(latent_l1(a, a)) == 0.0
    assert float(latent_l1(a, b)) == pytest.approx(64.0)
    # the same surprise on every latent means the same E whatever the number of latents
    many_a = torch.full((1, 128, 32), -1e9)
    many_b = many_a.clone()
    many_a[..., 0] = 0.0
    many_b[..., 1] = 0.0
    assert float(latent_l1(many_a, many_b)) == pytest.approx(64.0)
    many_b[..., 32:, :] = many_a[..., 32:, :]  # a quarter of the latents disagree
    assert float(latent_l1(many_a, many_b)) == pytest.approx(16.0)


def test_waypoint_change():
    plan = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    assert waypoint_change(plan, plan) == 0.0
    assert waypoint_change(plan, plan + [0.0, 3.0]) == pytest.approx(3.0)
    assert waypoint_change(None, plan) == 0.0


def test_stacked_waypoint_changes_equal_one_by_one():
    """The stacked form gives each plan's change bit for bit, whatever the mix of shapes."""
    rng = np.random.default_rng(4)
    for _ in range(3000):
        m = int(rng.integers(0, 25))
        current = None if rng.random() < 0.03 else rng.normal(0.0, 50.0, (m, 2))
        sizes = rng.integers(0, 25, 3)
        previous = []
        for _ in range(int(rng.integers(0, 7))):
            if rng.random() < 0.1:
                previous.append(None)
                continue
            plan = rng.normal(0.0, 50.0, (int(rng.choice(sizes)), 2))
            if rng.random() < 0.3 and current is not None and len(plan) == m:
                plan = current + rng.normal(0.0, 1e-3, current.shape)   # a kept plan
            previous.append(plan)
        expected = [waypoint_change(p, current) for p in previous]
        got = waypoint_changes(previous, current)
        assert np.array(got).tobytes() == np.array(expected, dtype=np.float64).tobytes()
        assert all(type(value) is float for value in got)


def test_tracker_perfect_predictions_give_zero_then_surprise_is_positive():
    torch.manual_seed(0)
    model = WorldModel(tiny_config())
    tracker = PredictionErrorTracker(3, model)
    state = model.initial_state(1)
    ready_seen = False
    with torch.no_grad():
        for _ in range(5):
            # feed the model's own mode prediction as the "posterior": E must be 0
            action = torch.tensor([2])
            error, ready = tracker.update(state, 2)
            assert error == pytest.approx(0.0, abs=1e-4)
            ready_seen |= ready
            state = model.imagine_step(state, action, sample=False)
        assert ready_seen
        surprise = {k: v.clone() for k, v in state.items()}
        surprise['logits'] = torch.roll(surprise['logits'], 5, -1)
        error, ready = tracker.update(surprise, 2)
    assert ready and 0.0 < error <= 64.0 + 1e-3
    tracker.reset()
    assert tracker.update(state, 2) == (0.0, False)

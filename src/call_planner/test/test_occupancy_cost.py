"""
The occupancy cost decodes what the full decoder decodes, and both look-ahead paths charge it.

Also: a footprint covered by predicted vehicles costs what the formula says.

That the cost makes a trained planner brake for a crossing vehicle needs a trained model
(a random decoder predicts no vehicles); the safety monitor's tests cover braking.
"""
from call_planner.indexed_lookahead import IndexedLookahead
from call_planner.lookahead import plan
from call_planner.occupancy_cost import full_window, OccupancyConfig, OccupancyCost
import pytest
from test_indexed_lookahead import _models as seeded_models
import torch

torch.set_num_threads(1)


def _models(preset, seed=0, overrides=None):
    return seeded_models(seed, preset=preset, overrides=overrides)


def _states(cfg, batch, seed):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randint(0, cfg.classes, (batch, cfg.stoch), generator=gen)
    return {'deter': torch.tanh(torch.randn(batch, cfg.deter, generator=gen)),
            'stoch': torch.nn.functional.one_hot(z, cfg.classes).float()}, z


@pytest.mark.parametrize('preset, overrides', [
    ('tiny', {}), ('tiny', {'decoder_input': 'spatial', 'stoch': 64}),
    ('tiny', {'image_pos_weight': 4.0}), ('small64g8', {})])
def test_window_equals_the_full_decode_from_features_and_from_indices(preset, overrides):
    cfg, model, _ = _models(preset, overrides=overrides)
    config = OccupancyConfig()
    cost = OccupancyCost(model, config)
    states, z = _states(cfg, 6, 1)
    with torch.inference_mode():
        reference = full_window(model, states, config)
        from_features = cost.window(model.features(states))
        from_indices = cost.window.from_indices(states['deter'], z, cfg.stoch, cfg.classes)
        probs = model.bev_probs(states)[:, [3, 4]]
    rows, cols = config.footprint(cfg.bev_size)
    assert reference.std() > 1e-3
    assert from_features == pytest.approx(reference, abs=1e-4)
    assert from_indices == pytest.approx(reference, abs=1e-4)
    # the overlap is the mean over the footprint of P(another vehicle) from calibrated probs
    window = probs[:, :, rows[0]:rows[1] + 1, cols[0]:cols[1] + 1].flatten(2)
    expected = (1 - (1 - window).prod(1)).mean(1)
    assert cost.overlap_from_logits(from_features) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize('preset, overrides, row, col', [
    ('tiny', {}, 0.02, 0.98), ('tiny', {}, 0.97, 0.03),
    ('small64g8', {}, 0.01, 0.5), ('tiny', {'decoder_input': 'spatial', 'stoch': 64}, 0.5, 0.0)])
def test_a_window_at_the_image_border_reads_zeros_outside_it(preset, overrides, row, col):
    """Taps outside the image read the zero row, for each batch size the window has seen."""
    cfg, model, _ = _models(preset, overrides=overrides)
    config = OccupancyConfig(margin=1.0, ego_row_fraction=row, ego_col_fraction=col)
    cost = OccupancyCost(model, config)
    assert any(stage.reads_zero for stage in cost.window.stages)     # the path under test
    for batch in (5, 1, 5):
        states, z = _states(cfg, batch, batch)
        with torch.inference_mode():
            reference = full_window(model, states, config)
            got = cost.window.from_indices(states['deter'], z, cfg.stoch, cfg.classes)
        assert reference.std() > 1e-3
        assert got == pytest.approx(reference, abs=1e-4)
    # outside inference mode too, from features that require gradients: the same logits
    features = model.features(states).requires_grad_()
    with torch.inference_mode():
        expected = cost.window(features.detach())
    assert torch.equal(cost.window(features), expected)


def test_footprint_covers_the_ego_box_with_its_margin():
    rows, cols = OccupancyConfig(margin=0.5).footprint(128)   # 0.5 m/px, ego at (80, 64)
    assert rows == (74, 86) and cols == (61, 67)       # 5.8 m x 3.0 m around the ego centre
    rows, cols = OccupancyConfig(margin=0.0).footprint(64)    # 1 m/px, ego at (40, 32)
    assert rows == (38, 42) and cols == (31, 33)


@pytest.mark.parametrize('seed', range(3))
def test_indexed_and_reference_look_ahead_charge_the_same_cost(seed):
    cfg, model, actor = _models('tiny', seed)
    cost = OccupancyCost(model, OccupancyConfig(weight=50.0, every=1))
    state, _ = _states(cfg, 1, 100 + seed)
    kwargs = {'sample': False}
    without = plan(model, actor, state, cfg.num_actions, 5, 0.997, imagine_kwargs=kwargs)
    ref = plan(model, actor, state, cfg.num_actions, 5, 0.997, imagine_kwargs=kwargs,
               occupancy=cost)
    got = IndexedLookahead(model, actor, cost).plan(state, cfg.num_actions, 5, 0.997,
                                                    imagine_kwargs=kwargs)
    assert (without.scores - ref.scores).min() > 1e-3      # the cost is charged
    assert got.scores == pytest.approx(ref.scores, abs=1e-4)
    assert (got.first_action, got.actions) == (ref.first_action, ref.actions)


def test_decoding_every_other_step_counts_back_from_k():
    cfg, model, _ = _models('tiny')
    assert OccupancyCost(model, OccupancyConfig(every=2)).decoded_steps(5) == [0, 2, 4]
    assert OccupancyCost(model, OccupancyConfig(every=5)).decoded_steps(5) == [4]
    assert OccupancyCost(model, OccupancyConfig(every=1)).decoded_steps(3) == [0, 1, 2]
    assert OccupancyCost(model, OccupancyConfig()).decoded_steps(5) == [4]     # default


def test_a_fully_covered_footprint_costs_the_weight_per_step_times_its_weights():
    cfg, model, actor = _models('tiny', 3)
    state, _ = _states(cfg, 1, 7)
    kwargs = {'sample': False}
    base = plan(model, actor, state, cfg.num_actions, 3, 0.997, imagine_kwargs=kwargs)
    cost = OccupancyCost(model, OccupancyConfig(weight=100.0, every=1))
    with torch.no_grad():
        model.heads['decoder'].net[-1].bias[[3, 4]] = 8.0     # a vehicle on every pixel
    cost.window.refresh()
    flooded = plan(model, actor, state, cfg.num_actions, 3, 0.997, imagine_kwargs=kwargs,
                   occupancy=cost)
    # step 0 weighs 1, steps 1 and 2 gamma^k times the continue probabilities before them
    drop = base.scores - flooded.scores
    assert drop.min() > 99.0 and drop.max() < 300.0


@pytest.mark.parametrize('kwargs', [{'weight': -1.0}, {'every': 0}, {'ego_length': 0.0}])
def test_bad_occupancy_config_fails_fast(kwargs):
    with pytest.raises(ValueError):
        OccupancyConfig(**kwargs)

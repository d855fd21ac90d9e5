"""Config presets load and bad values fail with a reason."""
from call_world_model.config import load_config, WorldModelConfig
import pytest


def test_presets_load_and_paper_values():
    for name in ('tiny', 'small', 'L'):
        cfg = load_config(name)
        assert cfg.stoch == 32 and cfg.classes == 32
        assert (cfg.pred_scale, cfg.dyn_scale, cfg.rep_scale) == (1.0, 0.5, 0.1)
        assert (cfg.horizon, cfg.gamma, cfg.lam) == (15, 0.997, 0.95)
    large = load_config('L')
    assert (large.deter, large.cnn_depth, large.hidden, large.mlp_layers) == (2048, 64, 768, 4)


def test_small64_is_small_at_half_resolution():
    """small64 changes only the BEV size and the CNN stages that size needs."""
    small, half = load_config('small').to_dict(), load_config('small64').to_dict()
    assert (half['bev_size'], half['cnn_mults'], half['minres']) == (64, [1, 2, 4, 8], 4)
    differing = {k for k in small if small[k] != half[k]}
    assert differing == {'bev_size', 'cnn_mults'}


def test_round_trip_dict():
    cfg = load_config('tiny')
    assert WorldModelConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize('overrides, reason', [
    ({'no_such_key': 1}, 'unknown'),
    ({'deter': 0}, 'deter'),
    ({'deter': 'big'}, 'deter'),
    ({'gamma': 1.5}, 'gamma'),
    ({'cnn_mults': [1, 2]}, 'cnn_mults'),
    ({'bev_size': 48}, 'bev_size'),
    ({'lr': float('nan')}, 'lr'),
    ({'condition_sequence_model': 'no'}, 'condition_sequence_model'),
    ({'condition_sequence_model': 0}, 'condition_sequence_model'),
    ({'deter': True}, 'deter'),
])
def test_bad_values_raise(overrides, reason):
    with pytest.raises(ValueError, match=reason):
        load_config('tiny', overrides)


def test_small64g8c_ships_under_5mb_with_small64g8_convs():
    """small64g8c: float16 under 5 MB, and small64g8's conv weights fit it (warm start)."""
    from call_world_model.world_model import WorldModel
    compact, wide = WorldModel(load_config('small64g8c')), WorldModel(load_config('small64g8'))
    assert 2 * sum(p.numel() for p in compact.parameters()) < 5_000_000
    convs = {k: v.shape for k, v in wide.state_dict().items()
             if k.startswith(('encoder.', 'heads.decoder.net'))}
    assert convs and all(compact.state_dict()[k].shape == shape for k, shape in convs.items())


def test_unknown_preset():
    with pytest.raises(ValueError, match='preset'):
        load_config('XXL')


def test_sequence_model_conditioning_flag():
    """Presets use eq. 11 f(h, z, a); a config without the key (old checkpoint) is legacy."""
    for preset in ('tiny', 'small', 'L'):
        assert load_config(preset).condition_sequence_model is False
    assert load_config('tiny', {'condition_sequence_model': True}).condition_sequence_model
    legacy = load_config('tiny').to_dict()
    del legacy['condition_sequence_model']
    assert WorldModelConfig.from_dict(legacy).condition_sequence_model is True

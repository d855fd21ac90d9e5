"""Options ``decoder_input: spatial`` and ``obs_layers``: layout, locality, training, loading."""
from call_world_model.config import load_config, WorldModelConfig
from call_world_model.networks import ConvDecoder
from call_world_model.world_model import WorldModel
from helpers_wm import assert_trains_and_predicts, random_batch, tiny_config
import pytest
import torch


def _spatial_decoder(minres=4, latents=32, classes=32, deter=8):
    torch.manual_seed(0)
    return ConvDecoder(deter + latents * classes, 7, 4, (1, 2, 4), minres,
                       spatial_dim=latents * classes)


def test_spatial_decoder_keeps_a_cells_latents_local():
    """Latents of the top-left cell change the top-left of the image, not the far corner."""
    decoder = _spatial_decoder()
    feat = torch.zeros(1, 8 + 1024)
    feat[0, 8::32] = 1.0                      # every latent one-hot on class 0
    changed = feat.clone()
    changed[0, 8:8 + 64] = 0.0                # cell (0, 0) holds latents 0 and 1
    changed[0, 8 + 5] = changed[0, 8 + 32 + 9] = 1.0
    with torch.no_grad():
        diff = (decoder(changed) - decoder(feat)).abs().amax(1)[0]   # (32, 32)
    assert float(diff[:4, :4].max()) > 1e-3
    assert float(diff[16:, :].max()) == 0.0 and float(diff[:, 16:].max()) == 0.0


def test_spatial_decoder_still_reads_h_densely():
    """The leading (h) features go through the linear and reach every pixel."""
    decoder = _spatial_decoder()
    feat = torch.zeros(1, 8 + 1024)
    changed = feat.clone()
    changed[0, 0] = 1.0
    with torch.no_grad():
        diff = (decoder(changed) - decoder(feat)).abs().amax(1)[0]
    assert float(diff[:4, :4].max()) > 0.0 and float(diff[-4:, -4:].max()) > 0.0


def test_dense_decoder_is_unchanged_for_old_checkpoints():
    """spatial_dim 0 keeps the parameter names and shapes call_small.pt was saved with."""
    decoder = ConvDecoder(40, 7, 4, (1, 2, 4), 4)
    assert decoder.cell_project is None
    assert decoder.project.weight.shape == (16 * 16, 40)
    assert not any(name.startswith('cell_project') for name in decoder.state_dict())
    with pytest.raises(ValueError, match='spatial_dim'):
        ConvDecoder(40, 7, 4, (1, 2, 4), 4, spatial_dim=24)


def test_obs_layers_sets_the_posterior_depth():
    default = WorldModel(tiny_config())
    assert [type(m).__name__ for m in default.rssm.obs_out] == ['LinearNormAct', 'Linear']
    direct = WorldModel(tiny_config(obs_layers=0))
    assert [type(m).__name__ for m in direct.rssm.obs_out] == ['Linear']
    assert direct.rssm.obs_out[0].in_features == default.rssm.obs_out[0][0].in_features


def test_config_validates_the_new_keys():
    with pytest.raises(ValueError, match='obs_layers'):
        load_config('tiny', {'obs_layers': -1})
    with pytest.raises(ValueError, match='decoder_input'):
        load_config('tiny', {'decoder_input': 'sparse'})
    with pytest.raises(ValueError, match='stoch'):
        load_config('tiny', {'decoder_input': 'spatial', 'stoch': 24})
    legacy = load_config('tiny').to_dict()
    del legacy['obs_layers'], legacy['decoder_input']
    cfg = WorldModelConfig.from_dict(legacy)     # a checkpoint written before the keys
    assert (cfg.obs_layers, cfg.decoder_input) == (1, 'dense')


def test_spatial_world_model_trains_and_predicts():
    """A spatial, single-layer-posterior model gets gradients everywhere and lowers its loss."""
    torch.manual_seed(0)
    model = WorldModel(tiny_config(decoder_input='spatial', obs_layers=0, lr=3e-3))
    batch = random_batch(model.cfg, batch=2, steps=4)
    loss, _, _ = model.loss(batch)
    loss.backward()
    for name, part in (('encoder', model.encoder), ('obs_out', model.rssm.obs_out),
                       ('decoder', model.heads['decoder'])):
        for pname, p in part.named_parameters():   # a gradient that is there and not zero
            assert p.grad is not None and bool(p.grad.abs().sum() > 0), f'{name}.{pname}'
            assert bool(torch.isfinite(p.grad).all()), f'{name}.{pname}'
    assert model.heads['decoder'].cell_project.weight.grad.abs().sum() > 0
    assert_trains_and_predicts(model, batch)


def test_small64s_differs_from_small64_only_in_the_vehicle_options():
    base, spatial = load_config('small64').to_dict(), load_config('small64s').to_dict()
    differing = {k for k in base if base[k] != spatial[k]}
    assert differing == {'stoch', 'obs_layers', 'decoder_input'}
    cfg = load_config('small64s')
    assert (cfg.stoch, cfg.obs_layers, cfg.decoder_input) == (64, 0, 'spatial')
    decoder = WorldModel(cfg).heads['decoder']
    assert decoder.cell_project.in_channels == cfg.stoch_flat // cfg.minres ** 2

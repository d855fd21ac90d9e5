"""Option ``obs_input: local``: per-cell posterior logits, layout, validation, training."""
from call_world_model.config import load_config, WorldModelConfig
from call_world_model.world_model import WorldModel
from helpers_wm import assert_trains_and_predicts, random_batch, tiny_config
import pytest
import torch


def _local_model(**overrides):
    torch.manual_seed(0)
    return WorldModel(tiny_config(decoder_input='spatial', obs_input='local', **overrides))


def test_cell_logits_keep_a_cells_embedding_on_its_latents():
    """Only the latents the spatial decoder puts on cell (i, j) read that cell's embedding."""
    model = _local_model()
    cfg, rssm = model.cfg, model.rssm
    cells = cfg.minres * cfg.minres
    per_cell = cfg.stoch // cells
    channels = model.encoder.out_dim // cells
    for row, col in ((0, 0), (1, 2), (cfg.minres - 1, cfg.minres - 1)):
        grid = torch.zeros(1, channels, cfg.minres, cfg.minres)
        grid[0, :, row, col] = torch.randn(channels)
        with torch.no_grad():
            logits = rssm.cell_logits(grid.flatten(1)).reshape(cfg.stoch, cfg.classes)
        cell = row * cfg.minres + col
        touched = logits.abs().amax(-1) > 0
        expected = torch.zeros(cfg.stoch, dtype=torch.bool)
        expected[cell * per_cell:(cell + 1) * per_cell] = True
        assert torch.equal(touched, expected), (row, col)


def test_local_posterior_reads_h_and_context_densely():
    """[h, c] still reach every latent; the embedding enters only through the 1x1 conv."""
    model = _local_model()
    cfg, rssm = model.cfg, model.rssm
    assert rssm.obs_out[0][0].in_features == cfg.deter + cfg.shared_dim + cfg.intention_dim
    state = model.initial_state(1)
    embed = torch.zeros(1, model.encoder.out_dim)
    shared = torch.zeros(1, cfg.shared_dim)
    intent = torch.zeros(1, cfg.intention_dim)
    action = torch.zeros(1, dtype=torch.long)
    first = torch.zeros(1, dtype=torch.bool)
    with torch.no_grad():
        base, _ = rssm.obs_step(state, action, embed, first, shared, intent, sample=False)
        moved = dict(state, deter=state['deter'] + 0.5)
        other, _ = rssm.obs_step(moved, action, embed, first, shared, intent, sample=False)
    changed = (other['logits'] - base['logits']).abs().amax(-1) > 0
    assert bool(changed.all())


def test_dense_posterior_is_unchanged_for_old_checkpoints():
    """obs_input dense keeps the parameter names and shapes of earlier checkpoints."""
    model = WorldModel(tiny_config())
    assert model.rssm.obs_cell is None
    assert not any('obs_cell' in name for name in model.state_dict())
    cfg = model.cfg
    in_features = cfg.deter + model.encoder.out_dim + cfg.shared_dim + cfg.intention_dim
    assert model.rssm.obs_out[0][0].in_features == in_features
    legacy = load_config('tiny').to_dict()
    del legacy['obs_input']
    assert WorldModelConfig.from_dict(legacy).obs_input == 'dense'


def test_config_validates_obs_input():
    """Unknown values and a local posterior without the spatial decoder are rejected."""
    with pytest.raises(ValueError, match='obs_input'):
        load_config('tiny', {'obs_input': 'global'})
    with pytest.raises(ValueError, match='spatial'):
        load_config('tiny', {'obs_input': 'local'})


def test_local_world_model_trains_and_predicts():
    """Gradients reach the per-cell conv and the encoder; the image loss falls."""
    model = _local_model(lr=3e-3)
    batch = random_batch(model.cfg, batch=2, steps=4)
    loss, _, _ = model.loss(batch)
    loss.backward()
    for name, part in (('encoder', model.encoder), ('obs_cell', model.rssm.obs_cell),
                       ('obs_out', model.rssm.obs_out)):
        assert all(p.grad is not None and p.grad.abs().sum() > 0
                   for p in part.parameters()), name
    assert_trains_and_predicts(model, batch)


def test_small64g8_is_small64_on_an_8x8_grid_with_local_latents():
    """The preset changes only the grid, the latent count and the two layout options."""
    base, grid8 = load_config('small64').to_dict(), load_config('small64g8').to_dict()
    differing = {k for k in base if base[k] != grid8[k]}
    assert differing == {'cnn_mults', 'minres', 'stoch', 'decoder_input', 'obs_input'}
    cfg = load_config('small64g8')
    assert (cfg.minres, cfg.stoch, cfg.classes, cfg.unimix) == (8, 128, 32, 0.01)
    model = WorldModel(cfg)
    assert model.rssm.obs_cell.out_channels == 2 * cfg.classes
    assert model.heads['decoder'].cell_project.in_channels == 2 * cfg.classes

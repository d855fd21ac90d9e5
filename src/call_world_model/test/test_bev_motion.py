"""The BEV motion head starts as copy-last, moves mass as told, and loads only when it fits."""
from call_world_model import checkpoint
from call_world_model.actor_critic import ActorCritic
from call_world_model.bev_motion import (BevMotionHead, HEAD_KEY, load_head, MotionHeadConfig,
                                         save_into, splat)
from call_world_model.bev_prediction import Observed, predict_k_steps
from call_world_model.world_model import WorldModel
from helpers_wm import tiny_config
import pytest
import torch

HORIZONS = (0, 1, 5, 30)
IDENTITY = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def _context(cfg: MotionHeadConfig, batch: int = 3, seed: int = 0, still: bool = False):
    gen = torch.Generator().manual_seed(seed)
    frames = (torch.rand(batch, cfg.context, cfg.bev_channels, cfg.bev_size, cfg.bev_size,
                         generator=gen) > 0.8).float()
    if still:  # the same frame throughout: nothing moves
        frames = frames[:, -1:].expand_as(frames).contiguous()
    return frames


def _poses(batch: int, count: int) -> torch.Tensor:
    return IDENTITY.expand(batch, count, 2, 3).clone()


@pytest.fixture(scope='module')
def world_model_file(tmp_path_factory):
    cfg = tiny_config()
    torch.manual_seed(0)
    model = WorldModel(cfg)
    path = str(tmp_path_factory.mktemp('wm') / 'wm.pt')
    checkpoint.save(path, model, ActorCritic(cfg, cfg.feat_dim, cfg.num_actions), cfg, step=0,
                    optimizers=False)
    return path, model


def test_untrained_head_is_copy_last_on_a_still_scene():
    torch.manual_seed(0)
    cfg = MotionHeadConfig(bev_size=32, context=4, width=8)
    head = BevMotionHead(cfg)
    ctx = _context(cfg, still=True)
    with torch.no_grad():
        out = head(ctx, _poses(3, cfg.context), _poses(3, len(HORIZONS)), HORIZONS)
    assert out.shape == (3, len(HORIZONS), cfg.bev_channels, 32, 32)
    last = ctx[:, -1:].expand_as(out)
    moved = list(cfg.moved_channels)
    # nothing moved and the ego stands still: every horizon is the last frame (the vehicles
    # bit for bit), although the residual net's hidden layers are random: only its zero last
    # layer makes it so
    assert torch.equal(out[:, :, moved], last[:, :, moved])
    assert torch.allclose(out, last, atol=1e-5)


def _moving_box(cfg: MotionHeadConfig, speed: float) -> torch.Tensor:
    """Draw a 4 x 2 px box moving down the rows at ``speed`` px / step (centres inside)."""
    ctx = torch.zeros(1, cfg.context, cfg.bev_channels, cfg.bev_size, cfg.bev_size)
    rows = torch.arange(cfg.bev_size, dtype=torch.float32)
    for i in range(cfg.context):
        top = 8.0 + speed * i
        cover = ((rows + 0.5).clamp(top, top + 4) - (rows - 0.5).clamp(top, top + 4))
        ctx[0, i, 3, :, 10:12] = (cover > 0.5).float()[:, None]  # rasterised: centre inside
    return ctx


def _centre_row(mask: torch.Tensor) -> float:
    rows = torch.arange(mask.shape[-2], dtype=torch.float32)[:, None]
    return float((mask * rows).sum() / mask.sum())


def test_a_moving_vehicle_moves_on():
    # refined flow (one linearised pass underestimates a 3.75 px displacement)
    cfg = MotionHeadConfig(bev_size=32, context=16, width=8, iterations=5)
    head = BevMotionHead(cfg)
    ctx = _moving_box(cfg, 0.25)  # 3.75 px over the context: 15 steps of 0.25 px
    with torch.no_grad():
        out = head(ctx, _poses(1, cfg.context), _poses(1, 2), (0, 8))
    start = _centre_row(ctx[0, -1, 3])
    moved = _centre_row(out[0, 1, 3] > 0.5)
    assert moved - start == pytest.approx(8 * 0.25, abs=0.6)
    # the ego's own motion: a pose 3 px further down the rows shifts everything by 3 px
    ego = _poses(1, 2)
    ego[0, 1, 1, 2] = -3.0
    with torch.no_grad():
        seen = head(ctx, _poses(1, cfg.context), ego, (0, 8))
    assert _centre_row(seen[0, 1, 3] > 0.5) - moved == pytest.approx(-3.0, abs=0.01)


def test_splat_moves_mass_by_the_displacement():
    values = torch.zeros(1, 1, 8, 8)
    values[0, 0, 2, 3] = 1.0
    shift = torch.zeros(1, 2, 8, 8)
    shift[:, 0], shift[:, 1] = 2.0, -1.0  # two rows down, one column left
    moved = splat(values, shift)
    assert moved[0, 0, 4, 2] == 1.0 and moved.sum() == 1.0
    shift[:, 0] = 0.5  # half a row: shared by two rows
    half = splat(values, shift)
    assert half[0, 0, 2, 2] == pytest.approx(0.5) and half[0, 0, 3, 2] == pytest.approx(0.5)
    shift[:, 1] = -4.0  # off the image: the mass is dropped, not wrapped
    assert splat(values, shift).sum() == 0.0


def test_checkpoint_round_trip_and_fail_fast(world_model_file, tmp_path):
    path, model = world_model_file
    head_cfg = MotionHeadConfig.for_world_model(model.cfg, context=3, width=8)
    torch.manual_seed(3)
    head = BevMotionHead(head_cfg)
    with torch.no_grad():
        head.velocity_out.weight.normal_(0.0, 0.1)
    with_head = str(tmp_path / 'with_head.pt')
    save_into(path, with_head, head)
    loaded = load_head(with_head, model.cfg)
    args = (_context(head_cfg, seed=4), _poses(3, 3), _poses(3, len(HORIZONS)), HORIZONS)
    # float16 storage: the same prediction up to half-precision rounding of the weights
    with torch.no_grad():
        assert torch.allclose(loaded(*args), head(*args), atol=2e-2)
    # the world model loads from the same file as ever
    checkpoint.load(with_head, load_optimizers=False)

    with pytest.raises(checkpoint.CheckpointError, match='carries no motion head'):
        load_head(path, model.cfg)
    other = tiny_config(bev_size=64, cnn_mults=[1, 2, 4, 8])
    with pytest.raises(checkpoint.CheckpointError, match='does not fit'):
        load_head(with_head, other)
    payload = torch.load(with_head, weights_only=True)
    payload[HEAD_KEY]['config']['width'] = 16  # weights of width 8 under a width-16 config
    torch.save(payload, str(tmp_path / 'bad_width.pt'))
    with pytest.raises(checkpoint.CheckpointError, match='weights do not fit'):
        load_head(str(tmp_path / 'bad_width.pt'), model.cfg)
    payload = torch.load(with_head, weights_only=True)
    payload[HEAD_KEY]['state']['velocity_out.bias'][0] = float('nan')
    torch.save(payload, str(tmp_path / 'nan.pt'))
    with pytest.raises(checkpoint.CheckpointError, match='not finite'):
        load_head(str(tmp_path / 'nan.pt'), model.cfg)
    payload = torch.load(with_head, weights_only=True)
    payload[HEAD_KEY]['format'] = 99
    torch.save(payload, str(tmp_path / 'format.pt'))
    with pytest.raises(checkpoint.CheckpointError, match='format'):
        load_head(str(tmp_path / 'format.pt'), model.cfg)


def test_one_prediction_function_for_decoder_and_head(world_model_file):
    _, model = world_model_file
    model.eval()
    cfg = model.cfg
    head = BevMotionHead(MotionHeadConfig.for_world_model(cfg, context=2, width=8))
    start = model.initial_state(2)
    acts = torch.randint(0, cfg.num_actions, (2, 5))
    decoded = predict_k_steps(model, start, acts, (0, 5))
    assert torch.allclose(decoded[:, 0], model.bev_probs(start))
    frames = (torch.rand(2, 1, cfg.bev_channels, cfg.bev_size, cfg.bev_size) > 0.8)
    ctx = frames.expand(2, 2, -1, -1, -1).to(torch.uint8)  # still scene, uint8 masks
    observed = Observed(ctx, _poses(2, 2), _poses(2, 2))
    moved = predict_k_steps(model, start, acts, (0, 5), head, observed)
    assert torch.allclose(moved, ctx[:, -1:].float().expand_as(moved), atol=1e-5)
    with pytest.raises(ValueError, match='context'):
        predict_k_steps(model, start, acts, (0, 5), head)

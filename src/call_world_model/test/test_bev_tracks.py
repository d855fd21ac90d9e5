"""The blob tracker finds each vehicle's velocity, and the head moves it there."""
from dataclasses import replace

from call_world_model.bev_motion import (BevMotionHead, HEAD_KEY, load_head, MotionHeadConfig,
                                         save_into)
from call_world_model.bev_tracks import track_velocities
import numpy as np
import pytest
import torch

SIZE = 48
CONTEXT = 16
IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def _box(mask: np.ndarray, row: float, col: float, length: float = 4.6, width: float = 1.9):
    """Rasterise an axis-aligned box (pixel centres inside), centre (row, col), in place."""
    rows = np.arange(mask.shape[0])[:, None]
    cols = np.arange(mask.shape[1])[None, :]
    mask |= (np.abs(rows - row) < length / 2) & (np.abs(cols - col) < width / 2)


def _stack(vehicles, ego_rows: float = 0.0):
    """
    Return masks (T, S, S) of vehicles [(row, col, v_row, v_col) at t0] and frame affines.

    The ego drives ``ego_rows`` px per step up the image, each frame is drawn in its own ego
    frame, and the affines take each frame into the t0 frame.
    """
    masks = np.zeros((CONTEXT, SIZE, SIZE), dtype=bool)
    affines = np.repeat(IDENTITY[None], CONTEXT, 0)
    for i in range(CONTEXT):
        tau = i - (CONTEXT - 1)  # <= 0
        # the ego is tau * ego_rows px further up at step tau: a map point sits lower in its
        # frame, by -tau * ego_rows rows; the affine takes that frame back into the t0 frame
        shift = -tau * ego_rows
        for row, col, v_row, v_col in vehicles:
            _box(masks[i], row + tau * v_row + shift, col + tau * v_col)
        affines[i, 1, 2] = -shift
    return masks, affines


def test_a_vehicle_at_constant_velocity_gets_its_velocity():
    masks, affines = _stack([(30.0, 20.0, 0.3, -0.1)])
    # sliding across the grid both ways, its raster is 4-5 rows by 1-2 columns: an area that
    # changes by up to 2.5x, so the test allows that much
    labels, velocity, tracked = track_velocities(masks, affines, 3.0, CONTEXT, 3, 2.5)
    assert tracked.tolist() == [True]
    assert velocity[0] == pytest.approx([0.3, -0.1], abs=0.03)
    assert labels.max() == 1 and (labels == 1).sum() == masks[-1].sum()


def test_the_ego_motion_is_taken_out_by_the_affines():
    # a vehicle 0.25 px / step slower than an ego driving 0.75 px / step: in the ego's own
    # frames it drifts down the image at 0.75 + ... ; in the t0 reference frame only its
    # motion relative to the ground-fixed frame remains
    masks, affines = _stack([(20.0, 24.0, 0.25, 0.0)], ego_rows=0.75)
    _, velocity, tracked = track_velocities(masks, affines, 3.0, CONTEXT, 3, 1.5)
    assert tracked.tolist() == [True]
    assert velocity[0] == pytest.approx([0.25, 0.0], abs=0.03)


def test_neighbouring_vehicles_keep_their_own_velocities():
    # side by side, 3 px apart (one empty column between them), moving in opposite directions
    masks, affines = _stack([(24.0, 20.0, 0.4, 0.0), (24.0, 23.0, -0.4, 0.0)])
    labels, velocity, tracked = track_velocities(masks, affines, 3.0, CONTEXT, 3, 1.5)
    assert tracked.all() and len(velocity) == 2
    left = labels[24, 20] - 1
    right = labels[24, 23] - 1
    assert velocity[left] == pytest.approx([0.4, 0.0], abs=0.05)
    assert velocity[right] == pytest.approx([-0.4, 0.0], abs=0.05)


def test_association_follows_the_predicted_position_and_gives_each_blob_once():
    # A drives 2.5 px / step down the image; B stands beside A's position of t0 - 1 and is
    # hidden at t0: from t0 - 1 back, B is nearer to A than A's own earlier blob, but not to
    # where A's velocity puts it
    masks, affines = _stack([(20.0, 24.0, 2.5, 0.0)])
    for i in range(CONTEXT - 1):
        _box(masks[i], 17.5, 26.0)
    labels, velocity, tracked = track_velocities(masks, affines, 3.0, CONTEXT, 3, 1.5)
    assert tracked.tolist() == [True]
    assert velocity[0] == pytest.approx([2.5, 0.0], abs=0.1)  # a 4-5 row raster
    # C appears at t0 next to the standing A: A's blob of t0 - 1 is A's, not also C's
    masks, affines = _stack([(20.0, 24.0, 0.0, 0.0)])
    _box(masks[-1], 21.0, 26.0)
    labels, velocity, tracked = track_velocities(masks, affines, 3.0, CONTEXT, 3, 1.5)
    assert tracked[labels[20, 24] - 1] and not tracked[labels[21, 26] - 1]


def test_a_blob_that_changes_size_is_not_tracked_through_the_change():
    masks, affines = _stack([(30.0, 20.0, 0.3, 0.0)])
    masks[-2:] = False  # the last two frames: the vehicle twice as wide (a merge, say)
    _box(masks[-2], 30.0 - 0.3, 20.5, width=3.9)
    _box(masks[-1], 30.0, 20.5, width=3.9)
    _, _, tracked = track_velocities(masks, affines, 3.0, CONTEXT, 3, 1.5)
    assert tracked.tolist() == [False]  # 2 frames < min_track
    _, _, tracked = track_velocities(masks, affines, 3.0, CONTEXT, 2, 1.5)
    assert tracked.tolist() == [True]


def _head(**overrides) -> BevMotionHead:
    torch.manual_seed(0)
    cfg = MotionHeadConfig(bev_size=SIZE, context=CONTEXT, width=8, motion='tracks',
                           **overrides)
    return BevMotionHead(cfg).eval()


def _context(masks: np.ndarray) -> torch.Tensor:
    ctx = torch.zeros(1, CONTEXT, 7, SIZE, SIZE)
    ctx[0, :, 3] = torch.from_numpy(masks).float()
    return ctx


def test_the_head_moves_a_tracked_vehicle_to_where_it_is_at_k():
    # 5 steps of (0.4, -0.2) px are (2, -1) px: the box at t0 + 5 is its t0 raster moved
    v = (0.4, -0.2)
    masks, affines = _stack([(20.0, 24.0, *v)])
    head = _head(area_ratio=2.5)
    future = torch.from_numpy(np.repeat(IDENTITY[None, None], 2, 1)).float()
    align = torch.from_numpy(affines[None]).float()
    with torch.no_grad():
        out = head(_context(masks), align, future, (0, 5))
    truth = np.zeros((SIZE, SIZE), dtype=bool)
    _box(truth, 20.0 + 5 * v[0], 24.0 + 5 * v[1])
    assert np.array_equal((out[0, 1, 3] > 0.5).numpy(), truth)
    assert np.array_equal((out[0, 0, 3] > 0.5).numpy(), masks[-1])  # k = 0: the t0 frame
    # the flow head with the same weights does not get there: the tracker moves it
    flow = BevMotionHead(replace(head.cfg, motion='flow'))
    flow.load_state_dict(head.state_dict())
    with torch.no_grad():
        slow = flow(_context(masks), align, future, (0, 5))
    assert not np.array_equal((slow[0, 1, 3] > 0.5).numpy(), truth)


def test_untracked_pixels_keep_the_flow_estimate():
    masks, affines = _stack([(20.0, 24.0, 0.3, 0.0)])
    head = _head()
    flow = BevMotionHead(replace(head.cfg, motion='flow'))
    flow.load_state_dict(head.state_dict())
    align = torch.from_numpy(affines[None]).float()
    with torch.no_grad():
        assert not torch.equal(head.velocity(_context(masks), align),
                               flow.velocity(_context(masks), align))
        # the same vehicle in the shared channel (decoded from a neighbour's latent): the
        # flow moves it, not the tracker
        shared = torch.zeros_like(_context(masks))
        shared[0, :, 4] = torch.from_numpy(masks).float()
        assert torch.equal(head.velocity(shared, align), flow.velocity(shared, align))
        masks[:-1] = False  # seen only at t0: no track
        assert torch.equal(head.velocity(_context(masks), align),
                           flow.velocity(_context(masks), align))


def test_format_1_heads_load_as_flow_heads(tmp_path):
    from call_world_model import checkpoint
    from call_world_model.actor_critic import ActorCritic
    from call_world_model.world_model import WorldModel
    from helpers_wm import tiny_config
    cfg = tiny_config()
    path = str(tmp_path / 'wm.pt')
    checkpoint.save(path, WorldModel(cfg), ActorCritic(cfg, cfg.feat_dim, cfg.num_actions), cfg,
                    step=0, optimizers=False)
    head = BevMotionHead(MotionHeadConfig.for_world_model(cfg, context=3, width=8,
                                                          motion='tracks'))
    save_into(path, path, head)
    assert load_head(path, cfg).cfg.motion == 'tracks'
    payload = torch.load(path, weights_only=True)
    payload[HEAD_KEY]['format'] = 1  # written before the tracker: no tracking keys
    for key in ('motion', 'gate', 'track_frames', 'min_track', 'area_ratio',
                'tracked_channels'):
        del payload[HEAD_KEY]['config'][key]
    torch.save(payload, path)
    assert load_head(path, cfg).cfg.motion == 'flow'
    with pytest.raises(ValueError, match='tracking'):
        MotionHeadConfig(motion='boxes')

"""
Motion head: k-step BEV prediction that moves the last observed BEV's vehicles.

A stated deviation from the paper, off unless a checkpoint carries the head: DreamerV3 (and the
paper's Table 1) predict the BEV at t0 + k by decoding the imagined state (z_k, h_k) alone. At
64 px that decoder loses small vehicles from the first imagined step on, so the prediction is
far below copying the last frame. BEV prediction models instead condition on the past frames
(wayveai/fiery, MILE); this head does the same in its simplest form:

* a small CNN reads the last ``context`` observed BEVs (vehicles of each frame, the road of the
  last one, pixel coordinates) and returns a velocity field v(x) [px / step] in the ego frame
  (other vehicles' motion relative to the ego is directly visible in the unaligned ego-frame
  stack, no ego-motion compensation needed);
* the ego's future actions enter as one learned image-plane acceleration per action,
  integrated twice: shift(k) = sum_{j < k} (k - j) u[a_j] (an ego that brakes sees everything
  move forwards, and more so the longer it brakes);
* the prediction at t0 + k is the last frame's vehicle channels forward-splatted (bilinear) by
  k v(x) + shift(k); every other channel is the last frame copied.

Why a flow over the last frame rather than residual logits: between two steps a vehicle moves
a fraction of a pixel to a few pixels, a transport of mass that a displacement field states
with two numbers per pixel, while residual logits would have to learn to erase and redraw every
box; copy-last (v = 0) and per-vehicle constant velocity are both points of this family. The
last layer of the velocity net and the action accelerations start at zero, so the untrained
head IS copy-last and training only ever learns motion on top of it.

The head reads BEVs, not latents: a receiver has only its own (fused) BEV, which it holds;
decoding a neighbour's (z, h) stays the DreamerV3 decoder's job (``neighbour_decoding``).

A checkpoint carries the head next to the world model under the key ``bev_motion``
(``save_into`` / ``load_head``), with its config; a missing or mismatched head fails fast.
"""
from dataclasses import asdict, dataclass, fields
import math
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from call_world_model.bev_tracks import track_velocities
from call_world_model.checkpoint import CheckpointError, write_payload
from call_world_model.config import WorldModelConfig
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

HEAD_KEY = 'bev_motion'
HEAD_FORMAT = 2
# format 1 heads predate the tracker: their configs lack these keys (their defaults: a flow head)
TRACKING_KEYS = ('motion', 'gate', 'track_frames', 'min_track', 'area_ratio', 'tracked_channels')
MOTIONS = ('flow', 'tracks')


@dataclass(frozen=True)
class MotionHeadConfig:
    """Shape of the head; bev_size and bev_channels must equal the world model's."""

    bev_size: int = 64
    bev_channels: int = 7
    context: int = 16  # observed frames t0 - context + 1 .. t0 (slow motion needs a long one)
    width: int = 32  # channels of the velocity net's half-resolution layers
    moved_channels: Tuple[int, ...] = (3, 4)  # seen_vehicles, shared_vehicles: splatted
    road_channel: int = 0  # drivable area of the last frame: where vehicles can go
    static_channels: Tuple[int, ...] = (0, 1)  # drivable, lane markings: seen from t0 + k
    blur: float = 1.5  # [px] Gaussian sigma on the vehicle masks before the flow estimate
    window: float = 4.0  # [px] Gaussian sigma of the flow estimate's neighbourhood
    ridge: float = 1e-3  # Tikhonov term of the 2 x 2 solve: no edge, no motion
    max_speed: float = 1.5  # [px / step] clip of the velocity field
    iterations: int = 1  # Lucas-Kanade refinements: frames re-aligned by the flow so far
    nearest: bool = False  # vehicles land on the nearest pixel (``splat_nearest``), not shared
    motion: str = 'flow'  # velocity estimate: 'flow' (Lucas-Kanade) or 'tracks' (``bev_tracks``)
    gate: float = 3.0  # [px] tracks: farthest association from the predicted centroid
    track_frames: int = 16  # tracks: frames of the velocity fit (at most the context's)
    min_track: int = 3  # tracks: shorter tracks get no velocity (copy-last)
    area_ratio: float = 1.5  # tracks: a blob whose area changes by more ends its track
    # tracks: the channels whose blobs are tracked (seen_vehicles: the own sensors' boxes);
    # the shared channel's blobs are decoded from neighbours' latents and change shape from
    # step to step, which moves their centroids, so the flow moves them
    tracked_channels: Tuple[int, ...] = (3,)

    def __post_init__(self):
        """Fail fast on a head that cannot be built."""
        if self.bev_size < 8 or self.bev_size % 2 or self.context < 2 or self.width < 2 \
                or min(self.blur, self.window, self.ridge, self.max_speed) <= 0:
            raise ValueError(f'invalid motion head config {self}')
        if self.motion not in MOTIONS or self.gate <= 0 or self.area_ratio < 1 \
                or not 2 <= self.min_track <= self.track_frames:
            raise ValueError(f'invalid motion head tracking config {self}')
        channels = tuple(self.moved_channels) + tuple(self.static_channels) \
            + tuple(self.tracked_channels) + (self.road_channel,)
        if not self.moved_channels or not all(0 <= c < self.bev_channels for c in channels):
            raise ValueError(f'motion head channels {channels} outside 0..{self.bev_channels - 1}')

    def to_dict(self) -> Dict[str, Any]:
        """Plain dict (lists for tuples) for a weights-only checkpoint."""
        out = asdict(self)
        out['moved_channels'] = list(self.moved_channels)
        out['static_channels'] = list(self.static_channels)
        out['tracked_channels'] = list(self.tracked_channels)
        return out

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> 'MotionHeadConfig':
        """Inverse of ``to_dict``; unknown or missing keys raise ValueError."""
        names = {f.name for f in fields(cls)}
        if set(data) != names:
            raise ValueError(f'motion head config keys {sorted(data)} != {sorted(names)}')
        values = dict(data)
        for key in ('moved_channels', 'static_channels', 'tracked_channels'):
            values[key] = tuple(int(c) for c in values[key])
        return cls(**values)

    @classmethod
    def for_world_model(cls, cfg: WorldModelConfig, **overrides) -> 'MotionHeadConfig':
        """Head config matching a world model's BEV."""
        return cls(bev_size=cfg.bev_size, bev_channels=cfg.bev_channels, **overrides)

    def check_matches(self, cfg: WorldModelConfig) -> None:
        """Raise ValueError if the world model's BEV differs from the head's."""
        ours = (self.bev_size, self.bev_channels)
        theirs = (cfg.bev_size, cfg.bev_channels)
        if ours != theirs:
            raise ValueError(f'motion head (bev_size, bev_channels) {ours} != '
                             f'world model {theirs}')


def splat(values: torch.Tensor, displacement: torch.Tensor) -> torch.Tensor:
    """
    Forward-splat images (N, C, S, S) by per-pixel displacements (N, 2, S, S) [rows, cols px].

    Each source pixel's value is shared bilinearly by the four pixels around its new position
    (mass leaving the image is dropped) and the sums are clipped at 1. A zero displacement
    returns the input exactly. Differentiable in both arguments.
    """
    n, c, s, _ = values.shape
    grid = torch.arange(s, dtype=values.dtype, device=values.device)
    rows = grid[:, None] + displacement[:, 0]
    cols = grid[None, :] + displacement[:, 1]
    r0, c0 = torch.floor(rows), torch.floor(cols)
    fr, fc = rows - r0, cols - c0
    out = values.new_zeros(n, c, s * s)
    flat = values.reshape(n, c, s * s)
    for dr, dc, weight in ((0, 0, (1 - fr) * (1 - fc)), (1, 0, fr * (1 - fc)),
                           (0, 1, (1 - fr) * fc), (1, 1, fr * fc)):
        rr, cc = r0 + dr, c0 + dc
        inside = (rr >= 0) & (rr < s) & (cc >= 0) & (cc < s)
        index = (rr.clamp(0, s - 1) * s + cc.clamp(0, s - 1)).long().reshape(n, 1, s * s)
        share = (weight * inside).reshape(n, 1, s * s)
        out = out.scatter_add(2, index.expand(n, c, s * s), flat * share)
    return out.clamp(max=1.0).reshape(n, c, s, s)


def _gaussian(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, S, S) per channel (zeros beyond the border)."""
    radius = max(1, int(math.ceil(3.0 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = images.shape[1]
    rows = kernel.reshape(1, 1, -1, 1).expand(c, 1, -1, 1)
    cols = kernel.reshape(1, 1, 1, -1).expand(c, 1, 1, -1)
    out = F.conv2d(images, rows, padding=(radius, 0), groups=c)
    return F.conv2d(out, cols, padding=(0, radius), groups=c)


def flow_prior(vehicles: torch.Tensor, blur: float, window: float, ridge: float
               ) -> torch.Tensor:
    """
    Lucas-Kanade velocity (B, 2, S, S) [rows, cols px / step] of vehicle masks (B, T, S, S).

    Brightness constancy on the blurred masks, I(x, t) = I(x - v t): the temporal derivative is
    the least-squares slope over all T frames (a longer context resolves slower motion than a
    two-frame difference, which matters at one metre per pixel), the spatial gradient that of
    the frames' mean, and v solves the Gaussian-windowed 2 x 2 normal equations with a ridge,
    so pixels without an edge get no motion. Differentiable; no parameters.
    """
    t = vehicles.shape[1]
    blurred = _gaussian(vehicles, blur)
    times = torch.arange(t, dtype=vehicles.dtype, device=vehicles.device) - (t - 1) / 2.0
    dt = (blurred * times[None, :, None, None]).sum(1, keepdim=True) / (times ** 2).sum()
    mean = blurred.mean(1, keepdim=True)
    dr = F.pad((mean[:, :, 2:] - mean[:, :, :-2]) / 2.0, (0, 0, 1, 1))
    dc = F.pad((mean[:, :, :, 2:] - mean[:, :, :, :-2]) / 2.0, (1, 1, 0, 0))
    terms = _gaussian(torch.cat([dr * dr, dr * dc, dc * dc, dr * dt, dc * dt], 1), window)
    j11, j12, j22, b1, b2 = (terms[:, i] + (ridge if i in (0, 2) else 0.0) for i in range(5))
    det = j11 * j22 - j12 * j12
    vr = -(j22 * b1 - j12 * b2) / det
    vc = -(j11 * b2 - j12 * b1) / det
    return torch.stack([vr, vc], 1)


def warp(images: torch.Tensor, affine: torch.Tensor, border: bool = False) -> torch.Tensor:
    """
    Images (N, C, S, S) seen through pixel affines (N, 2, 3): out(p) = images(A^-1 p).

    ``affine`` maps a source pixel (col, row) to the output pixel (pixel centres at integers,
    as the rasteriser draws). Bilinear; outside the source zeros, or the nearest border pixel.
    """
    n, _, s, _ = images.shape
    full = torch.cat([affine, affine.new_tensor([0.0, 0.0, 1.0]).expand(n, 1, 3)], 1)
    inverse = torch.linalg.inv(full)[:, :2]
    grid = torch.arange(s, dtype=images.dtype, device=images.device)
    rows, cols = torch.meshgrid(grid, grid, indexing='ij')
    points = torch.stack([cols, rows, torch.ones_like(rows)], -1).reshape(1, s * s, 3)
    source = points @ inverse.transpose(1, 2)  # (N, S*S, 2) col, row in the source
    normalised = (source * 2.0 + 1.0) / s - 1.0  # align_corners=False convention
    return F.grid_sample(images, normalised.reshape(n, s, s, 2), mode='bilinear',
                         padding_mode='border' if border else 'zeros', align_corners=False)


def _apply(affine: torch.Tensor, cols: torch.Tensor, rows: torch.Tensor):
    """Map pixel coordinates (N, S, S) through affines (N, 2, 3) -> (cols, rows)."""
    a = affine[:, :, :, None, None]
    return (a[:, 0, 0] * cols + a[:, 0, 1] * rows + a[:, 0, 2],
            a[:, 1, 0] * cols + a[:, 1, 1] * rows + a[:, 1, 2])


def follow(frames: torch.Tensor, velocity: torch.Tensor) -> torch.Tensor:
    """
    Resample frames (B, T, S, S) ending at t0 along the flow (B, 2, S, S).

    Frame t0 + tau is read at x + tau v(x), so whatever moves at v lands where it is at t0.
    """
    b, t, s, _ = frames.shape
    grid = torch.arange(s, dtype=frames.dtype, device=frames.device)
    rows, cols = torch.meshgrid(grid, grid, indexing='ij')
    taus = torch.arange(t, dtype=frames.dtype, device=frames.device) - (t - 1)
    src_rows = rows + taus[None, :, None, None] * velocity[:, None, 0]  # (B, T, S, S)
    src_cols = cols + taus[None, :, None, None] * velocity[:, None, 1]
    normalised = torch.stack([(src_cols * 2.0 + 1.0) / s - 1.0,
                              (src_rows * 2.0 + 1.0) / s - 1.0], -1)
    return F.grid_sample(frames.reshape(b * t, 1, s, s), normalised.reshape(b * t, s, s, 2),
                         mode='bilinear', padding_mode='zeros',
                         align_corners=False).reshape(b, t, s, s)


def flow_refined(vehicles: torch.Tensor, cfg: MotionHeadConfig) -> torch.Tensor:
    """
    Iterate ``flow_prior`` -> velocity (B, 2, S, S), re-aligning the frames each pass.

    Each pass samples the frame of t0 + tau at x + tau v(x) (``follow``), so a vehicle moving
    at v stands still, and adds the flow that remains.

    One linearised pass underestimates motions larger than the blur over the context (a
    vehicle 0.3 px / step faster than the ego moves 5 px in 16 frames); re-aligning brings
    the remainder back into the linear range.
    """
    velocity = torch.zeros_like(vehicles[:, :2])
    frames = vehicles
    for _ in range(max(1, cfg.iterations)):
        velocity = (velocity + flow_prior(frames, cfg.blur, cfg.window, cfg.ridge)).clamp(
            -cfg.max_speed, cfg.max_speed)
        frames = follow(vehicles, velocity)
    return velocity


def splat_nearest(values: torch.Tensor, displacement: torch.Tensor) -> torch.Tensor:
    """
    Move every pixel to the pixel nearest its new position (max where two land).

    Forward pass only: the gradient is ``splat``'s (straight-through).

    A rasterised box moved by a fraction of a pixel stays a box: bilinear sharing would leave
    its edge pixels at 1/2 or less, which a 0.5 threshold drops, so that a two-pixel-wide car
    moved sideways by half a pixel vanishes.
    """
    n, c, s, _ = values.shape
    grid = torch.arange(s, dtype=values.dtype, device=values.device)
    rows = torch.round(grid[:, None] + displacement[:, 0].detach())
    cols = torch.round(grid[None, :] + displacement[:, 1].detach())
    inside = ((rows >= 0) & (rows < s) & (cols >= 0) & (cols < s)).reshape(n, 1, s * s)
    index = (rows.clamp(0, s - 1) * s + cols.clamp(0, s - 1)).long().reshape(n, 1, s * s)
    flat = values.detach().reshape(n, c, s * s) * inside
    nearest = values.new_zeros(n, c, s * s).scatter_reduce(
        2, index.expand(n, c, s * s), flat, reduce='amax', include_self=True).reshape(n, c, s, s)
    if not (values.requires_grad or displacement.requires_grad):
        return nearest
    smooth = splat(values, displacement)
    return smooth + (nearest - smooth).detach()


class BevMotionHead(nn.Module):
    """Flow prior + learned residual velocity; ``forward`` predicts the BEV at t0 + k."""

    def __init__(self, cfg: MotionHeadConfig):
        """Build the residual velocity net with a zero last layer."""
        super().__init__()
        self.cfg = cfg
        moved = len(cfg.moved_channels)
        # aligned vehicles per frame, last moved + road, coordinates, the flow prior
        inputs = cfg.context + moved + 1 + 2 + 2
        w = cfg.width
        self.net = nn.Sequential(
            nn.Conv2d(inputs, w // 2, 3, padding=1), nn.ReLU(),
            nn.Conv2d(w // 2, w, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(w, w, 3, padding=2, dilation=2), nn.ReLU(),
            nn.Conv2d(w, w, 3, padding=4, dilation=4), nn.ReLU(),
            nn.Conv2d(w, w, 3, padding=2, dilation=2), nn.ReLU(),
            nn.Conv2d(w, 2, 1))
        for layer in self.net[:-1]:
            if isinstance(layer, nn.Conv2d):  # He init: features keep their scale with depth
                nn.init.kaiming_normal_(layer.weight, nonlinearity='relu')
                nn.init.zeros_(layer.bias)
        self.velocity_out = self.net[-1]
        nn.init.zeros_(self.velocity_out.weight)
        nn.init.zeros_(self.velocity_out.bias)
        s = cfg.bev_size
        coords = torch.linspace(-1.0, 1.0, s)
        self.register_buffer('coords', torch.stack(torch.meshgrid(coords, coords, indexing='ij')),
                             persistent=False)

    def _frames(self, context: torch.Tensor, align: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return the last ``context`` frames, their affines and vehicle masks (B, T, S, S)."""
        cfg = self.cfg
        frames, align = context[:, -cfg.context:], align[:, -cfg.context:]
        if frames.shape[1] < cfg.context or align.shape[1] < cfg.context:
            raise ValueError(f'motion head needs {cfg.context} context frames and poses, '
                             f'got {frames.shape[1]} and {align.shape[1]}')
        return frames, align, frames[:, :, list(cfg.moved_channels)].amax(2)

    def tracks(self, frames: torch.Tensor, align: torch.Tensor
               ) -> List[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """
        Per window ``bev_tracks.track_velocities``: t0 labels, velocities, tracked.

        frames, align: the last ``context`` frames and their affines (``_frames``).
        """
        cfg = self.cfg
        tracked = frames[:, :, list(cfg.tracked_channels)].amax(2)
        masks = (tracked.detach() > 0.5).cpu().numpy()
        affines = align.detach().double().cpu().numpy()
        return [track_velocities(m, a, cfg.gate, cfg.track_frames, cfg.min_track,
                                 cfg.area_ratio) for m, a in zip(masks, affines)]

    def velocity(self, context: torch.Tensor, align: torch.Tensor) -> torch.Tensor:
        """
        Velocity field (B, 2, S, S) [rows, cols px / step] in the reference frame of t0.

        context: observed BEVs (B, T, C, S, S); align (B, T, 2, 3): pixel affine of each frame
        into its step's reference frame (the ego's odometry). The flow estimate plus the learned
        residual; with ``motion: tracks`` each tracked blob's pixels carry its track's velocity
        instead (a rigid motion, fitted over more frames than the flow's linearisation holds).
        """
        cfg = self.cfg
        frames, align, vehicles = self._frames(context, align)
        b, t, s, _ = vehicles.shape
        aligned = warp(vehicles.reshape(b * t, 1, s, s), align.reshape(b * t, 2, 3)
                       ).reshape(b, t, s, s)
        prior = flow_refined(aligned, cfg)
        last = frames[:, -1]
        moved = list(cfg.moved_channels)
        x = torch.cat([aligned, last[:, moved], last[:, cfg.road_channel:cfg.road_channel + 1],
                       self.coords.expand(b, -1, -1, -1), prior], 1)
        residual = F.interpolate(self.net(x), size=(s, s), mode='bilinear',
                                 align_corners=False)
        velocity = (prior + residual).clamp(-cfg.max_speed, cfg.max_speed)
        if cfg.motion != 'tracks':
            return velocity
        field = np.zeros((b, 2, s, s), dtype=np.float32)
        on = np.zeros((b, s, s), dtype=bool)
        for i, (labels, slopes, tracked) in enumerate(self.tracks(frames, align)):
            table = np.vstack([np.zeros((1, 2)), slopes]).astype(np.float32)  # 0: background
            field[i] = table[labels].transpose(2, 0, 1)
            on[i] = np.concatenate([[False], tracked])[labels]
        on_t = torch.from_numpy(on).to(velocity.device)[:, None]
        return torch.where(on_t, torch.from_numpy(field).to(velocity), velocity)

    def forward(self, context: torch.Tensor, align: torch.Tensor, future: torch.Tensor,
                horizons: Sequence[int]) -> torch.Tensor:
        """
        BEV probabilities (B, H, C, S, S) at t0 + k for k in ``horizons``.

        context (B, T, C, S, S) in [0, 1] ending at t0; align (B, T, 2, 3) pixel affines of the
        context frames into the t0 frame; future (B, H, 2, 3) pixel affines of the t0 frame
        into the frame of t0 + k (the ego's own motion under the actions to be taken, from its
        kinematic model). Every vehicle pixel of t0 moves on at its velocity and is then seen
        from the ego's pose at t0 + k; the road is seen from there too (border pixels extend
        it); the ego and the waypoint channels (plans) are the last frame's.
        """
        horizons = [int(k) for k in horizons]
        if min(horizons) < 0 or future.shape[1] != len(horizons):
            raise ValueError(f'horizons {horizons} (>= 0) need one future pose each, '
                             f'got {future.shape[1]}')
        last = context[:, -1]
        b, c, s, _ = last.shape
        if (c, s) != (self.cfg.bev_channels, self.cfg.bev_size):
            raise ValueError(f'BEV ({c}, {s}, {s}) does not fit the motion head '
                             f'({self.cfg.bev_channels}, {self.cfg.bev_size}, ...)')
        velocity = self.velocity(context, align)  # (B, 2, S, S) rows, cols
        h = len(horizons)
        ks = last.new_tensor([float(k) for k in horizons])[None, :, None, None]
        grid = torch.arange(s, dtype=last.dtype, device=last.device)
        rows0, cols0 = torch.meshgrid(grid, grid, indexing='ij')
        rows = rows0 + ks * velocity[:, None, 0]  # (B, H, S, S) in the t0 frame
        cols = cols0 + ks * velocity[:, None, 1]
        cols_k, rows_k = _apply(future.reshape(b * h, 2, 3), cols.reshape(b * h, s, s),
                                rows.reshape(b * h, s, s))
        displacement = torch.stack([rows_k - rows0, cols_k - cols0], 1)  # (B*H, 2, S, S)
        moved = list(self.cfg.moved_channels)
        mover = splat_nearest if self.cfg.nearest else splat
        splatted = mover(last[:, None, moved].expand(b, h, len(moved), s, s)
                         .reshape(b * h, len(moved), s, s), displacement)
        out = last[:, None].expand(b, h, c, s, s).clone()
        static = list(self.cfg.static_channels)
        if static:
            seen = warp(last[:, None, static].expand(b, h, len(static), s, s)
                        .reshape(b * h, len(static), s, s), future.reshape(b * h, 2, 3),
                        border=True)
            out[:, :, static] = seen.reshape(b, h, len(static), s, s)
        out[:, :, moved] = splatted.reshape(b, h, len(moved), s, s)
        return out


def save_into(source: str, path: str, head: BevMotionHead,
              extra: Optional[Dict[str, Any]] = None) -> None:
    """
    Write the world-model checkpoint ``source`` with ``head`` added as ``path`` (atomically).

    The head's weights are stored in float16 like the exported world models; ``extra`` (e.g.
    the training command) goes into the head's entry.
    """
    payload = torch.load(source, map_location='cpu', weights_only=True)
    payload[HEAD_KEY] = {
        'format': HEAD_FORMAT, 'config': head.cfg.to_dict(),
        'state': {k: v.detach().to(torch.float16) for k, v in head.state_dict().items()},
        'extra': dict(extra or {})}
    write_payload(path, payload)


def load_head(path: str, cfg: WorldModelConfig,
              missing_ok: bool = False) -> Optional[BevMotionHead]:
    """
    Load the motion head of the checkpoint ``path``, checked against world model ``cfg``.

    Raises CheckpointError with the reason: no head (unless ``missing_ok``: then None),
    another head format, an invalid config, a config that does not fit the world model, or
    weights that do not fit the config.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f'checkpoint {path!r} does not exist')
    try:
        payload = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # noqa: B902 - torch raises many types for bad files
        raise CheckpointError(f'checkpoint {path!r} is corrupt or truncated: {exc}') from exc
    entry = payload.get(HEAD_KEY) if isinstance(payload, dict) else None
    if entry is None and missing_ok:
        return None
    if not isinstance(entry, dict):
        raise CheckpointError(f'checkpoint {path!r} carries no motion head ({HEAD_KEY!r})')
    if entry.get('format') not in (1, HEAD_FORMAT):
        raise CheckpointError(f'checkpoint {path!r}: motion head format '
                              f'{entry.get("format")!r}, this code reads 1 and {HEAD_FORMAT}')
    config = dict(entry.get('config') or {})
    if entry.get('format') == 1:
        config = {**{f.name: f.default for f in fields(MotionHeadConfig)
                     if f.name in TRACKING_KEYS}, **config}
    try:
        head_cfg = MotionHeadConfig.from_dict(config)
        head_cfg.check_matches(cfg)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f'checkpoint {path!r}: motion head does not fit: {exc}') from exc
    head = BevMotionHead(head_cfg)
    state = {k: v.float() for k, v in dict(entry.get('state') or {}).items()}
    try:
        head.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(f'checkpoint {path!r}: motion head weights do not fit its config: '
                              f'{" ".join(first[:3])}') from exc
    if not all(torch.isfinite(v).all() for v in state.values()):
        raise CheckpointError(f'checkpoint {path!r}: motion head weights are not finite')
    return head.eval()

"""
Cost of the ego's imagined footprint overlapping other vehicles in the decoded prediction.

The eq. 3 look-ahead scores a candidate by the reward head and the critic; both are learned
from few collisions, and the issue this answers saw them prefer keeping speed 7 m from a
crossing vehicle. BEV planners use their decoded predictions directly: here every imagined
state along a candidate's rollout is decoded, and the part of the ego's footprint that the
predicted vehicle channels (own sensing `seen_vehicles` and V2V `shared_vehicles`, paper
App. F) cover is charged to that candidate:

    cost(a_0) = w * sum_{k=0}^{K-1} gamma^k c_{<=k} overlap(x_hat_{t+k+1})

with the discount and continue weighting of the rewards, and overlap = mean over the
footprint's pixels of P(some vehicle) = 1 - (1 - p_seen)(1 - p_shared).

The BEV is ego-centric (App. E.1): the ego sits at a fixed pixel of every imagined frame, so
its imagined footprint is a fixed window and the world model's prediction of the others
relative to the ego carries the candidate's actions. Only that window is decoded, and only
the two vehicle channels: a transposed convolution's output pixel reads 2 x 2 input pixels,
so the window's rows and columns are traced back through the decoder's stages to the few grid
cells of the first layer that reach it (`DecoderWindow`), and every stage runs on that crop
alone. The result equals the same pixels of the full decode (to float rounding; tests hold
it), for a small fraction of its multiply-adds.
"""
from dataclasses import dataclass
import math
from typing import NamedTuple, Optional, Sequence

import torch
from torch import nn
import torch.nn.functional as F

#: call_perception.bev_raster.CHANNELS indices of the other vehicles (own and shared)
VEHICLE_CHANNELS = (3, 4)


class _Stage(NamedTuple):
    """One transposed convolution of `DecoderWindow`, as gather + matrix products."""

    groups: list              # per kernel parity: pixels, taps, (taps Cin, Cout) weight and
    #                           (pixels, taps) input pixels (in_pixels: outside, zero)
    in_pixels: int            # pixels of the input crop (the zero pixel's position)
    reads_zero: bool          # a tap falls outside the image (the input gets a zero row)
    order: torch.Tensor       # row-major output pixel -> its grouped position
    out_channels: int
    bias: Optional[torch.Tensor]


@dataclass(frozen=True)
class OccupancyConfig:
    """Weight and footprint of the occupancy cost (config/planner.yaml, `occupancy_*`)."""

    weight: float = 2.0          # per fully covered footprint and step, in reward units
    every: int = 5               # decode every n-th imagined step, counted back from step K
    margin: float = 0.5          # [m] added to each side of the footprint
    ego_length: float = 4.8      # [m] (call_sim config/vehicle.yaml)
    ego_width: float = 2.0       # [m]
    # the BEV the model was trained on (call_perception config/bev.yaml), scaled to the
    # model's bev_size: 64 m window, ego 40 m from the top and centred
    window_m: float = 64.0
    ego_row_fraction: float = 80.0 / 128.0
    ego_col_fraction: float = 64.0 / 128.0

    def __post_init__(self):
        """Fail fast on a negative weight or a footprint that is not a box."""
        for name in ('weight', 'margin'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f'occupancy_{name} must be >= 0, got {value}')
        if self.every < 1:
            raise ValueError(f'occupancy_every must be >= 1, got {self.every}')
        for name in ('ego_length', 'ego_width', 'window_m'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f'occupancy_{name} must be > 0, got {value}')

    def footprint(self, size: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """Inclusive (row range, column range) of the ego footprint in a `size` px BEV."""
        mpp = self.window_m / size
        row, col = self.ego_row_fraction * size, self.ego_col_fraction * size
        half_l = 0.5 * self.ego_length / mpp + self.margin / mpp
        half_w = 0.5 * self.ego_width / mpp + self.margin / mpp
        rows = (max(int(math.floor(row - half_l + 0.5)), 0),
                min(int(math.ceil(row + half_l - 0.5)), size - 1))
        cols = (max(int(math.floor(col - half_w + 0.5)), 0),
                min(int(math.ceil(col + half_w - 0.5)), size - 1))
        return rows, cols


def _needed_input(out_range: tuple[int, int], conv: nn.ConvTranspose2d, size_in: int
                  ) -> tuple[int, int]:
    """Input pixels (inclusive range, one dimension) that outputs `out_range` read."""
    k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
    low = -(-(out_range[0] + p - k + 1) // s)        # ceil
    high = (out_range[1] + p) // s
    return max(low, 0), min(high, size_in - 1)


def _taps(out_range: tuple[int, int], conv: nn.ConvTranspose2d, in_range: tuple[int, int]
          ) -> tuple[list, list]:
    """
    List, per output pixel of `out_range`, the input pixels it reads and their kernel taps.

    One dimension; input pixels are relative to `in_range`, None outside the image.
    """
    k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
    inputs, kernel = [], []
    for o in range(out_range[0], out_range[1] + 1):
        pairs = [((o + p - kk) // s, kk) for kk in range(k) if (o + p - kk) % s == 0]
        inputs.append([i - in_range[0] if in_range[0] <= i <= in_range[1] else None
                       for i, _ in pairs])
        kernel.append([kk for _, kk in pairs])
    return inputs, kernel


class DecoderWindow:
    """
    A `call_world_model.networks.ConvDecoder` evaluated on one window of the vehicle channels.

    Each stage computes only the output pixels the next stage reads: a transposed convolution
    with stride 2 and kernel 4 gives every output pixel from a 2 x 2 input patch and a 2 x 2
    slice of its kernel that depends on the pixel's parity, so a stage is one gather of all
    its patches (one row index list per batch size, cached) and one matrix product per
    parity (patches (pixels B, 4 Cin) times the (4 Cin, Cout) kernel slice) written into the
    stage's output, a third of the multiply-adds of a transposed convolution over the crop.
    Activations are kept pixel-first (P, B, C) in row-major pixel order, the layout in which
    the norm and activation see them (a vectorised activation rounds the elements of its
    tail otherwise than the rest, so the layout is part of the result); a zero row is
    appended only for stages with taps outside the image. The weights are snapshot at
    construction: `refresh()` after they change.
    """

    def __init__(self, decoder: nn.Module, size: int, rows: tuple[int, int],
                 cols: tuple[int, int], channels: Sequence[int] = VEHICLE_CHANNELS):
        """Trace `rows` x `cols` of the `size` px output back to the first grid."""
        self.decoder = decoder
        self.channels = list(channels)
        layers = list(decoder.net)
        self.convs = [m for m in layers if isinstance(m, nn.ConvTranspose2d)]
        for conv in self.convs:
            if conv.kernel_size[0] != conv.kernel_size[1] or conv.stride[0] != conv.stride[1]:
                raise ValueError('DecoderWindow needs square kernels and strides')
        # stage sizes from the grid up: minres, 2 minres, ..., size
        sizes = [decoder.minres * 2 ** i for i in range(len(self.convs) + 1)]
        if sizes[-1] != size:
            raise ValueError(f'decoder output {sizes[-1]} px, expected {size}')
        row_ranges, col_ranges = [rows], [cols]
        for conv, size_in in zip(reversed(self.convs), reversed(sizes[:-1])):
            row_ranges.insert(0, _needed_input(row_ranges[0], conv, size_in))
            col_ranges.insert(0, _needed_input(col_ranges[0], conv, size_in))
        self.row_ranges, self.col_ranges = row_ranges, col_ranges
        self.shape = (rows[1] - rows[0] + 1, cols[1] - cols[0] + 1)
        # the layers after each transposed convolution (norm, activation), per stage
        self.after: list[list[nn.Module]] = []
        for module in layers:
            if isinstance(module, nn.ConvTranspose2d):
                self.after.append([])
            else:
                self.after[-1].append(module)
        r0, r1 = row_ranges[0]
        c0, c1 = col_ranges[0]
        grid = decoder.minres
        self.cells = torch.tensor([r * grid + c for r in range(r0, r1 + 1)
                                   for c in range(c0, c1 + 1)])
        # rows of the first linear, cell-major: (cells, C0) after the product
        self.project_rows = (self.cells[:, None]
                             + torch.arange(decoder.first_channels)[None, :] * grid * grid
                             ).reshape(-1)
        self.refresh()

    @torch.no_grad()
    def refresh(self) -> None:
        """Re-read the decoder's weights into the window's tables."""
        dec = self.decoder
        self.project_weight = dec.project.weight[self.project_rows].t().contiguous()
        self.project_bias = dec.project.bias[self.project_rows].clone()
        self.stages = []
        last = len(self.convs) - 1
        for i, conv in enumerate(self.convs):
            weight = conv.weight if i < last else conv.weight[:, self.channels]
            bias = conv.bias if conv.bias is None or i < last else conv.bias[self.channels]
            rows_in, rows_k = _taps(self.row_ranges[i + 1], conv, self.row_ranges[i])
            cols_in, cols_k = _taps(self.col_ranges[i + 1], conv, self.col_ranges[i])
            in_cols = self.col_ranges[i][1] - self.col_ranges[i][0] + 1
            in_pixels = in_cols * (self.row_ranges[i][1] - self.row_ranges[i][0] + 1)
            # pixels with the same kernel taps (the same parity) share one matrix product;
            # each pixel's taps as input positions (in_pixels: outside the image, zero)
            groups: dict = {}
            for r, (r_in, r_k) in enumerate(zip(rows_in, rows_k)):
                for c, (c_in, c_k) in enumerate(zip(cols_in, cols_k)):
                    taps = tuple((ka, kb) for ka in r_k for kb in c_k)
                    index = [in_pixels if a is None or b is None else a * in_cols + b
                             for a in r_in for b in c_in]
                    groups.setdefault(taps, []).append((r * len(cols_in) + c, index))
            stage, grouped = [], []
            for taps, members in groups.items():
                w = torch.cat([weight[:, :, ka, kb] for ka, kb in taps])   # (taps Cin, Cout)
                stage.append((len(members), len(taps), w.contiguous(),
                              torch.tensor([index for _, index in members])))
                grouped.extend(pixel for pixel, _ in members)
            # output pixels come out grouped: `order` puts them back row-major
            position = {pixel: j for j, pixel in enumerate(grouped)}
            order = torch.tensor([position[j] for j in range(len(grouped))])
            reads_zero = any(bool((g[3] == in_pixels).any()) for g in stage)
            self.stages.append(_Stage(stage, in_pixels, reads_zero, order, weight.shape[1],
                                      None if bias is None else bias.clone()))
        self._gathers: dict = {}

    def _gather_rows(self, batch: int) -> list:
        """
        Per stage, the rows of its flat input that its patch matrices read, for `batch` states.

        A stage's patch matrix of one group has a row per (pixel, state) and the pixel's taps
        side by side, so the gather lists, per pixel, per state, per tap, the input row: state
        b's crop cell j is row b * cells + j of the first stage's input (the projection's
        (B, cells * C0) output, viewed flat), pixel p (row-major in its crop) the row
        p * B + b of the other stages' (their predecessor's (P, B, C) output); the zero row
        comes last.
        """
        rows = self._gathers.get(batch)
        if rows is None:
            rows = []
            states = torch.arange(batch)
            for i, stage in enumerate(self.stages):
                shapes = [(pixels, batch, taps) for pixels, taps, _, _ in stage.groups]
                index = torch.cat([g[3][:, None, :].expand(shape).reshape(-1)
                                   for g, shape in zip(stage.groups, shapes)])
                state = torch.cat([states[None, :, None].expand(shape).reshape(-1)
                                   for shape in shapes])
                flat = state * stage.in_pixels + index if i == 0 else index * batch + state
                rows.append(torch.where(index == stage.in_pixels, stage.in_pixels * batch, flat))
            self._gathers[batch] = rows
        return rows

    def project(self, feat: torch.Tensor) -> torch.Tensor:
        """(B, F) features -> (B, cells * C0) first-stage crop without the z cells."""
        dense = feat[:, :feat.shape[1] - self.decoder.spatial_dim]
        return torch.addmm(self.project_bias, dense, self.project_weight)

    def add_cells(self, x: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
        """Add the spatial decoder's per-cell latents (1x1 conv) to a (B, cells * C0) crop."""
        dec = self.decoder
        if dec.cell_project is None:
            return x
        cells_total = dec.minres * dec.minres
        z = feat[:, feat.shape[1] - dec.spatial_dim:].reshape(feat.shape[0], cells_total, -1)
        z = z[:, self.cells]                                      # (B, n, per_cell)
        conv = dec.cell_project
        per_cell = F.linear(z, conv.weight[:, :, 0, 0], conv.bias)   # (B, n, C0)
        return x + per_cell.reshape(x.shape)

    def from_indices(self, deter: torch.Tensor, z: torch.Tensor, stoch: int, classes: int
                     ) -> torch.Tensor:
        """
        Logits like `__call__` from h (B, D) and z as class indices (B, S).

        The one-hot z products become gathers of S rows, as in `IndexedLookahead`.
        """
        dec = self.decoder
        if dec.cell_project is None:
            w_h = self.project_weight[:deter.shape[1]]
            z_table = self.project_weight[deter.shape[1]:]
            x = torch.addmm(self.project_bias, deter, w_h) \
                + F.embedding_bag(z + torch.arange(stoch) * classes, z_table, mode='sum')
        else:
            x = torch.addmm(self.project_bias, deter, self.project_weight)
            cells_total = dec.minres * dec.minres
            per_cell = stoch // cells_total                     # latents laid on each cell
            conv = dec.cell_project
            table = conv.weight[:, :, 0, 0].t().reshape(per_cell * classes, -1)
            zc = z.view(z.shape[0], cells_total, per_cell)[:, self.cells]
            zc = zc + torch.arange(per_cell) * classes
            x = x + (F.embedding(zc, table).sum(2) + conv.bias).reshape(x.shape)
        return self.upsample(x)

    @torch.no_grad()
    def upsample(self, flat: torch.Tensor) -> torch.Tensor:
        """
        Flat first-stage crop (B, cells * C0) -> (B, len(channels), pixels) logits.

        Inference only (products write into their stage's output, which autograd cannot
        follow; the window's weights are snapshots without gradients anyway).
        """
        batch = flat.shape[0]
        x = flat.reshape(batch * len(self.cells), self.decoder.first_channels)
        for stage, rows, after in zip(self.stages, self._gather_rows(batch), self.after):
            if stage.reads_zero:
                x = torch.cat([x, x.new_zeros(1, x.shape[1])])
            patches = x.index_select(0, rows)         # per group: (pixels B, taps Cin) rows
            out = x.new_empty(len(stage.order), batch, stage.out_channels)
            flat = out.view(-1, stage.out_channels)
            start = row = 0
            for pixels, taps, weight, _ in stage.groups:
                size = pixels * batch
                torch.mm(patches[start:start + size * taps].view(size, -1), weight,
                         out=flat[row:row + size])
                start, row = start + size * taps, row + size
            x = out.index_select(0, stage.order)                    # (P, B, Cout) row-major
            if stage.bias is not None:
                x += stage.bias
            for module in after:
                if isinstance(module, nn.LayerNorm):              # ChannelNorm: channels last
                    x = F.layer_norm(x, module.normalized_shape, module.weight, module.bias,
                                     module.eps)
                elif type(module) is nn.SiLU:
                    x = F.silu(x, inplace=True)
                else:
                    x = module(x)
            x = x.view(-1, stage.out_channels)
        return x.view(len(self.stages[-1].order), batch, -1).permute(1, 2, 0)

    def __call__(self, feat: torch.Tensor) -> torch.Tensor:
        """(B, F) features -> (B, len(channels), pixels) logits of the window, row-major."""
        return self.upsample(self.add_cells(self.project(feat), feat))


class OccupancyCost:
    """Per-state footprint overlap of a call_world_model WorldModel's decoded vehicles."""

    @staticmethod
    def supports(world_model: object) -> bool:
        """Tell whether the model has call_world_model's convolutional BEV decoder."""
        heads = getattr(world_model, 'heads', None)
        decoder = heads['decoder'] if heads is not None and 'decoder' in heads else None
        return decoder is not None and hasattr(decoder, 'net') and hasattr(decoder, 'minres')

    def __init__(self, world_model: nn.Module, config: OccupancyConfig):
        """Trace the footprint window through the decoder of `world_model`."""
        if not self.supports(world_model):
            raise ValueError('the occupancy cost needs a call_world_model WorldModel decoder')
        self.world_model = world_model
        self.config = config
        cfg = world_model.cfg
        rows, cols = config.footprint(cfg.bev_size)
        self.window = DecoderWindow(world_model.heads['decoder'], cfg.bev_size, rows, cols)
        # the calibration offsets (log pos-weight) of the two channels, as WorldModel.calibrate
        offsets = [math.log(cfg.image_pos_weight) if c in cfg.image_weighted_channels else 0.0
                   for c in VEHICLE_CHANNELS]
        self.offsets = torch.tensor(offsets).view(1, -1, 1)

    def overlap_from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, 2, pixels) window logits -> (B,) mean P(another vehicle) over the footprint."""
        probs = torch.sigmoid(logits - self.offsets)
        free = (1.0 - probs).prod(1)
        return (1.0 - free).flatten(1).mean(1)

    def overlap(self, feat: torch.Tensor) -> torch.Tensor:
        """(B, F) features of imagined states -> (B,) footprint overlap in [0, 1]."""
        return self.overlap_from_logits(self.window(feat))

    def overlap_from_indices(self, deter: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """`overlap` of states given as h (B, D) and z class indices (B, S)."""
        cfg = self.world_model.cfg
        return self.overlap_from_logits(self.window.from_indices(deter, z, cfg.stoch,
                                                                 cfg.classes))

    def decoded_steps(self, horizon: int) -> list[int]:
        """Imagined steps (0-based, step k = state after k + 1 actions) that are decoded."""
        return list(range(horizon - 1, -1, -self.config.every))[::-1]

    def discounted(self, overlaps: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """(K, B) overlaps and their discount x continue weights -> (B,) cost of each rollout."""
        return self.config.weight * (weights * overlaps).sum(0)


def full_window(world_model: nn.Module, state: dict, config: OccupancyConfig
                ) -> Optional[torch.Tensor]:
    """Footprint window of the full decode (reference for tests): (B, 2, pixels) logits."""
    rows, cols = config.footprint(world_model.cfg.bev_size)
    logits = world_model.decode(state)
    window = logits[:, list(VEHICLE_CHANNELS), rows[0]:rows[1] + 1, cols[0]:cols[1] + 1]
    return window.flatten(2)

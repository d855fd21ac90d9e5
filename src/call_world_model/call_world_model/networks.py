"""
Building blocks of DreamerV3 (2023): LayerNorm + SiLU layers, MLPs, CNN encoder/decoder.

Every hidden layer is Linear/Conv (no bias) -> LayerNorm -> SiLU, weights use the truncated
normal fan-average initialisation of DreamerV3; output layers of regression heads can start at
zero (``outscale=0``) so initial predictions are 0 and early losses stay small.
"""
from contextlib import contextmanager
import math
from typing import Iterator, Optional, Sequence

import torch
from torch import nn
from torch.nn import functional as F


_skip_initialisation = False


@contextmanager
def skipped_initialisation(enabled: bool = True) -> Iterator[None]:
    """
    Build modules without DreamerV3's random initialisation, for weights loaded right after.

    The truncated-normal draws cost seconds of a node's start-up for an 8 M-parameter model
    whose every parameter a strict ``load_state_dict`` then overwrites; only use it so.
    """
    global _skip_initialisation
    previous, _skip_initialisation = _skip_initialisation, bool(enabled)
    try:
        yield
    finally:
        _skip_initialisation = previous


def init_fan_avg_(weight: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Initialise like DreamerV3: truncated normal, std sqrt(scale / fan_avg)."""
    if _skip_initialisation:
        return weight
    if scale == 0.0:
        return nn.init.zeros_(weight)
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(weight)
    std = math.sqrt(scale / ((fan_in + fan_out) / 2.0)) / 0.87962566103423978
    return nn.init.trunc_normal_(weight, 0.0, std, -2.0 * std, 2.0 * std)


class LinearNormAct(nn.Sequential):
    """Linear (no bias) -> LayerNorm -> SiLU: DreamerV3's dense hidden layer."""

    def __init__(self, in_dim: int, out_dim: int):
        """Create the layer mapping ``in_dim`` features to ``out_dim``."""
        linear = nn.Linear(in_dim, out_dim, bias=False)
        init_fan_avg_(linear.weight)
        super().__init__(linear, nn.LayerNorm(out_dim, eps=1e-3), nn.SiLU())


def output_linear(in_dim: int, out_dim: int, outscale: float = 1.0) -> nn.Linear:
    """Create an output linear with bias; ``outscale=0`` zero-initialises it (reward, critic)."""
    layer = nn.Linear(in_dim, out_dim)
    init_fan_avg_(layer.weight, outscale)
    nn.init.zeros_(layer.bias)
    return layer


class MLP(nn.Module):
    """``layers`` x LinearNormAct of ``units``, optionally followed by an output linear."""

    def __init__(self, in_dim: int, units: int, layers: int, out_dim: int = 0,
                 outscale: float = 1.0):
        """Build the stack; ``out_dim=0`` returns the last hidden activations."""
        super().__init__()
        dims = [in_dim] + [units] * layers
        self.hidden = nn.Sequential(*[LinearNormAct(a, b) for a, b in zip(dims[:-1], dims[1:])])
        self.out = output_linear(dims[-1], out_dim, outscale) if out_dim else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (..., in_dim) to (..., out_dim or units)."""
        x = self.hidden(x)
        return self.out(x) if self.out is not None else x


class OneHotColumns:
    """
    ``weight[:, start:split]`` transposed and contiguous: the rows a one-hot input selects.

    Kept beside the layer (never in its state_dict, so checkpoints are unchanged) and rebuilt
    when the weight changes in place: an optimiser step or ``load_state_dict`` bumps its
    version. Inference only: no gradient flows into the table.
    """

    def __init__(self) -> None:
        """Start empty; the first call builds the table."""
        self.key: Optional[tuple] = None
        self.table: Optional[torch.Tensor] = None

    def __call__(self, weight: torch.Tensor, split: int, start: int = 0) -> torch.Tensor:
        """Return the (split - start, out) table of ``weight[:, start:split]`` (out, in)."""
        key = (weight.data_ptr(), weight._version, split, start)
        if key != self.key:
            self.table = weight.detach()[:, start:split].t().contiguous()
            self.key = key
        return self.table


def one_hot_columns(module: nn.Module, name: str) -> OneHotColumns:
    """Return the module's table cache ``name`` (made on first use: pickled models lack it)."""
    cache = module.__dict__.get(name)
    if cache is None:
        cache = module.__dict__[name] = OneHotColumns()
    return cache


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channel axis of (B, C, H, W) feature maps (DreamerV3 CNN norm)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise every pixel's channel vector."""
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _training_autocast(module: nn.Module):
    """bfloat16 autocast while ``module`` trains with ``module.bf16`` set, else a no-op."""
    enabled = getattr(module, 'bf16', False) and module.training and torch.is_grad_enabled()
    return torch.autocast('cpu', dtype=torch.bfloat16, enabled=bool(enabled))


def _conv_channels(depth: int, mults: Sequence[int]) -> list:
    return [depth * m for m in mults]


class ConvEncoder(nn.Module):
    """
    Stride-2 4x4 convs halving the BEV down to ``minres``, then flatten.

    Input (B, C, S, S) float in [0, 1] (centred by -0.5 as DreamerV3 does for images).
    """

    def __init__(self, in_channels: int, size: int, depth: int, mults: Sequence[int],
                 minres: int):
        """Create len(mults) stages with ``depth * mult`` channels each."""
        super().__init__()
        channels = _conv_channels(depth, mults)
        layers = []
        prev = in_channels
        for out in channels:
            conv = nn.Conv2d(prev, out, 4, 2, 1, bias=False)
            init_fan_avg_(conv.weight)
            layers += [conv, ChannelNorm(out, eps=1e-3), nn.SiLU()]
            prev = out
        self.net = nn.Sequential(*layers)
        self.out_dim = prev * minres * minres
        assert size // (2 ** len(channels)) == minres, 'CNN stages must reach minres'

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) in [0, 1] -> (B, out_dim) embedding."""
        with _training_autocast(self):
            return self.net(image - 0.5).flatten(1).float()


class ConvDecoder(nn.Module):
    """
    Mirror of :class:`ConvEncoder`: features -> (B, C, S, S) per-pixel logits.

    ``spatial_dim = 0`` (DreamerV3): one linear maps all features to the (minres, minres)
    grid. ``spatial_dim > 0``: the last ``spatial_dim`` features (the flattened latents z) are
    laid out on the grid instead, ``spatial_dim / minres**2`` consecutive features per cell,
    and a 1x1 conv maps each cell's slice to the first conv stage; the leading features (h)
    still go through the linear and are added, so the latents' only dense map is the
    posterior's. Why: a second dense layer between the conv encoder and the grid kept
    few-pixel vehicles out of short CPU runs (checkpoints/README.md).
    """

    def __init__(self, feat_dim: int, out_channels: int, depth: int, mults: Sequence[int],
                 minres: int, spatial_dim: int = 0):
        """Project to (depth * mults[-1], minres, minres) and upsample with 4x4 stride-2."""
        super().__init__()
        channels = _conv_channels(depth, mults)[::-1]
        self.minres = minres
        self.first_channels = channels[0]
        cells = minres * minres
        if spatial_dim < 0 or spatial_dim > feat_dim or spatial_dim % cells:
            raise ValueError(f'spatial_dim {spatial_dim} must be in [0, {feat_dim}] and a '
                             f'multiple of minres**2 = {cells}')
        self.spatial_dim = spatial_dim
        self.project = output_linear(feat_dim - spatial_dim, channels[0] * cells)
        self.cell_project = None
        if spatial_dim:
            self.cell_project = nn.Conv2d(spatial_dim // cells, channels[0], 1)
            init_fan_avg_(self.cell_project.weight)
            nn.init.zeros_(self.cell_project.bias)
        layers = []
        for index, prev in enumerate(channels):
            last = index == len(channels) - 1
            out = out_channels if last else channels[index + 1]
            conv = nn.ConvTranspose2d(prev, out, 4, 2, 1, bias=last)
            init_fan_avg_(conv.weight)
            if last:
                nn.init.zeros_(conv.bias)
                layers.append(conv)
            else:
                layers += [conv, ChannelNorm(out, eps=1e-3), nn.SiLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, feat: torch.Tensor, channels: Optional[Sequence[int]] = None,
                z_indices: Optional[torch.Tensor] = None, classes: int = 0) -> torch.Tensor:
        """
        (B, feat_dim) -> (B, out_channels, S, S) logits; (B, len(channels), S, S) if given.

        With ``channels`` the last transposed convolution computes just those output channels
        (its weight and bias sliced): each output channel is its own sum over the input
        channels, so the values are the full image's, and a caller that needs two of the
        BEV's channels (a neighbour's vehicles, paper Fig. 4c) does not pay for the others at
        full resolution. With ``z_indices`` (B, S) of ``classes`` (inference), ``feat`` is h
        alone and z is given by its class indices (``_from_indices``).
        """
        if z_indices is not None:
            return self._from_indices(feat, z_indices, classes, channels)
        with _training_autocast(self):
            return self._forward(feat, channels).float()

    @torch.no_grad()
    def _from_indices(self, deter: torch.Tensor, z_indices: torch.Tensor, classes: int,
                      channels: Optional[Sequence[int]] = None) -> torch.Tensor:
        """
        Logits like ``forward([h, one-hot z], channels)`` at inference, from z's class indices.

        Features are [h, flatten(one-hot z)] (``world_model.features``), so the first linear's
        product with the one-hot part is the sum of the S weight columns its ones select: one
        ``embedding_bag`` sum of S rows of the z columns (transposed, ``OneHotColumns``) instead
        of a dense product over S * K columns of which S are non-zero, as the sequence model's
        and the planner's indexed inference do. The same layer and weights, summed in another
        order (float rounding only); the convolutions after it are the very ones of
        ``forward``. A decoder that lays z on the grid (``spatial_dim``) takes the one-hot
        features as ``forward`` does.
        """
        if self.spatial_dim:
            one_hot = F.one_hot(z_indices, classes).to(deter.dtype).flatten(1)
            return self._forward(torch.cat([deter, one_hot], 1), channels).float()
        start = deter.shape[1]
        table = one_hot_columns(self, '_project_z_table')(
            self.project.weight, start + z_indices.shape[1] * classes, start)
        columns = z_indices + torch.arange(z_indices.shape[1], device=z_indices.device) * classes
        x = F.embedding_bag(columns, table, mode='sum') \
            + F.linear(deter, self.project.weight[:, :start], self.project.bias)
        grid = (self.minres, self.minres)
        return self._convs(x.reshape((-1, self.first_channels) + grid), channels).float()

    def _forward(self, feat: torch.Tensor,
                 channels: Optional[Sequence[int]] = None) -> torch.Tensor:
        return self._convs(self._stem(feat), channels)

    def _convs(self, x: torch.Tensor, channels: Optional[Sequence[int]] = None
               ) -> torch.Tensor:
        """Run the transposed convolutions on the first stage's input (``forward``'s channels)."""
        if channels is None:
            return self.net(x)
        *hidden_layers, last = self.net
        for layer in hidden_layers:
            x = layer(x)
        index = list(channels)
        bias = last.bias[index] if last.bias is not None else None
        return F.conv_transpose2d(x, last.weight[:, index], bias, last.stride, last.padding,
                                  last.output_padding, last.groups, last.dilation)

    def _stem(self, feat: torch.Tensor) -> torch.Tensor:
        """Map features to the first conv stage's (B, channels, minres, minres) input."""
        grid = (self.minres, self.minres)
        dense = feat[:, :feat.shape[1] - self.spatial_dim]
        x = self.project(dense).reshape((-1, self.first_channels) + grid)
        if self.cell_project is not None:
            cells = self.minres * self.minres
            z = feat[:, feat.shape[1] - self.spatial_dim:].reshape(feat.shape[0], cells, -1)
            x = x + self.cell_project(z.transpose(1, 2).reshape((feat.shape[0], -1) + grid))
        return x

"""
Permutation-invariant pooling of the shared information T_{i,t} = {z_j, h_j, w_j}.

The paper conditions the encoder q(z | h, x, T) (and, in section 2, also the sequence model;
see ``condition_sequence_model`` in rssm.py) on what neighbours shared. Neighbour count varies
(0..N) and has no order, so each neighbour is embedded by one MLP (DeepSets) and the set is
reduced by a masked mean and a masked max, plus the fraction of occupied slots; zero
neighbours gives a fixed learned-free vector.
"""
import dataclasses
from typing import Optional, Tuple

from call_world_model.config import WorldModelConfig
from call_world_model.intention import IntentionEncoder
from call_world_model.networks import LinearNormAct, MLP, one_hot_columns
import torch
from torch import nn
import torch.nn.functional as F


@dataclasses.dataclass
class SharedBatch:
    """
    Neighbours' shared latents, padded to N slots; leading dims ``...`` are (B,) or (B, T).

    z_indices: (..., N, stoch) long, categorical indices in [0, classes).
    h: (..., N, deter) float, the neighbours' recurrent states.
    intention: (..., N, P, 2) float, neighbours' planned waypoints in the EGO frame [m].
    rel_pose: (..., N, 3) float, neighbour (dx, dy) [m] and dyaw [rad] in the ego frame.
    mask: (..., N) bool, True where a slot holds a real neighbour.
    """

    z_indices: torch.Tensor
    h: torch.Tensor
    intention: torch.Tensor
    rel_pose: torch.Tensor
    mask: torch.Tensor

    @classmethod
    def empty(cls, batch_shape: Tuple[int, ...], cfg: WorldModelConfig,
              slots: Optional[int] = None, device='cpu') -> 'SharedBatch':
        """All-masked batch (no neighbours) with ``slots`` (default max_neighbours) slots."""
        n = cfg.max_neighbours if slots is None else slots
        shape = tuple(batch_shape) + (n,)
        return cls(
            z_indices=torch.zeros(shape + (cfg.stoch,), dtype=torch.long, device=device),
            h=torch.zeros(shape + (cfg.deter,), device=device),
            intention=torch.zeros(shape + (cfg.intention_points, 2), device=device),
            rel_pose=torch.zeros(shape + (3,), device=device),
            mask=torch.zeros(shape, dtype=torch.bool, device=device))

    def apply(self, fn) -> 'SharedBatch':
        """Apply ``fn`` to every tensor field (indexing, ``.to(device)``, reshaping)."""
        return SharedBatch(**{f.name: fn(getattr(self, f.name))
                              for f in dataclasses.fields(self)})

    def at_time(self, t: int) -> 'SharedBatch':
        """Select step t of a (B, T, ...) batch -> (B, ...)."""
        return self.apply(lambda x: x[:, t])

    def to(self, device) -> 'SharedBatch':
        """Move all fields to ``device``."""
        return self.apply(lambda x: x.to(device))

    @classmethod
    def concat(cls, rows: 'list[Optional[SharedBatch]]', cfg: WorldModelConfig
               ) -> 'SharedBatch':
        """Stack (1,)-batches (None: no neighbours) into one (B,) batch, padded and masked."""
        slots = max([1] + [row.mask.shape[-1] for row in rows if row is not None])
        out = cls.empty((len(rows),), cfg, slots=slots)
        for index, row in enumerate(rows):
            if row is not None:
                count = row.mask.shape[-1]
                for field in dataclasses.fields(cls):
                    getattr(out, field.name)[index, :count] = getattr(row, field.name)[0]
        return out

    def validate(self, cfg: WorldModelConfig) -> None:
        """Raise ValueError when shapes, dtypes or index ranges do not fit ``cfg``."""
        lead = tuple(self.mask.shape)
        expect = {
            'z_indices': lead + (cfg.stoch,), 'h': lead + (cfg.deter,),
            'intention': lead + (cfg.intention_points, 2), 'rel_pose': lead + (3,)}
        for name, shape in expect.items():
            if tuple(getattr(self, name).shape) != shape:
                raise ValueError(f'SharedBatch.{name} must have shape {shape}, '
                                 f'got {tuple(getattr(self, name).shape)}')
        if self.mask.dtype != torch.bool:
            raise ValueError('SharedBatch.mask must be bool')
        if self.z_indices.numel() and (
                self.z_indices.min() < 0 or self.z_indices.max() >= cfg.classes):
            raise ValueError(f'SharedBatch.z_indices must be in [0, {cfg.classes})')


class SharedPooling(nn.Module):
    """DeepSets over senders: per-neighbour MLP, masked mean + max -> (..., shared_dim)."""

    def __init__(self, cfg: WorldModelConfig, intention_encoder: IntentionEncoder):
        """Share ``intention_encoder`` with the ego so neighbours' w_j match the ego's w."""
        super().__init__()
        self.cfg = cfg
        self.intention_encoder = intention_encoder
        in_dim = cfg.stoch_flat + cfg.deter + cfg.intention_dim + 4
        self.per_neighbour = MLP(in_dim, cfg.hidden, 1, cfg.shared_dim)
        self.combine = LinearNormAct(2 * cfg.shared_dim + 1, cfg.shared_dim)

    def forward(self, shared: Optional[SharedBatch], batch_shape: Tuple[int, ...]
                ) -> torch.Tensor:
        """
        Pool ``shared`` (leading dims ``batch_shape``) -> (*batch_shape, shared_dim).

        ``None`` means no neighbours and equals an all-False mask.
        """
        if shared is None or shared.mask.shape[-1] == 0:
            device = next(self.parameters()).device
            shared = SharedBatch.empty(batch_shape, self.cfg, slots=1, device=device)
        cfg = self.cfg
        mask = shared.mask.to(torch.bool)
        z_indices = shared.z_indices.long().clamp(0, cfg.classes - 1)
        w = self.intention_encoder(shared.intention)
        pose = shared.rel_pose
        pose_feat = torch.stack([
            pose[..., 0] / cfg.rel_pose_scale, pose[..., 1] / cfg.rel_pose_scale,
            torch.sin(pose[..., 2]), torch.cos(pose[..., 2])], -1)
        if torch.is_grad_enabled():
            z = F.one_hot(z_indices, cfg.classes).to(shared.h.dtype).flatten(-2)
            x = self.per_neighbour(torch.cat([z, shared.h, w, pose_feat], -1))
        else:
            x = self._per_neighbour_indexed(z_indices, torch.cat([shared.h, w, pose_feat], -1))
        m = mask.unsqueeze(-1).to(x.dtype)
        count = m.sum(-2)
        mean = (x * m).sum(-2) / count.clamp(min=1.0)
        very_negative = torch.finfo(x.dtype).min
        peak = torch.where(mask.unsqueeze(-1), x, torch.full_like(x, very_negative)).amax(-2)
        peak = torch.where(count > 0, peak, torch.zeros_like(peak))
        occupancy = count / float(cfg.max_neighbours)
        return self.combine(torch.cat([mean, peak, occupancy], -1))

    def _per_neighbour_indexed(self, z_indices: torch.Tensor, rest: torch.Tensor
                               ) -> torch.Tensor:
        """
        ``per_neighbour`` of [one-hot z, rest] at inference, from z's class indices.

        The first layer's product with a one-hot z is the sum of the weight columns its ones
        select (``networks.OneHotColumns``): one ``embedding_bag`` sum of 32 rows instead of
        1024 columns multiplied. The same weights, summed in another order (float rounding).
        """
        cfg = self.cfg
        mlp = self.per_neighbour
        linear, norm, act = mlp.hidden[0]
        split = cfg.stoch_flat
        columns = z_indices + torch.arange(cfg.stoch, device=z_indices.device) * cfg.classes
        table = one_hot_columns(self, '_per_neighbour_table')(linear.weight, split)
        looked_up = F.embedding_bag(columns.reshape(-1, cfg.stoch), table, mode='sum')
        x = act(norm(looked_up.reshape(rest.shape[:-1] + (-1,))
                     + F.linear(rest, linear.weight[:, split:])))
        for layer in list(mlp.hidden)[1:]:
            x = layer(x)
        return mlp.out(x) if mlp.out is not None else x

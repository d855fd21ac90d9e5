"""
Recurrent state-space model of DreamerV3 (paper App. E.2 eq. 11) with CALL's context.

With ``condition_sequence_model: false`` (every preset):

Sequence model   h_t = f(h_{t-1}, z_{t-1}, a_{t-1})        (LayerNorm GRU, eq. 11)
Encoder          z_t ~ q(z_t | h_t, x_t, s_t, w_t)         (posterior, 32 x 32 categoricals)
Dynamics         z_t ~ p(z_t | h_t)                        (prior)

With ``condition_sequence_model: true`` (legacy checkpoints): h_t = f(h_{t-1}, z_{t-1},
a_{t-1}, c_t) with c_t = [s_t, w_t], and the encoder sees [h_t, x_t, s_t].

s_t is the pooled shared information T_t, w_t the own latent intention, x_t the BEV embedding.
Why the context leaves the sequence model: paper section 2 writes T into both f and q, but
App. E.2 eq. 11 (the model CALL trains) has the plain f(h, z, a), and section 3.1 eq. 1 feeds
f with the state "after incorporating" the shared information. The posterior z_t already
carries T_t (and w_t) into h_{t+1}, so nothing is lost, and h becomes a deterministic function
of the (z, a) stream: a receiver holding the same model rebuilds a sender's h from the 20-byte
z and the action it hears (issue 11, ``call_comm.replica``) instead of receiving 8 KB of h.
:meth:`RSSM.sequence_step` is that one function, shared by the sender and every replica.

A state is a dict: 'deter' (B, D), 'stoch' (B, S, K) one-hot straight-through sample whose
values are exactly 0/1, 'logits' (B, S, K) unimix log-probabilities of its distribution.
"""
from typing import Dict, Optional

from call_world_model.config import WorldModelConfig
from call_world_model.distributions import mode_one_hot, sample_one_hot, unimix_logits
from call_world_model.networks import (init_fan_avg_, LinearNormAct, one_hot_columns,
                                       output_linear)
import torch
from torch import nn
import torch.nn.functional as F

State = Dict[str, torch.Tensor]


class NormGRUCell(nn.Module):
    """
    DreamerV3 GRU: one linear on [x, h] -> LayerNorm -> reset/candidate/update gates.

    The update gate is biased by -1 so the cell starts by mostly keeping its state.
    """

    def __init__(self, in_dim: int, units: int):
        """Create the fused gate projection."""
        super().__init__()
        self.linear = nn.Linear(in_dim + units, 3 * units, bias=False)
        init_fan_avg_(self.linear.weight)
        self.norm = nn.LayerNorm(3 * units, eps=1e-3)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One step: (B, in_dim), (B, units) -> new h (B, units)."""
        return self.step(x, h)

    def step(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """
        ``forward`` without the module dispatch of the cell and its two layers.

        The functional ops the modules call, with the same arguments, so the same floats; a
        replica steps one row at a time, where the dispatch costs as much as the arithmetic.
        """
        norm = self.norm
        parts = F.layer_norm(F.linear(torch.cat([x, h], -1), self.linear.weight),
                             norm.normalized_shape, norm.weight, norm.bias, norm.eps)
        reset, cand, update = parts.chunk(3, -1)
        reset = torch.sigmoid(reset)
        cand = torch.tanh(reset * cand)
        update = torch.sigmoid(update - 1.0)
        return update * cand + (1.0 - update) * h


class RSSM(nn.Module):
    """Prior/posterior steps over discrete latents; ``embed_dim`` is the BEV embedding size."""

    def __init__(self, cfg: WorldModelConfig, embed_dim: int):
        """Size all layers from ``cfg``; conditioning c = shared_dim + intention_dim."""
        super().__init__()
        self.cfg = cfg
        self.conditioned = cfg.condition_sequence_model
        cond = cfg.shared_dim + cfg.intention_dim
        seq_in = cfg.stoch_flat + cfg.num_actions + (cond if self.conditioned else 0)
        self.local = cfg.obs_input == 'local'
        obs_in = (cfg.deter + (0 if self.local else embed_dim)
                  + (cfg.shared_dim if self.conditioned else cond))
        self.img_in = LinearNormAct(seq_in, cfg.hidden)
        self.gru = NormGRUCell(cfg.hidden, cfg.deter)
        self.img_out = nn.Sequential(LinearNormAct(cfg.deter, cfg.hidden),
                                     output_linear(cfg.hidden, cfg.stoch_flat))
        dims = [obs_in] + [cfg.hidden] * cfg.obs_layers
        self.obs_out = nn.Sequential(
            *[LinearNormAct(a, b) for a, b in zip(dims[:-1], dims[1:])],
            output_linear(dims[-1], cfg.stoch_flat))
        self.obs_cell = None
        if self.local:
            cells = cfg.minres * cfg.minres
            if embed_dim % cells:
                raise ValueError(f'embedding size {embed_dim} is not a {cfg.minres} x '
                                 f'{cfg.minres} grid')
            self.obs_cell = nn.Conv2d(embed_dim // cells, cfg.stoch_flat // cells, 1)
            init_fan_avg_(self.obs_cell.weight)
            nn.init.zeros_(self.obs_cell.bias)
        self.initial_deter = nn.Parameter(torch.zeros(cfg.deter),
                                          requires_grad=cfg.initial == 'learned')

    def _dist_logits(self, raw: torch.Tensor) -> torch.Tensor:
        raw = raw.reshape(raw.shape[:-1] + (self.cfg.stoch, self.cfg.classes))
        return unimix_logits(raw, self.cfg.unimix)

    def initial(self, batch: int) -> State:
        """Start state: h = tanh(learned vector), z = mode of the prior p(z | h)."""
        deter = torch.tanh(self.initial_deter).unsqueeze(0).expand(batch, -1)
        logits = self._dist_logits(self.img_out(deter))
        return {'deter': deter, 'stoch': _exact(mode_one_hot(logits)), 'logits': logits}

    def sequence_step(self, deter: torch.Tensor, stoch: torch.Tensor,
                      action_one_hot: torch.Tensor,
                      cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Sequence model h_t = f(h_{t-1}, z_{t-1}, a_{t-1}[, c_t]): (B, D) -> (B, D).

        stoch (B, S, K) one-hot, action_one_hot (B, A); ``cond`` (B, shared + intention) is
        used only by a conditioned (legacy) model. Senders and replicas both call this, so the
        same inputs give bit-identical h in float32 with a fixed thread count. Without
        gradients, z is read by its argmax (it must be one-hot, as every state here is).
        """
        if not self.conditioned and stoch.dim() == 3:
            if torch.is_grad_enabled():
                return self.gru(self._img_in_one_hot(stoch, action_one_hot), deter)
            return self.gru(self._img_in_indexed(stoch.argmax(-1), action_one_hot), deter)
        parts = [stoch.flatten(-2), action_one_hot]
        if self.conditioned:
            if cond is None:
                raise ValueError('a conditioned sequence model needs cond = [s, w]')
            parts.append(cond)
        return self.gru(self.img_in(torch.cat(parts, -1)), deter)

    def _img_in_one_hot(self, stoch: torch.Tensor, action_one_hot: torch.Tensor
                        ) -> torch.Tensor:
        """
        ``img_in`` of [z, a] whose values are one-hots, without multiplying the one-hots.

        Training only (gradients on): a row of z holds one 1 per latent, so its product with
        the first weight is a sum of S weight columns and the weight's gradient touches only
        those columns. The straight-through gradient to z's probabilities is kept.
        """
        linear, norm, act = self.img_in
        flat = stoch.flatten(-2)
        classes = stoch.shape[-1]
        columns = stoch.argmax(-1) + torch.arange(stoch.shape[-2], device=stoch.device) * classes
        x = _OneHotLinear.apply(flat, action_one_hot, linear.weight, columns)
        return act(norm(x))

    def _img_in_indexed(self, z_indices: torch.Tensor, action_one_hot: torch.Tensor
                        ) -> torch.Tensor:
        """
        ``img_in`` of [one-hot z, a] at inference, from z's class indices (B, S).

        The product of a one-hot row with the first weight is the sum of the S weight columns
        its ones select: one ``embedding_bag`` sum of S rows of the weight's z columns (transposed,
        ``OneHotColumns``) instead of multiplying S * K columns of which S are non-zero. The same
        layer and weights, summed in another order (float rounding). Each row's sum is
        independent of the batch, so a sender and a replica stepping different batches still
        agree bit for bit.
        """
        linear, norm, act = self.img_in
        x = self._img_in_z(z_indices) \
            + F.linear(action_one_hot, linear.weight[:, self.cfg.stoch_flat:])
        return act(norm(x))

    def _img_in_z(self, z_indices: torch.Tensor) -> torch.Tensor:
        """(B, out) z's part of ``img_in``'s first product: its S selected columns, summed."""
        table = one_hot_columns(self, '_img_in_table')(self.img_in[0].weight, self.cfg.stoch_flat)
        return F.embedding_bag(z_indices + self._z_offsets(z_indices), table, mode='sum')

    def _img_in_rows(self, z_indices: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """
        ``_img_in_indexed`` of z's class indices (B, S) and action indices (B,), at inference.

        The action's one-hot times the weight's action columns is the column its one selects,
        exactly: each output is one product by 1.0 plus products by 0.0, so for the finite
        weights of a checkpoint it equals that weight. So the action's part is a row of the
        transposed action columns (``OneHotColumns``) instead of a one-hot and a product; with
        the layer's norm and SiLU as functional ops, a replica's one-row step (the V2V
        receivers rebuild each sender's h with it) makes half the calls.
        """
        linear, norm, _ = self.img_in
        split = self.cfg.stoch_flat
        weight = linear.weight
        if not self._finite_action_columns(weight):
            return self._img_in_indexed(z_indices, self.action_one_hot(action))
        actions = one_hot_columns(self, '_img_in_action_table')(weight, weight.shape[1], split)
        x = self._img_in_z(z_indices) + actions.index_select(0, action)
        return F.silu(F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps))

    def _finite_action_columns(self, weight: torch.Tensor) -> bool:
        """Whether the weight's action columns are finite (0 * inf breaks the row lookup)."""
        key = (weight.data_ptr(), weight._version)
        known = self.__dict__.get('_action_columns_finite')
        if known is None or known[0] != key:
            finite = bool(torch.isfinite(weight[:, self.cfg.stoch_flat:]).all())
            known = self.__dict__['_action_columns_finite'] = (key, finite)
        return known[1]

    def _z_offsets(self, z_indices: torch.Tensor) -> torch.Tensor:
        """(S,) column offset of each latent's classes, kept per device."""
        offsets = self.__dict__.get('_z_offsets_cache')
        if offsets is None or offsets.device != z_indices.device or \
                offsets.shape[0] != z_indices.shape[-1]:
            offsets = torch.arange(z_indices.shape[-1], device=z_indices.device) \
                * self.cfg.classes
            self.__dict__['_z_offsets_cache'] = offsets
        return offsets

    def img_step(self, prev: State, action_one_hot: torch.Tensor, cond: Optional[torch.Tensor],
                 sample: bool = True) -> State:
        """
        Prior step: h_t = f(h, z, a[, c]), z_t ~ p(z | h_t) (mode if ``sample`` is False).

        ``cond`` enters only a conditioned (legacy) sequence model; see the module doc.
        """
        deter = self.sequence_step(prev['deter'], prev['stoch'], action_one_hot, cond)
        logits = self._dist_logits(self.img_out(deter))
        stoch = sample_one_hot(logits) if sample else mode_one_hot(logits)
        return {'deter': deter, 'stoch': _exact(stoch), 'logits': logits}

    def embed_term(self, embed: torch.Tensor) -> torch.Tensor:
        """
        Compute the posterior's part that depends on the embedding alone: (N, E) -> (N, F).

        ``local``: the per-cell logits; otherwise the embedding's columns of the posterior's
        first linear layer. A sequence computes it for all its frames in one product before
        the recurrent loop (``obs_step(embed_term=...)``), instead of one small product and
        one weight gradient per frame: the same sum, in another order.
        """
        if self.local:
            return self.cell_logits(embed)
        first = self._obs_first_linear()
        start = self.cfg.deter
        return F.linear(embed, first.weight[:, start:start + embed.shape[-1]])

    def _obs_first_linear(self) -> nn.Linear:
        layer = self.obs_out[0]
        return layer[0] if isinstance(layer, LinearNormAct) else layer

    def _posterior_raw(self, deter: torch.Tensor, context: torch.Tensor,
                       embed_term: torch.Tensor) -> torch.Tensor:
        """Posterior logits before unimix from h, the context and ``embed_term``."""
        if self.local:
            return self.obs_out(torch.cat([deter, context], -1)) + embed_term
        first = self._obs_first_linear()
        weight = first.weight
        d, e = deter.shape[-1], weight.shape[1] - deter.shape[-1] - context.shape[-1]
        x = (F.linear(deter, weight[:, :d]) + embed_term
             + F.linear(context, weight[:, d + e:]))
        if first.bias is not None:
            x = x + first.bias
        layer = self.obs_out[0]
        if isinstance(layer, LinearNormAct):
            x = layer[2](layer[1](x))
        return self.obs_out[1:](x)

    def prior_of(self, deter: torch.Tensor, sample: bool = True) -> State:
        """Prior p(z | h) of any number of h (..., D) at once (the loop-free part of img_step)."""
        logits = self._dist_logits(self.img_out(deter))
        stoch = sample_one_hot(logits) if sample else mode_one_hot(logits)
        return {'deter': deter, 'stoch': _exact(stoch), 'logits': logits}

    def obs_step(self, prev: State, prev_action: torch.Tensor, embed: torch.Tensor,
                 is_first: torch.Tensor, shared_vec: torch.Tensor,
                 intention_vec: torch.Tensor, sample: bool = True, with_prior: bool = True,
                 embed_term: Optional[torch.Tensor] = None):
        """
        Posterior step; rows with ``is_first`` restart from the initial state, no action.

        Returns (post, prior) states for this step; prior is None with ``with_prior=False``
        (inference that only filters: the prior head and its sample are skipped). A
        precomputed ``embed_term`` (``embed_term(embed)``) replaces ``embed``.
        """
        batch = (embed if embed is not None else embed_term).shape[0]
        first = is_first.to(torch.bool)
        action = self.action_one_hot(prev_action) if prev_action.dim() == 1 else prev_action
        if first.any():
            init = self.initial(batch)
            prev = {k: torch.where(_expand(first, v), init[k], v) for k, v in prev.items()}
            action = action * (~first).to(action.dtype).unsqueeze(-1)
        cond = torch.cat([shared_vec, intention_vec], -1)
        if with_prior:
            prior = self.img_step(prev, action, cond, sample=sample)
            deter = prior['deter']
        else:
            prior, deter = None, self.sequence_step(prev['deter'], prev['stoch'], action, cond)
        context = shared_vec if self.conditioned else cond
        if embed_term is not None:
            raw = self._posterior_raw(deter, context, embed_term)
        elif self.local:
            raw = self.obs_out(torch.cat([deter, context], -1)) + self.cell_logits(embed)
        else:
            raw = self.obs_out(torch.cat([deter, embed, context], -1))
        logits = self._dist_logits(raw)
        stoch = _exact(sample_one_hot(logits) if sample else mode_one_hot(logits))
        return {'deter': deter, 'stoch': stoch, 'logits': logits}, prior

    def cell_logits(self, embed: torch.Tensor) -> torch.Tensor:
        """
        Posterior logits of ``obs_input: local``: (B, embed_dim) -> (B, stoch * classes).

        The embedding is the encoder's (channels, minres, minres) map flattened; a 1x1 conv
        maps each cell's channels to the logits of that cell's stoch / minres**2 latents, in
        the cell-major order in which the spatial decoder (``networks.ConvDecoder``) lays them
        back on the grid. Why: with the embedding's dense map, categorical latents kept the
        few-pixel vehicles out of short CPU runs (checkpoints/README.md).
        """
        res = self.cfg.minres
        grid = embed.reshape(embed.shape[0], -1, res, res)
        return self.obs_cell(grid).flatten(2).transpose(1, 2).reshape(embed.shape[0], -1)

    def advance(self, deter: torch.Tensor, z_indices: torch.Tensor,
                action: torch.Tensor) -> torch.Tensor:
        """
        h_t from h_{t-1} and the integers a receiver hears: z_{t-1} indices, a_{t-1}.

        (B, D), (B, S) long, (B,) long -> (B, D): the exact one-hots of ``sequence_step``, so a
        receiver's replica (call_comm.replica) matches the sender's h bit for bit.
        """
        if not self.conditioned and not torch.is_grad_enabled():
            return self.gru.step(self._img_in_rows(z_indices.long(), action.long()), deter)
        stoch = F.one_hot(z_indices.long(), self.cfg.classes).to(deter.dtype)
        return self.sequence_step(deter, stoch, self.action_one_hot(action))

    def action_one_hot(self, action: torch.Tensor) -> torch.Tensor:
        """(B,) long action indices -> (B, num_actions) float one-hot."""
        return F.one_hot(action.long(), self.cfg.num_actions).to(self.initial_deter.dtype)


class _OneHotLinear(torch.autograd.Function):
    """weight @ [z, a] for one-hot rows z (B, S*K) given as their column indices, any a."""

    @staticmethod
    def forward(ctx, flat, action, weight, columns):  # noqa: D102
        split = flat.shape[-1]
        ctx.save_for_backward(weight, columns, action)
        ctx.split = split
        # an action row may be all zeros (episode start): it goes through a plain product
        return weight[:, :split].t()[columns].sum(-2) + action @ weight[:, split:].t()

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        weight, columns, action = ctx.saved_tensors
        split = ctx.split
        grad_weight = torch.zeros_like(weight)
        rows = grad.unsqueeze(-2).expand(columns.shape + grad.shape[-1:])
        grad_weight[:, :split].t().index_put_(
            (columns.reshape(-1),), rows.reshape(-1, grad.shape[-1]), accumulate=True)
        grad_weight[:, split:] = grad.t() @ action
        return grad @ weight[:, :split], grad @ weight[:, split:], grad_weight, None


def _exact(stoch: torch.Tensor) -> torch.Tensor:
    """
    Straight-through one-hot whose VALUES are exactly 0/1 (gradients unchanged).

    ``one_hot + probs - probs.detach()`` rounds to 1 +- 1 ulp in float32; the replica of a
    receiver feeds an exact one-hot of the received indices, so the sender must too.
    """
    hard = F.one_hot(stoch.argmax(-1), stoch.shape[-1]).to(stoch.dtype)
    return hard + (stoch - stoch.detach())


def _expand(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.reshape(mask.shape + (1,) * (like.dim() - mask.dim()))


def features(state: State) -> torch.Tensor:
    """Return the model state features [h, flatten(z)] (..., D + S*K) of heads/actor-critic."""
    return torch.cat([state['deter'], state['stoch'].flatten(-2)], -1)


def stack_states(states, dim: int = 1) -> State:
    """Stack a list of states along ``dim`` (time)."""
    return {k: torch.stack([s[k] for s in states], dim) for k in states[0]}


def index_state(state: State, index) -> State:
    """Index every tensor of a state, e.g. with ``(slice(None), -1)`` for the last step."""
    return {k: v[index] for k, v in state.items()}


def detach_state(state: State) -> State:
    """Detached copy (carry a state across training batches without backprop)."""
    return {k: v.detach() for k, v in state.items()}

"""
CALL world model: DreamerV3 RSSM over the ego BEV, conditioned on shared information.

Shared information T_t (pooled to s_t) and the own intention w_t condition the posterior
q(z_t | h_t, x_t, s_t, w_t); the sequence model is the paper's f(h, z, a) unless the config
sets ``condition_sequence_model`` (legacy; see ``rssm.py`` for why).

One :class:`WorldModel` owns the CNN encoder, the RSSM, the heads (``decoder``, ``reward``,
``cont``), the latent-intention encoder and the shared-information pooling; its loss is a
dict of named terms scaled by the config and summed once (paper eq. 12-13).

Data conventions (replay batches, ``loss`` / ``train_step``), leading dims (B, T):

* ``bev``: (B, T, C, S, S) uint8 or float. uint8 masks are binarised (any non-zero = 1, so both
  0/1 and 0/255 encodings work); floats must be in [0, 1].
* ``prev_action``: (B, T) long, the action a_{t-1} taken BEFORE frame t (ignored where
  ``is_first``).
* ``reward``: (B, T) float, reward r_t received on the transition INTO frame t.
* ``cont``: (B, T) float, 1 - terminal(frame t).
* ``is_first``: (B, T) bool, frame t starts an episode (state resets to the initial state).
* ``shared``: :class:`SharedBatch` with leading (B, T) or None (no neighbours).
* ``intention``: (B, T, P, 2) ego-frame own planned waypoints [m] valid at frame t, or None.

Why Bernoulli (BCE-with-logits) for the decoder instead of DreamerV3's MSE on images: every BEV
channel is a binary mask (road, lanes, vehicles, routes), so a per-pixel Bernoulli is the exact
likelihood; MSE on {0, 1} targets gives vanishing gradients for confident mistakes and blurs
thin structures (lane lines, waypoints), and its probabilities are directly the prediction.
"""
from typing import Dict, List, Optional, Sequence, Tuple

from call_world_model.config import WorldModelConfig
from call_world_model.distributions import (
    bernoulli_log_prob, categorical_entropy, categorical_kl, TwoHotSymlog)
from call_world_model.intention import IntentionEncoder
from call_world_model.networks import ConvDecoder, ConvEncoder, MLP
from call_world_model.rssm import features, RSSM, stack_states, State
from call_world_model.shared_pooling import SharedBatch, SharedPooling
import torch
from torch import nn
from torch.nn import functional as F


def bev_to_float(bev: torch.Tensor) -> torch.Tensor:
    """Convert a BEV: uint8 masks -> {0, 1} float (non-zero = 1); float input clamped to [0, 1]."""
    if bev.dtype == torch.uint8:
        return (bev > 0).float()
    return bev.float().clamp(0.0, 1.0)


def kl_losses(post_logits: torch.Tensor, prior_logits: torch.Tensor, free_bits: float
              ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    DreamerV3 KL balancing with free bits (paper eq. 13).

    dyn = max(free, KL[sg(q) || p]) trains the prior towards the posterior;
    rep = max(free, KL[q || sg(p)]) regularises the posterior towards the prior.
    Returns (dyn, rep, raw KL) per element of the leading dims; below ``free`` nats the
    clipped terms are constant, so they give no gradient (the "free bits").
    """
    dyn_raw = categorical_kl(post_logits.detach(), prior_logits)
    rep_raw = categorical_kl(post_logits, prior_logits.detach())
    dyn = torch.clamp(dyn_raw, min=free_bits)
    rep = torch.clamp(rep_raw, min=free_bits)
    return dyn, rep, dyn_raw.detach()


class WorldModel(nn.Module):
    """RSSM world model with heads and shared/intention conditioning (see module doc)."""

    def __init__(self, cfg: WorldModelConfig):
        """Build every part from ``cfg`` (see config/presets.yaml)."""
        super().__init__()
        self.cfg = cfg
        self.encoder = ConvEncoder(cfg.bev_channels, cfg.bev_size, cfg.cnn_depth,
                                   cfg.cnn_mults, cfg.minres)
        self.rssm = RSSM(cfg, self.encoder.out_dim)
        self.intention_encoder = IntentionEncoder(cfg)
        self.shared_pooling = SharedPooling(cfg, self.intention_encoder)
        self.heads = nn.ModuleDict({
            'decoder': ConvDecoder(
                cfg.feat_dim, cfg.bev_channels, cfg.cnn_depth, cfg.cnn_mults, cfg.minres,
                cfg.stoch_flat if cfg.decoder_input == 'spatial' else 0),
            'reward': MLP(cfg.feat_dim, cfg.hidden, cfg.mlp_layers, cfg.reward_bins, 0.0),
            'cont': MLP(cfg.feat_dim, cfg.hidden, cfg.mlp_layers, 1),
        })
        self.encoder.bf16 = self.heads['decoder'].bf16 = cfg.train_conv_bf16
        self.reward_dist = TwoHotSymlog.linspace(cfg.bins_low, cfg.bins_high, cfg.reward_bins)
        self.loss_scales = {'image': cfg.pred_scale, 'reward': cfg.pred_scale,
                            'cont': cfg.pred_scale, 'dyn': cfg.dyn_scale,
                            'rep': cfg.rep_scale, 'prior_image': cfg.prior_image_scale}
        self._optimizer: Optional[torch.optim.Optimizer] = None

    # ---------------------------------------------------------------- conditioning
    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.rssm.initial_deter.device

    def shared_vector(self, shared: Optional[SharedBatch], batch_shape) -> torch.Tensor:
        """Pooled shared information (*batch_shape, shared_dim); None = no neighbours."""
        return self.shared_pooling(shared, tuple(batch_shape))

    def intention_vector(self, intention: Optional[torch.Tensor], batch_shape) -> torch.Tensor:
        """Latent intention w (*batch_shape, intention_dim); None = no plan (zeros)."""
        if intention is None:
            return torch.zeros(tuple(batch_shape) + (self.cfg.intention_dim,),
                               device=self.device)
        return self.intention_encoder(intention.float())

    # ---------------------------------------------------------------- RSSM API
    def initial_state(self, batch: int) -> State:
        """Return the initial state for ``batch`` rows: deter (B, D), stoch/logits (B, 32, 32)."""
        return self.rssm.initial(batch)

    def observe_step(self, state: Optional[State], prev_action: torch.Tensor,
                     bev: torch.Tensor, is_first: torch.Tensor,
                     shared: Optional[SharedBatch] = None,
                     intention: Optional[torch.Tensor] = None, sample: bool = True,
                     with_prior: bool = True, intention_vec: Optional[torch.Tensor] = None):
        """
        Filter one frame: (state_{t-1}, a_{t-1}, BEV_t, T_t, w_t) -> (post_t, prior_t).

        prev_action (B,) long; bev (B, C, S, S) uint8 or float in [0, 1]; is_first (B,) bool;
        shared with leading (B,) or None; intention (B, P, 2) or None. ``state=None`` starts
        from the initial state. ``with_prior=False`` skips the prior (returned as None). A
        precomputed ``intention_vec`` (B, intention_dim) replaces ``intention`` (rows of a
        batch may mix a plan with none, see ``observe_batch``).
        """
        batch = bev.shape[0]
        if state is None:
            state = self.initial_state(batch)
        if intention_vec is None:
            intention_vec = self.intention_vector(intention, (batch,))
        embed = self.encoder(bev_to_float(bev))
        return self.rssm.obs_step(
            state, prev_action, embed, is_first, self.shared_vector(shared, (batch,)),
            intention_vec, sample=sample, with_prior=with_prior)

    def observe(self, bev: torch.Tensor, prev_actions: torch.Tensor, is_first: torch.Tensor,
                shared: Optional[SharedBatch] = None, intention: Optional[torch.Tensor] = None,
                state: Optional[State] = None, sample: bool = True):
        """Filter a sequence (B, T, ...) -> (posts, priors), each a state stacked on dim 1."""
        batch, steps = bev.shape[:2]
        embed = self.encoder(bev_to_float(bev).flatten(0, 1))
        # what depends on the frames alone is computed for all of them before the recurrence,
        # and the prior p(z | h) after it: the loop keeps only the sequential posterior
        term = self.rssm.embed_term(embed).reshape(batch, steps, -1)
        shared_vec = self.shared_vector(shared, (batch, steps))
        intent_vec = self.intention_vector(intention, (batch, steps))
        state = self.initial_state(batch) if state is None else state
        posts = []
        for t in range(steps):
            state, _ = self.rssm.obs_step(
                state, prev_actions[:, t], None, is_first[:, t], shared_vec[:, t],
                intent_vec[:, t], sample=sample, with_prior=False, embed_term=term[:, t])
            posts.append(state)
        posts = stack_states(posts)
        return posts, self.rssm.prior_of(posts['deter'], sample=sample)

    def imagine_step(self, state: State, action: torch.Tensor,
                     shared: Optional[SharedBatch] = None,
                     intention: Optional[torch.Tensor] = None, sample: bool = True,
                     shared_vec: Optional[torch.Tensor] = None) -> State:
        """
        Prior step without an observation: (state_t, a_t) -> state_{t+1} ~ p.

        action (B,) long (or (B, A) one-hot). ``shared``/``intention`` are held as given; a
        precomputed ``shared_vec`` (B, shared_dim) skips the pooling in long rollouts. They only
        act on a conditioned (legacy) sequence model: otherwise the context already entered
        through the posterior the rollout starts from.
        """
        batch = state['deter'].shape[0]
        if action.dim() == 1:
            action = self.rssm.action_one_hot(action)
        if not self.rssm.conditioned:
            return self.rssm.img_step(state, action, None, sample=sample)
        if shared_vec is None:
            shared_vec = self.shared_vector(shared, (batch,))
        cond = torch.cat([shared_vec, self.intention_vector(intention, (batch,))], -1)
        return self.rssm.img_step(state, action, cond, sample=sample)

    def rollout(self, start_state: State, actions: torch.Tensor,
                shared: Optional[SharedBatch] = None, intention: Optional[torch.Tensor] = None,
                sample: bool = True) -> State:
        """
        Open-loop imagination of actions (B, K) -> prior states stacked on dim 1 (B, K, ...).

        Step k is the state after taking actions[:, k]; shared/intention are held constant.
        """
        batch = start_state['deter'].shape[0]
        shared_vec = self.shared_vector(shared, (batch,)) if self.rssm.conditioned else None
        state, states = start_state, []
        for k in range(actions.shape[1]):
            state = self.imagine_step(state, actions[:, k], intention=intention, sample=sample,
                                      shared_vec=shared_vec)
            states.append(state)
        return stack_states(states)

    # ---------------------------------------------------------------- heads
    def features(self, state: State) -> torch.Tensor:
        """Return the features [h, flatten(z)] (..., D + 1024)."""
        return features(state)

    def decode(self, state: State) -> torch.Tensor:
        """BEV logits (..., C, S, S) (Bernoulli per pixel; sigmoid gives probabilities)."""
        feat = self.features(state)
        lead = feat.shape[:-1]
        out = self.heads['decoder'](feat.reshape(-1, feat.shape[-1]))
        return out.reshape(lead + out.shape[1:])

    def bev_probs(self, state: State, channels: Optional[Sequence[int]] = None
                  ) -> torch.Tensor:
        """
        Calibrated BEV probabilities (..., C, S, S) of a state; only ``channels`` if given.

        A positive weight w on a channel's likelihood (``image_pos_weight``) moves the optimal
        logit by log w, like prior odds; removing it again gives the Bernoulli probabilities
        that a 0.5 threshold and the prediction error E expect. With ``channels`` (inference)
        the decoder computes those channels alone (``ConvDecoder.forward``): the same values
        as the full image's slice, for a fraction of the last layer and of the calibration.
        """
        if channels is None:
            return torch.sigmoid(self.calibrate(self.decode(state)))
        index = [int(c) for c in channels]
        feat = self.features(state)
        lead = feat.shape[:-1]
        logits = self.heads['decoder'](feat.reshape(-1, feat.shape[-1]), index)
        return self._channel_probs(logits.reshape(lead + logits.shape[1:]), index)

    def bev_probs_indexed(self, z_indices: torch.Tensor, deter: torch.Tensor,
                          channels: Sequence[int]) -> torch.Tensor:
        """
        ``bev_probs`` of the states (h, one-hot z) (N, len(channels), S, S), at inference.

        z as class indices (N, S): the decoder's first linear gathers the columns the one-hot
        selects (``ConvDecoder._from_indices``) instead of multiplying all S * K of them; the
        same probabilities up to float rounding.
        """
        index = [int(c) for c in channels]
        logits = self.heads['decoder'](deter, index, z_indices=z_indices, classes=self.cfg.classes)
        return self._channel_probs(logits, index)

    def _channel_probs(self, logits: torch.Tensor, index: List[int]) -> torch.Tensor:
        """Calibrated probabilities of the decoded channels ``index`` (pos-weight shift out)."""
        weight = self._pos_weight(logits.device)
        return torch.sigmoid(logits if weight is None else logits - weight[index].log())

    def calibrate(self, image_logits: torch.Tensor) -> torch.Tensor:
        """Remove the log pos-weight offset from the weighted channels' logits (..., C, S, S)."""
        weight = self._pos_weight(image_logits.device)
        if weight is None:
            return image_logits
        return image_logits - weight.log()

    def reward(self, state: State) -> torch.Tensor:
        """Return the two-hot symlog reward head's expected value (...,)."""
        return self.reward_dist.mean(self.heads['reward'](self.features(state)))

    def cont(self, state: State) -> torch.Tensor:
        """Probability (...,) that the episode continues."""
        return torch.sigmoid(self.heads['cont'](self.features(state)).squeeze(-1))

    # ---------------------------------------------------------------- prediction
    @torch.no_grad()
    def predict_bev(self, context_bev: torch.Tensor, context_prev_actions: torch.Tensor,
                    actions: torch.Tensor, context_is_first: Optional[torch.Tensor] = None,
                    shared: Optional[SharedBatch] = None,
                    intention: Optional[torch.Tensor] = None, sample: bool = False
                    ) -> torch.Tensor:
        """
        Observe context frames (B, T0, C, S, S), then imagine ``actions`` (B, K) open loop.

        actions[:, 0] is taken after the last context frame; returns BEV probabilities
        (B, K, C, S, S) of the K following frames. shared/intention have leading (B, T0) and
        their last step is held during the rollout. ``sample=False`` follows the modes
        (deterministic evaluation).
        """
        batch, steps = context_bev.shape[:2]
        if context_is_first is None:
            context_is_first = torch.zeros(batch, steps, dtype=torch.bool,
                                           device=context_bev.device)
            context_is_first[:, 0] = True
        posts, _ = self.observe(context_bev, context_prev_actions, context_is_first, shared,
                                intention, sample=sample)
        last = {k: v[:, -1] for k, v in posts.items()}
        last_shared = shared.at_time(-1) if shared is not None else None
        last_intention = intention[:, -1] if intention is not None else None
        states = self.rollout(last, actions, last_shared, last_intention, sample=sample)
        return self.bev_probs(states)

    # ---------------------------------------------------------------- training
    def observe_batch(self, batch: Dict, state: Optional[State] = None):
        """`observe` a replay batch (keys as for `loss`) -> (posts, priors), (B, T, ...)."""
        return self.observe(
            bev_to_float(batch['bev'].to(self.device)), batch['prev_action'].to(self.device),
            batch['is_first'].to(self.device), _to(batch.get('shared'), self.device),
            _to(batch.get('intention'), self.device), state)

    def loss(self, batch: Dict, state: Optional[State] = None):
        """
        World-model loss of a replay batch (see module doc for the keys).

        Returns (loss scalar, metrics {name: float}, posts stacked (B, T, ...)).
        Terms per (b, t): image/reward/cont negative log-likelihoods (scale pred 1.0),
        dyn (0.5) and rep (0.1) with free bits; loss = mean_{b,t} sum_k scale_k * term_k.
        """
        target = bev_to_float(batch['bev'].to(self.device))
        posts, priors = self.observe_batch(batch, state)
        feat = features(posts)
        batch_size, steps = feat.shape[:2]
        flat = feat.reshape(batch_size * steps, -1)
        image_logits = self.heads['decoder'](flat).reshape(target.shape)
        reward_logits = self.heads['reward'](feat)
        cont_logits = self.heads['cont'](feat).squeeze(-1)
        losses = {
            'image': self._image_nll(image_logits, target).sum((-1, -2, -3)),
            'reward': -self.reward_dist.log_prob(
                reward_logits, batch['reward'].to(self.device).float()),
            'cont': -bernoulli_log_prob(cont_logits, batch['cont'].to(self.device).float()),
        }
        dyn, rep, kl = kl_losses(posts['logits'], priors['logits'], self.cfg.free_bits)
        losses['dyn'] = dyn
        losses['rep'] = rep
        if self.cfg.prior_image_scale > 0.0:
            losses['prior_image'] = self._prior_image_nll(priors, target,
                                                          batch['is_first'].to(self.device))
        scaled = {k: v * self.loss_scales[k] for k, v in losses.items()}
        model_loss = sum(scaled.values())
        loss = model_loss.mean()
        metrics = {f'{k}_loss': float(v.mean().detach()) for k, v in losses.items()}
        metrics['model_loss'] = float(loss.detach())
        metrics['kl'] = float(kl.mean())
        metrics['prior_ent'] = float(categorical_entropy(priors['logits']).mean().detach())
        metrics['post_ent'] = float(categorical_entropy(posts['logits']).mean().detach())
        with torch.no_grad():
            probs = torch.sigmoid(self.calibrate(image_logits))
            metrics['image_acc'] = float(((probs > 0.5).float() == target).float().mean())
        return loss, metrics, posts

    def _prior_image_nll(self, priors: State, target: torch.Tensor, is_first: torch.Tensor
                         ) -> torch.Tensor:
        """
        Image NLL (B, T) of each frame decoded from its prior state (h_t, z_t ~ p(z | h_t)).

        Open-loop prediction decodes prior states, which the DreamerV3 loss never decodes: the
        prior there only matches the posterior's codes through the KL, and a code it misses
        drops that cell's vehicle. This term asks the prior (through the straight-through z)
        and the sequence model that carries vehicles in h for latents that the decoder reads
        as the true next frame, in the spirit of PlaNet's latent overshooting (Hafner et al.
        2019, section 4) with a reconstruction target. The decoder's weights get no gradient
        from it: they stay the posterior's likelihood, not a blur that also fits uncertain
        prior codes. A frame that starts an episode has no past to predict it from and is
        left out.
        """
        feat = features(priors)
        batch_size, steps = feat.shape[:2]
        decoder = self.heads['decoder']
        frozen = {name: p.detach() for name, p in decoder.named_parameters()}
        logits = torch.func.functional_call(
            decoder, frozen, (feat.reshape(batch_size * steps, -1),)).reshape(target.shape)
        nll = self._image_nll(logits, target).sum((-1, -2, -3))
        return nll * (~is_first.to(torch.bool)).to(nll.dtype)

    def _image_nll(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """
        Per-pixel Bernoulli NLL of the BEV; vehicle channels may weigh their positives more.

        Vehicles are a few hundred of 114k pixels: with the plain likelihood a short CPU run
        learns the static road long before any vehicle (``image_pos_weight`` in presets.yaml).
        """
        weight = self._pos_weight(logits.device)
        if weight is None:
            return -bernoulli_log_prob(logits, target)
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=weight,
                                                  reduction='none')

    def _pos_weight(self, device: torch.device) -> Optional[torch.Tensor]:
        """(C, 1, 1) positive weight per channel, or None for the plain likelihood."""
        cfg = self.cfg
        if cfg.image_pos_weight == 1.0 and cfg.image_shared_weight == 1.0:
            return None
        weight = torch.ones(cfg.bev_channels, 1, 1, device=device)
        weight[list(cfg.image_weighted_channels)] = cfg.image_pos_weight
        weight[list(cfg.image_shared_channels)] *= cfg.image_shared_weight
        return weight

    def make_optimizer(self) -> torch.optim.Optimizer:
        """Create Adam(lr, eps) of the config (paper Table 5: 1e-4, 1e-8)."""
        return torch.optim.Adam(self.parameters(), lr=self.cfg.lr, eps=self.cfg.eps)

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """Return the world model's own optimiser, created on first use."""
        if self._optimizer is None:
            self._optimizer = self.make_optimizer()
        return self._optimizer

    def train_step(self, batch: Dict, state: Optional[State] = None):
        """One gradient step (Adam, clip ``grad_clip``) -> (metrics, posts detached)."""
        self.train()
        loss, metrics, posts = self.loss(batch, state)
        metrics['grad_norm'] = self.apply_loss(loss)
        return metrics, {k: v.detach() for k, v in posts.items()}

    def apply_loss(self, loss: torch.Tensor) -> float:
        """Backpropagate ``loss`` and take one clipped Adam step; return the gradient norm."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        return float(norm)


def _to(value, device):
    if value is None:
        return None
    return value.to(device)

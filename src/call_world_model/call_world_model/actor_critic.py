"""
DreamerV3 actor-critic trained in imagination (paper eq. 14-15, Table 5).

Actor pi(a | s): categorical over the 15 discrete actions with 1 % unimix, REINFORCE gradients
(discrete actions; no backprop through the dynamics). Critic v(s): two-hot symlog over bins,
regularised towards a slow EMA copy of itself. Returns are bootstrapped lambda-returns
(gamma 0.997, lambda 0.95) normalised by an EMA of their 5th-95th percentile range
(clipped below at ``retnorm_limit``), entropy bonus 3e-4. Own Adam optimisers (3e-5, 1e-5,
clip 100) for actor and critic, as the reference implementation.
"""
import copy
from functools import cached_property
from typing import Callable, Dict, Optional

from call_world_model.config import WorldModelConfig
from call_world_model.distributions import TwoHotSymlog, unimix_logits
from call_world_model.networks import MLP
from call_world_model.rssm import features, stack_states, State
import torch
from torch import nn

RewardFn = Callable[[object, State], torch.Tensor]


def lambda_returns(rewards: torch.Tensor, values: torch.Tensor, discounts: torch.Tensor,
                   lam: float) -> torch.Tensor:
    """
    Bootstrapped lambda-returns over a trajectory (time first).

    rewards (H, ...) r_1..r_H, values (H+1, ...) v_0..v_H, discounts (H, ...) gamma * c_1..c_H.
    R_t = r_{t+1} + d_{t+1} ((1 - lam) v_{t+1} + lam R_{t+1}), R_H = v_H; returns R_0..R_{H-1}.
    """
    out = []
    last = values[-1]
    for t in reversed(range(rewards.shape[0])):
        last = rewards[t] + discounts[t] * ((1.0 - lam) * values[t + 1] + lam * last)
        out.append(last)
    return torch.stack(out[::-1])


class ReturnNormalizer(nn.Module):
    """EMA of the low/high return percentiles; scale = max(limit, high - low)."""

    def __init__(self, low: float, high: float, decay: float, limit: float):
        """Percentiles in [0, 100], EMA ``decay``, lower ``limit`` of the scale."""
        super().__init__()
        self.q_low, self.q_high = low / 100.0, high / 100.0
        self.decay, self.limit = decay, limit
        self.register_buffer('low', torch.zeros(()))
        self.register_buffer('high', torch.zeros(()))
        self.register_buffer('initialised', torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def update(self, returns: torch.Tensor) -> torch.Tensor:
        """Update the EMAs with a batch of returns and return the current scale."""
        flat = returns.detach().flatten().float()
        low = torch.quantile(flat, self.q_low)
        high = torch.quantile(flat, self.q_high)
        if not bool(self.initialised):
            self.low.copy_(low)
            self.high.copy_(high)
            self.initialised.fill_(True)
        else:
            self.low.mul_(self.decay).add_((1.0 - self.decay) * low)
            self.high.mul_(self.decay).add_((1.0 - self.decay) * high)
        return self.scale()

    def scale(self) -> torch.Tensor:
        """max(limit, high - low)."""
        return torch.clamp(self.high - self.low, min=self.limit)


class ActorCritic(nn.Module):
    """Policy and value over world-model features ``feat`` (B, feat_dim)."""

    def __init__(self, cfg: WorldModelConfig, feat_dim: int, num_actions: int):
        """Actor MLP -> action logits, critic MLP -> two-hot bins, slow critic copy."""
        super().__init__()
        self.cfg = cfg
        self.feat_dim = feat_dim
        self.num_actions = num_actions
        self.actor = MLP(feat_dim, cfg.hidden, cfg.mlp_layers, num_actions)
        self.critic = MLP(feat_dim, cfg.hidden, cfg.mlp_layers, cfg.reward_bins, 0.0)
        self.slow_critic = copy.deepcopy(self.critic)
        for param in self.slow_critic.parameters():
            param.requires_grad_(False)
        self.value_dist = TwoHotSymlog.linspace(cfg.bins_low, cfg.bins_high, cfg.reward_bins)
        self.retnorm = ReturnNormalizer(cfg.retnorm_low, cfg.retnorm_high,
                                        cfg.retnorm_decay, cfg.retnorm_limit)

    # The optimisers are created on first use, as the world model's: building a torch
    # optimiser imports torch._dynamo (seconds of start-up), which a vehicle that only
    # plans never needs.
    @cached_property
    def actor_opt(self) -> torch.optim.Optimizer:
        """Return the actor's Adam optimiser, created on first use."""
        return torch.optim.Adam(self.actor.parameters(), lr=self.cfg.ac_lr, eps=self.cfg.ac_eps)

    @cached_property
    def critic_opt(self) -> torch.optim.Optimizer:
        """Return the critic's Adam optimiser, created on first use."""
        return torch.optim.Adam(self.critic.parameters(), lr=self.cfg.ac_lr,
                                eps=self.cfg.ac_eps)

    def policy(self, feat: torch.Tensor) -> torch.Tensor:
        """Return action log-probabilities (B, num_actions) with the 1 % unimix."""
        return unimix_logits(self.actor(feat), self.cfg.unimix)

    @torch.no_grad()
    def act(self, feat: torch.Tensor, sample: bool = True) -> torch.Tensor:
        """Pick action indices (B,): a policy sample, or its mode."""
        logits = self.policy(feat)
        if sample:
            return torch.distributions.Categorical(logits=logits).sample()
        return logits.argmax(-1)

    def value(self, feat: torch.Tensor) -> torch.Tensor:
        """Critic's expected return (B,)."""
        return self.value_dist.mean(self.critic(feat))

    def slow_value(self, feat: torch.Tensor) -> torch.Tensor:
        """Slow (EMA) critic's expected return (B,)."""
        return self.value_dist.mean(self.slow_critic(feat))

    @torch.no_grad()
    def imagine(self, world_model, start: State, horizon: int) -> Dict[str, torch.Tensor]:
        """
        Roll the policy ``horizon`` steps in the world model from ``start`` (B, ...).

        Returns a time-first dict: 'states' (H+1, B, ...) s_0..s_H, 'feat', 'action'
        (H+1, B) a_t taken in s_t.
        """
        states = [start]
        actions = [self.act(features(start))]
        for _ in range(horizon):
            state = world_model.imagine_step(states[-1], actions[-1])
            states.append(state)
            actions.append(self.act(features(state)))
        traj = stack_states(states, dim=0)
        return {'states': traj, 'feat': features(traj), 'action': torch.stack(actions)}

    def train_step(self, world_model, start_states: State,
                   reward_fn: Optional[RewardFn] = None) -> Dict[str, float]:
        """
        One actor and one critic update from imagined rollouts of ``start_states``.

        start_states: state dict with leading (B,) or (B, T) (e.g. the world-model posts);
        it is flattened and detached. reward_fn(world_model, states (H, N, ...)) -> (H, N)
        defaults to the world model's reward head. Returns flat float metrics.
        """
        cfg = self.cfg
        lead = start_states['deter'].shape[:-1]
        start = {k: v.detach().reshape((-1,) + v.shape[len(lead):])
                 for k, v in start_states.items()}
        traj = self.imagine(world_model, start, cfg.horizon)
        with torch.no_grad():
            later = {k: v[1:] for k, v in traj['states'].items()}
            reward = (reward_fn or _reward_head)(world_model, later)
            cont = (world_model.cont(later) > 0.5).float()
            discount = cfg.gamma * cont
            ones = torch.ones_like(discount[:1])
            weight = torch.cumprod(torch.cat([ones, discount], 0), 0)[:-1]
            value = self.value(traj['feat'])
            returns = lambda_returns(reward, value, discount, cfg.lam)
            scale = self.retnorm.update(returns)
            advantage = (returns - value[:-1]) / scale
            slow_target = self.slow_value(traj['feat'][:-1])

        feat = traj['feat'][:-1]
        logp = self.policy(feat)
        logpi = logp.gather(-1, traj['action'][:-1].unsqueeze(-1)).squeeze(-1)
        entropy = -(logp.exp() * logp).sum(-1)
        actor_loss = (weight * (-logpi * advantage - cfg.entropy_scale * entropy)).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        actor_norm = torch.nn.utils.clip_grad_norm_(self.actor.parameters(), cfg.ac_grad_clip)
        self.actor_opt.step()

        critic_logits = self.critic(feat)
        critic_loss = -self.value_dist.log_prob(critic_logits, returns)
        critic_loss = critic_loss - cfg.critic_ema_reg * self.value_dist.log_prob(
            critic_logits, slow_target)
        critic_loss = (weight * critic_loss).mean()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        critic_norm = torch.nn.utils.clip_grad_norm_(self.critic.parameters(),
                                                     cfg.ac_grad_clip)
        self.critic_opt.step()
        self.update_slow_critic()
        return {
            'actor_loss': float(actor_loss.detach()), 'critic_loss': float(critic_loss.detach()),
            'actor_grad_norm': float(actor_norm), 'critic_grad_norm': float(critic_norm),
            'imag_reward': float(reward.mean()), 'imag_return': float(returns.mean()),
            'return_scale': float(scale), 'policy_entropy': float(entropy.mean().detach()),
            'value': float(value.mean())}

    @torch.no_grad()
    def update_slow_critic(self) -> None:
        """Move the slow critic: slow <- decay * slow + (1 - decay) * critic (decay 0.98)."""
        decay = self.cfg.critic_ema_decay
        for slow, fast in zip(self.slow_critic.parameters(), self.critic.parameters()):
            slow.mul_(decay).add_((1.0 - decay) * fast.detach())


def _reward_head(world_model, states: State) -> torch.Tensor:
    return world_model.reward(states)

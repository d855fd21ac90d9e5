"""
The eq. 3 look-ahead of a DreamerV3 world model with z carried as class indices.

Every layer that reads the model state [h, one-hot z] (actor, reward, continue, critic,
sequence-model input) spends 1024 of its input columns on a one-hot with 32 ones. Here those
products become gathers of 32 rows from a per-layer table, and the actor, reward and continue
heads share one matrix product over h. The reward and continue heads do not feed back into
the rollout (the actor picks the next action), so the rest of their layers runs once over
the K imagined steps' rows after the loop. That removes about half of the look-ahead's
multiply-adds (35 % less CPU per plan, bench/bench_planner.py; the planner is the largest cost
per vehicle and tick) without changing what it computes: the same layers and weights, summed
in a different order (float32 rounding). `lookahead.rollout_scores` stays the reference that
tests compare against.

The tables are copies of the weights taken at construction: build a new instance (or call
`refresh`) after the weights change.
"""
from typing import Callable, List, Optional

from call_planner.lookahead import best_plan, expand_state, Plan, State
from call_planner.occupancy_cost import OccupancyCost
import torch
from torch import nn
import torch.nn.functional as F


def _split_first_layer(mlp: nn.Module, dense: int) -> tuple:
    """First Linear of a call_world_model MLP -> (dense part (out, D), z table (S*K, out))."""
    linear = mlp.hidden[0][0]
    weight = linear.weight.detach()
    return weight[:, :dense], weight[:, dense:].t().contiguous()


def _layers(modules) -> List[nn.Module]:
    """Return the leaf layers of `modules` in call order (Sequentials flattened)."""
    leaves = []
    for module in modules:
        if isinstance(module, nn.Sequential):
            leaves.extend(_layers(module))
        elif module is not None:
            leaves.append(module)
    return leaves


def _plain(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """
    Return the layer's forward as the functional call it makes, without nn.Module's call path.

    The same operator on the same parameters (read at call time, so in-place weight updates
    still count), hence the same floats; the look-ahead runs about 30 such layers per
    imagined step on 15 rows, where the module dispatch is a visible share of the CPU.
    Layers other than Linear, LayerNorm and SiLU are called as they are.
    """
    kind = type(module)
    if kind is nn.Linear:
        return lambda x: F.linear(x, module.weight, module.bias)
    if kind is nn.LayerNorm:
        return lambda x: F.layer_norm(x, module.normalized_shape, module.weight, module.bias,
                                      module.eps)
    if kind is nn.SiLU and not module.inplace:
        return F.silu
    return module


def _chain(modules) -> Callable[[torch.Tensor], torch.Tensor]:
    """One function applying `modules` (flattened) in order, each as `_plain`."""
    calls = [_plain(m) for m in _layers(modules)]

    def run(x: torch.Tensor) -> torch.Tensor:
        for call in calls:
            x = call(x)
        return x
    return run


def _rest(mlp: nn.Module, out: bool = True) -> Callable[[torch.Tensor], torch.Tensor]:
    """Norm + activation of the first layer, then the MLP's remaining layers and output."""
    first = mlp.hidden[0]
    return _chain([first[1], first[2]] + list(mlp.hidden)[1:] + ([mlp.out] if out else []))


#: Fewest rows per imagined step whose reward and continue heads run stacked over the K steps.
#: Every row is computed on its own, but MKL's matrix products of 1-3 rows take other kernels
#: (other rounding) than those of 4 and more, so stacking fewer rows would change the floats.
#: Above that, whether a stacked product rounds as the per-step ones do depends on the CPU
#: (within float rounding either way).
MIN_STACKED_ROWS = 4


class IndexedLookahead:
    """Rollout scores of (WorldModel, ActorCritic) for a batch of first actions."""

    @staticmethod
    def supports(world_model: object, actor_critic: object) -> bool:
        """Tell whether the models are call_world_model's unconditioned RSSM and heads."""
        rssm = getattr(world_model, 'rssm', None)
        return (rssm is not None and not getattr(rssm, 'conditioned', True)
                and hasattr(world_model, 'heads') and hasattr(actor_critic, 'critic'))

    def __init__(self, world_model: nn.Module, actor_critic: nn.Module,
                 occupancy: Optional[OccupancyCost] = None):
        """
        Snapshot the weights of the layers that read [h, z] into index tables.

        `occupancy` (of the same world model): the footprint-overlap cost of the decoded
        imagined states, computed from z indices too.
        """
        if not self.supports(world_model, actor_critic):
            raise ValueError('IndexedLookahead needs an unconditioned call_world_model '
                             'RSSM with its reward/continue heads and an ActorCritic')
        self.world_model = world_model
        self.actor_critic = actor_critic
        self.occupancy = occupancy
        self.refresh()

    @torch.no_grad()
    def refresh(self) -> None:
        """Re-read the weights (after training or loading changed them)."""
        cfg = self.world_model.cfg
        self.stoch, self.classes, self.deter = cfg.stoch, cfg.classes, cfg.deter
        self.unimix = cfg.unimix
        heads = [self.actor_critic.actor, self.world_model.heads['reward'],
                 self.world_model.heads['cont']]
        parts = [_split_first_layer(mlp, self.deter) for mlp in heads]
        self.head_sizes = [dense.shape[0] for dense, _ in parts]
        self.heads_dense = torch.cat([dense for dense, _ in parts], 0).t().contiguous()
        self.heads_table = torch.cat([table for _, table in parts], 1)
        critic_dense, self.critic_table = _split_first_layer(self.actor_critic.critic,
                                                             self.deter)
        self.critic_dense = critic_dense.t().contiguous()
        rssm = self.world_model.rssm
        img_in = rssm.img_in[0].weight.detach()
        flat = self.stoch * self.classes
        self.img_z_table = img_in[:, :flat].t().contiguous()
        self.img_action_table = img_in[:, flat:].t().contiguous()
        self.offsets = torch.arange(self.stoch) * self.classes
        wm, ac = self.world_model, self.actor_critic
        self._actor_rest, self._reward_rest = _rest(ac.actor), _rest(wm.heads['reward'])
        self._cont_hidden = _rest(wm.heads['cont'], out=False)
        self._cont_out, self._critic_rest = _plain(wm.heads['cont'].out), _rest(ac.critic)
        self._bags: dict = {}
        self._img_in_rest = _chain([rssm.img_in[1], rssm.img_in[2]])
        self._img_out = _chain([rssm.img_out])
        if self.occupancy is not None:
            self.occupancy.window.refresh()

    def _rows(self, z: torch.Tensor) -> tuple:
        """
        Return the flat table rows and bag offsets that `_bag` sums for z (B, S).

        What `F.embedding_bag` makes of a 2-D input (rows flattened, a bag every S), built
        once per imagined state instead of once per table that reads it.
        """
        batch = z.shape[0]
        offsets = self._bags.get(batch)
        if offsets is None:
            offsets = self._bags[batch] = torch.arange(0, batch * self.stoch, self.stoch)
        return (z + self.offsets).reshape(-1), offsets

    @staticmethod
    def _bag(table: torch.Tensor, rows: tuple) -> torch.Tensor:
        """Sum over latents of table rows: one_hot(z) (B, S*K) @ table, as gathers."""
        return F.embedding_bag(rows[0], table, rows[1], mode='sum')

    def _next_z(self, deter: torch.Tensor, sample: bool) -> torch.Tensor:
        """
        Prior z_t ~ p(z | h_t) as indices (B, S): its mode, or a unimix sample.

        Samples come from torch's global generator, as `RSSM.img_step` draws them.
        """
        raw = self._img_out(deter).view(-1, self.stoch, self.classes)
        if not sample:
            return raw.argmax(-1)     # unimix keeps the order of the classes
        probs = (1.0 - self.unimix) * torch.softmax(raw, -1) + self.unimix / self.classes
        flat = torch.multinomial(probs.view(-1, self.classes), 1)
        return flat.view(-1, self.stoch)

    @torch.inference_mode()
    def rollout_scores(self, start: State, first_actions: torch.Tensor, horizon: int,
                       gamma: float, sample_actor: bool = False, sample_latent: bool = False,
                       generator: Optional[torch.Generator] = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Score rollouts like `lookahead.rollout_scores` (start: batch-sized model state)."""
        if horizon < 1:
            raise ValueError(f'horizon must be >= 1, got {horizon}')
        rssm, wm = self.world_model.rssm, self.world_model
        deter = start['deter']
        rows = self._rows(start['stoch'].argmax(-1))
        action = first_actions.long()
        actions, firsts, kept = [], [], []
        occupancy = self.occupancy
        decoded = set(occupancy.decoded_steps(horizon)) if occupancy is not None else set()
        logits = None
        for k in range(horizon):
            if k > 0:
                action = self._next_action(logits, sample_actor, generator)
            actions.append(action)
            x = self._bag(self.img_z_table, rows) + self.img_action_table.index_select(0, action)
            deter = rssm.gru(self._img_in_rest(x), deter)
            z = self._next_z(deter, sample_latent)
            rows = self._rows(z)
            # first layers of the actor, reward and continue heads in one product
            first = deter @ self.heads_dense + self._bag(self.heads_table, rows)
            if k + 1 < horizon:      # the last imagined step picks no next action
                logits = self._actor_rest(first[:, :self.head_sizes[0]])
            firsts.append(first)
            if k in decoded:
                kept.append((deter, z))
        # the reward and continue heads of all K steps in one pass (they do not feed back)
        batch = action.shape[0]
        rewards, conts = [], []
        for first in [torch.cat(firsts)] if batch >= MIN_STACKED_ROWS else firsts:
            _, reward_in, cont_in = first.split(self.head_sizes, -1)
            rewards.extend(wm.reward_dist.mean(self._reward_rest(reward_in)).float().split(batch))
            conts.extend(self._cont_hidden(cont_in).split(batch))
        score = torch.zeros(batch, dtype=torch.float32)
        alive = torch.ones_like(score)
        weights = []
        for k in range(horizon):
            if k in decoded:
                weights.append((gamma ** k) * alive)
            score = score + (gamma ** k) * alive * rewards[k]
            # the output layer per step: a one-column product rounds by its row count
            alive = alive * torch.sigmoid(self._cont_out(conts[k]).squeeze(-1)).float()
        critic_in = deter @ self.critic_dense + self._bag(self.critic_table, rows)
        value = self.actor_critic.value_dist.mean(self._critic_rest(critic_in))
        score = score + (gamma ** horizon) * alive * value.float()
        if kept:
            overlaps = occupancy.overlap_from_indices(torch.cat([d for d, _ in kept]),
                                                      torch.cat([i for _, i in kept]))
            score = score - occupancy.discounted(overlaps.float().view(len(kept), -1),
                                                 torch.stack(weights))
        return score, torch.stack(actions, dim=1)

    def plan(self, state: State, num_actions: int, horizon: int, gamma: float,
             sample: bool = False, generator: Optional[torch.Generator] = None,
             imagine_kwargs: Optional[dict] = None) -> Plan:
        """
        Plan like `lookahead.plan`, with the models bound.

        Of `imagine_kwargs` only `sample` (imagined z drawn or the mode; default True as in
        `WorldModel.imagine_step`) acts: shared information does not enter an unconditioned
        sequence model.
        """
        sample_latent = bool((imagine_kwargs or {}).get('sample', True))
        scores, actions = self.rollout_scores(
            expand_state({'deter': state['deter'], 'stoch': state['stoch']}, num_actions),
            torch.arange(num_actions), horizon, gamma, sample, sample_latent, generator)
        return best_plan(scores, actions)

    def _next_action(self, logits: torch.Tensor, sample: bool,
                     generator: Optional[torch.Generator]) -> torch.Tensor:
        if not sample:
            return logits.argmax(-1)      # unimix keeps the order of the actions
        probs = (1.0 - self.unimix) * torch.softmax(logits.float(), -1) \
            + self.unimix / logits.shape[-1]
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

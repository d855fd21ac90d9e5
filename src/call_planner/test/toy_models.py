"""Small real torch world models and actor-critics with hand-set heads for planner tests."""
import torch
from torch import nn

NUM_ACTIONS = 15


class LastActionWorldModel(nn.Module):
    """
    Deterministic model whose state remembers the last action one-hot.

    The reward of a transition is `reward_per_action[a]`, so a test decides by hand which
    action the look-ahead must prefer; `cont_per_action[a]` is the continue probability.
    """

    def __init__(self, reward_per_action: torch.Tensor, cont_per_action: torch.Tensor = None):
        """Hand-set heads (one reward and continue probability per action)."""
        super().__init__()
        self.reward_head = nn.Linear(NUM_ACTIONS, 1, bias=False)
        self.cont_head = nn.Linear(NUM_ACTIONS, 1, bias=False)
        with torch.no_grad():
            self.reward_head.weight.copy_(reward_per_action.view(1, -1))
            cont = torch.ones(NUM_ACTIONS) if cont_per_action is None else cont_per_action
            self.cont_head.weight.copy_(cont.view(1, -1))

    def initial_state(self, batch: int) -> dict:
        """Zero state (no action taken yet)."""
        return {'deter': torch.zeros(batch, NUM_ACTIONS), 'stoch': torch.zeros(batch, 4, 4)}

    def imagine_step(self, state, action, **kwargs):
        """Move to the state 'just took `action`'."""
        onehot = nn.functional.one_hot(action.long(), NUM_ACTIONS).float()
        return {'deter': onehot, 'stoch': state['stoch']}

    def features(self, state):
        """Return the one-hot of the last action."""
        return state['deter']

    def reward(self, state):
        """Hand-set reward of the last action."""
        return self.reward_head(state['deter']).squeeze(-1)

    def cont(self, state):
        """Hand-set continue probability of the last action."""
        return self.cont_head(state['deter']).squeeze(-1)


class FixedActorCritic(nn.Module):
    """Actor that always prefers `preferred` and a critic with a hand-set value per action."""

    def __init__(self, preferred: int, value_per_action: torch.Tensor = None):
        """Hand-set actor preference and critic."""
        super().__init__()
        self.preferred = preferred
        self.values = torch.zeros(NUM_ACTIONS) if value_per_action is None else value_per_action

    def policy(self, feat):
        """Logits with a large margin for the preferred action."""
        logits = torch.zeros(feat.shape[0], NUM_ACTIONS)
        logits[:, self.preferred] = 10.0
        return logits

    def value(self, feat):
        """Value of the state reached by the last action."""
        return feat @ self.values


class GruWorldModel(nn.Module):
    """Random nonlinear RSSM-like model: GRU over action embeddings, MLP heads."""

    def __init__(self, deter: int = 24, seed: int = 0):
        """Random weights from `seed`."""
        super().__init__()
        torch.manual_seed(seed)
        self.embed = nn.Embedding(NUM_ACTIONS, 8)
        self.cell = nn.GRUCell(8, deter)
        self.reward_head = nn.Sequential(nn.Linear(deter, 16), nn.Tanh(), nn.Linear(16, 1))
        self.cont_head = nn.Linear(deter, 1)

    def imagine_step(self, state, action, **kwargs):
        """One GRU step on the action embedding."""
        return {'deter': self.cell(self.embed(action.long()), state['deter'])}

    def features(self, state):
        """Return the recurrent state."""
        return state['deter']

    def reward(self, state):
        """Nonlinear reward head."""
        return self.reward_head(state['deter']).squeeze(-1)

    def cont(self, state):
        """Continue probability."""
        return torch.sigmoid(self.cont_head(state['deter'])).squeeze(-1)


class RandomActorCritic(nn.Module):
    """Random linear actor and critic."""

    def __init__(self, deter: int = 24, seed: int = 1):
        """Random weights from `seed`."""
        super().__init__()
        torch.manual_seed(seed)
        self.actor = nn.Linear(deter, NUM_ACTIONS)
        self.critic = nn.Linear(deter, 1)

    def policy(self, feat):
        """Return action logits."""
        return self.actor(feat)

    def value(self, feat):
        """State value."""
        return self.critic(feat).squeeze(-1)

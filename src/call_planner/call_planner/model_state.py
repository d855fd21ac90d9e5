"""Rebuild the world model's state from the compact LatentState fields (z indices and h)."""
from call_planner.lookahead import State
import numpy as np
import torch


def state_from_latent(z_indices: np.ndarray, h: np.ndarray, stoch: int, classes: int) -> State:
    """
    Batch-1 RSSM state: deter = h, stoch = one-hot(z_indices) of shape (1, stoch, classes).

    The posterior sample z is what the world model published, so its one-hot is the exact
    latent; `logits` are the log of that one-hot (clamped), the distribution it was drawn from
    as far as the planner can know.
    """
    if z_indices.shape != (stoch,):
        raise ValueError(f'expected {stoch} latent indices, got shape {z_indices.shape}')
    indices = torch.from_numpy(np.asarray(z_indices, dtype=np.int64))
    one_hot = torch.nn.functional.one_hot(indices, classes).float().view(1, stoch, classes)
    deter = torch.from_numpy(np.asarray(h, dtype=np.float32).copy()).view(1, -1)
    return {'deter': deter, 'stoch': one_hot,
            'logits': torch.log(one_hot.clamp_min(1e-8))}


@torch.inference_mode()
def imagination_kwargs(world_model, sample_latent: bool) -> dict:
    """
    Keyword arguments of `WorldModel.imagine_step` for the look-ahead.

    `sample`: imagined z drawn (True) or the mode (False: a deterministic plan). The shared
    information is already inside the observed state h; imagination holds "no new
    neighbours" (as the actor-critic's training imagination does), and that pooled vector is
    computed once here instead of at every imagined step (about 13 % of the look-ahead).
    """
    kwargs = {'sample': bool(sample_latent)}
    if hasattr(world_model, 'shared_vector'):
        kwargs['shared_vec'] = world_model.shared_vector(None, (1,)).clone()
    return kwargs

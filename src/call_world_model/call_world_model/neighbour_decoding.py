"""
What each accepted neighbour sees, decoded from its shared latent (paper Fig. 4c, App. F).

A neighbour j shares its state (z_j, h_j); the decoder shared by homogeneous agents turns it
back into j's own BEV, whose vehicle channels hold the vehicles j sees, in j's image frame.
This module does only that decoding, for every neighbour of a step as ONE decoder batch;
``call_perception.neighbour_views.add_neighbour_views`` then warps each mask into the ego's
frame and adds the vehicles the ego does not see to its shared-vehicles channel. The ROS
graph and the ROS-free collector and evaluation call the same two functions.

A latent that is malformed (wrong shape, an index outside the classes) or non-finite never
reaches the decoder: it is dropped and counted, as every other malformed input of CALL.
"""
from dataclasses import dataclass
from typing import List, Sequence, Tuple

from call_perception.bev_raster import CHANNEL_INDEX, ON
from call_world_model.world_model import WorldModel
import numpy as np
import torch
from torch.nn import functional as F

# Channels of j's decoded BEV that hold vehicles j knows by its own sensors: j itself and what
# it sees. j's shared channel is left out so a vehicle is relayed one hop only: with it, a
# hallucinated vehicle could echo between two neighbours' BEVs step after step.
DECODED_VEHICLE_CHANNELS = ('ego', 'seen_vehicles')
DEFAULT_THRESHOLD = 0.5  # Bernoulli probability above which a decoded pixel is a vehicle


@dataclass
class DecodedNeighbours:
    """Vehicle masks of the neighbours that were decoded, with what was dropped."""

    masks: np.ndarray  # (N, S, S) uint8 0/ON, in each neighbour's own BEV frame
    kept: List[int]  # index into the input sequence of each mask
    dropped: int  # malformed or non-finite latents that never reached the decoder


def latent_problem(z_indices: np.ndarray, h: np.ndarray, stoch: int, classes: int,
                   deter: int) -> str:
    """Why (z_indices, h) cannot be decoded by this model, or '' if it can."""
    z = np.asarray(z_indices)
    hh = np.asarray(h)
    if z.shape != (stoch,):
        return f'z holds {z.shape} indices, the model {stoch}'
    if hh.shape != (deter,):
        return f'h has shape {hh.shape}, the model {deter}'
    if not np.issubdtype(z.dtype, np.integer):
        if not np.all(np.isfinite(z)) or np.any(z != np.round(z)):
            return 'z indices are not integers'
    if np.any(z < 0) or np.any(z >= classes):
        return f'a z index lies outside 0..{classes - 1}'
    if not np.all(np.isfinite(hh.astype(np.float64, copy=False))):
        return 'h holds non-finite values'
    return ''


@torch.no_grad()
def decode_neighbour_vehicles(model: WorldModel,
                              latents: Sequence[Tuple[np.ndarray, np.ndarray]],
                              threshold: float = DEFAULT_THRESHOLD) -> DecodedNeighbours:
    """
    Decode every valid (z_indices, h) of ``latents`` as one batch -> vehicle masks.

    The mask of a neighbour is the union of its decoded ``DECODED_VEHICLE_CHANNELS`` above
    ``threshold`` (calibrated probabilities, ``WorldModel.bev_probs``), 0/ON like the BEV.
    """
    cfg = model.cfg
    size = cfg.bev_size
    kept, zs, hs = [], [], []
    dropped = 0
    for index, (z_indices, h) in enumerate(latents):
        if latent_problem(z_indices, h, cfg.stoch, cfg.classes, cfg.deter):
            dropped += 1
            continue
        kept.append(index)
        zs.append(np.asarray(z_indices, dtype=np.int64))
        hs.append(np.asarray(h, dtype=np.float32))
    if not kept:
        return DecodedNeighbours(np.zeros((0, size, size), np.uint8), [], dropped)
    dtype = model.rssm.initial_deter.dtype
    z = torch.from_numpy(np.stack(zs)).to(model.device)
    state = {'deter': torch.from_numpy(np.stack(hs)).to(model.device, dtype),
             'stoch': F.one_hot(z, cfg.classes).to(dtype)}
    probs = model.bev_probs(state)  # (N, C, S, S)
    channels = [CHANNEL_INDEX[name] for name in DECODED_VEHICLE_CHANNELS]
    vehicles = probs[:, channels].amax(1) > threshold
    masks = vehicles.to(torch.uint8).mul_(ON).cpu().numpy()
    return DecodedNeighbours(masks, kept, dropped)

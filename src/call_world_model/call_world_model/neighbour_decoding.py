"""
What each accepted neighbour sees, decoded from its shared latent (paper Fig. 4c, App. F).

A neighbour j shares its state (z_j, h_j); the decoder shared by homogeneous agents turns it
back into j's own BEV, whose vehicle channels hold the vehicles j sees, in j's image frame.
This module does only that decoding, for every neighbour of a step as ONE decoder batch, and is
the one place it happens: the ROS-free vehicle core (``call_learning.pipeline``) calls it
directly, the comm node through the entry point ``load_view_decoder`` (call_comm sits below
this package and imports nothing from it). ``call_perception.neighbour_views`` then warps each
mask into the ego's frame and adds the vehicles the ego does not see to its shared-vehicles
channel.

The model knows no channel names: callers pass the indices of the decoded channels that hold
j's own vehicles (``call_perception.neighbour_views.VIEW_CHANNELS``: j itself and what it
sees; j's shared channel is left out so a vehicle is relayed one hop only).

A latent that is malformed (wrong shape, an index outside the classes) or non-finite never
reaches the decoder: it is dropped and counted, as every other malformed input of CALL.
"""
from dataclasses import dataclass
import functools
from typing import Callable, List, Sequence, Tuple

from call_world_model.checkpoint import load_shared
from call_world_model.world_model import WorldModel
import numpy as np
import torch

DEFAULT_THRESHOLD = 0.5  # calibrated Bernoulli probability above which a pixel is a vehicle
ON = 255  # mask value of a vehicle pixel (the BEV's)


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
    if not (np.issubdtype(z.dtype, np.number) and np.issubdtype(hh.dtype, np.number)):
        return 'z or h is not numeric'
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
                              channels: Sequence[int],
                              threshold: float = DEFAULT_THRESHOLD) -> DecodedNeighbours:
    """
    Decode every valid (z_indices, h) of ``latents`` as one batch -> vehicle masks.

    The mask of a neighbour is the union of its decoded ``channels`` above ``threshold``
    (calibrated probabilities, ``WorldModel.bev_probs_indexed``: the one-hot z's product
    with the decoder's first layer as a gather of the columns it selects), 0/ON like the BEV.
    """
    cfg = model.cfg
    size = cfg.bev_size
    channels = [int(c) for c in channels]
    if not channels or min(channels) < 0 or max(channels) >= cfg.bev_channels:
        raise ValueError(f'view channels {channels} must index the {cfg.bev_channels} '
                         'BEV channels')
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
    deter = torch.from_numpy(np.stack(hs)).to(model.device, dtype)
    # (N, len(channels), S, S): only those decoded, z's one-hot columns gathered
    probs = model.bev_probs_indexed(z, deter, channels)
    vehicles = probs.amax(1) > threshold
    masks = vehicles.to(torch.uint8).mul_(ON).cpu().numpy()
    return DecodedNeighbours(masks, kept, dropped)


ViewDecoder = Callable[..., DecodedNeighbours]


def load_view_decoder(path: str) -> ViewDecoder:
    """
    ``decode_neighbour_vehicles`` bound to the fleet checkpoint at ``path`` (process-shared).

    The entry point of the group ``call_comm.view_decoders`` (setup.py): the comm node decodes
    the neighbours it accepts with it, so the ROS graph runs this very function.
    """
    model = load_shared(path).world_model
    decoder = functools.partial(decode_neighbour_vehicles, model)
    decoder.model = model  # for callers that report the view size (cfg.bev_size)
    return decoder

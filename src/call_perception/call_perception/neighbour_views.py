"""
The updated BEV's Fig. 4c case: vehicles the ego cannot see but a neighbour can.

Each accepted neighbour's decoded vehicle mask (its own BEV frame, from
``call_world_model.neighbour_decoding``, run by the comm node or the ROS-free pipeline) is
warped into the ego's frame (``fusion.warp_neighbour_bev``); every vehicle blob that does not
touch a vehicle the ego already draws itself (its own box, what its sensors see) is added to
the shared-vehicles channel (``fusion.overlay_shared_mask``). This is the one path from a
decoded neighbour view into the ego's BEV, for the ROS node and the ROS-free cores alike
(``PerceptionStage.render`` calls it); it needs no torch. A mask may have another pixel size
than the ego's BEV (a 64 px model in a 128 px graph): both cover the same field of view
(``BevConfig.resized``).

Why whole blobs and not pixels: a decoded car lies a pixel or two off the ego's own box of
the same car; adding the pixel difference would draw a sliver of a second car beside it.
"""
from dataclasses import dataclass
from typing import Any, Sequence, Tuple

from call_perception.bev_raster import BevConfig, CHANNEL_INDEX, CHANNELS
from call_perception.fusion import FusionConfig, overlay_shared_mask, warp_neighbour_bev
import cv2
import numpy as np

# The decoded channels of a neighbour's BEV that hold the vehicles it knows by its own sensors:
# itself and what it sees. Its shared channel is left out, so a vehicle is relayed one hop
# only (with it, a hallucinated vehicle could echo between two neighbours' BEVs step after
# step). Indices into CHANNELS: the decoder (call_world_model) knows no channel names.
VIEW_CHANNEL_NAMES = ('ego', 'seen_vehicles')
VIEW_CHANNELS = tuple(CHANNELS.index(name) for name in VIEW_CHANNEL_NAMES)


@dataclass
class NeighbourView:
    """One neighbour's decoded vehicle mask (S, S) 0/255 in its own frame, and its pose."""

    sender_id: str
    pose: Any  # x, y, yaw (map frame) of the neighbour when its latent was made
    mask: np.ndarray


def unseen_vehicles(mask: np.ndarray, own: np.ndarray, margin_px: int) -> np.ndarray:
    """
    Keep the blobs of ``mask`` that lie farther than ``margin_px`` from every ``own`` pixel.

    mask and own are (S, S) uint8 (non-zero = vehicle); returns a 0/255 uint8 mask.
    """
    return _blobs_clear_of(mask, np.flatnonzero(_near(own, margin_px)))[0]


def _near(own: np.ndarray, margin_px: int) -> np.ndarray:
    """Return the pixels within ``margin_px`` of an ``own`` vehicle pixel (uint8 0/1)."""
    near = (own > 0).astype(np.uint8)
    if margin_px > 0:
        kernel = np.ones((2 * margin_px + 1, 2 * margin_px + 1), np.uint8)
        near = cv2.dilate(near, kernel)
    return near


def _blobs_clear_of(mask: np.ndarray, near_index: np.ndarray) -> Tuple[np.ndarray, int]:
    """
    Return the blobs of ``mask`` (8-connected) clear of the ego's own vehicles, and their count.

    ``near_index``: the flat indices of the pixels near the ego's own vehicles
    (``np.flatnonzero`` of ``_near``), found once per ego step for all its views. Whole blobs
    are kept, so the kept mask's own blobs are exactly the kept ones. The kept mask is the
    foreground itself when every blob is kept and a 256-entry table lookup of the labels
    otherwise (a NumPy gather by int32 labels costs twice the labelling).
    """
    empty = np.zeros(mask.shape, dtype=np.uint8)
    if not mask.any():
        return empty, 0
    binary = mask if mask.dtype == np.uint8 else (mask > 0).astype(np.uint8)
    count, labels = cv2.connectedComponents(binary, connectivity=8)   # non-zero: foreground
    if count <= 1:
        return empty, 0
    keep = np.ones(count, dtype=bool)
    keep[0] = False
    keep[labels.ravel()[near_index]] = False
    kept = int(keep.sum())
    if kept == 0:
        return empty, 0
    if kept == count - 1:
        return cv2.compare(binary, 0, cv2.CMP_GT), kept      # 255 where non-zero
    if count <= 256:
        table = np.zeros(256, dtype=np.uint8)
        table[:count][keep] = 255
        return cv2.LUT(labels.astype(np.uint8), table), kept
    return np.where(keep, 255, 0).astype(np.uint8)[labels], kept


def add_neighbour_views(bev: np.ndarray, ego: Any, views: Sequence[NeighbourView],
                        config: BevConfig,
                        fusion: FusionConfig = FusionConfig()) -> int:
    """
    Add the vehicles only the neighbours see to ``bev``'s shared-vehicles channel, in place.

    bev is the ego's rendered (C, S, S) BEV (CHANNELS order), ego its pose. A blob within
    fusion.match_distance of the ego's own or seen vehicles is that vehicle and is skipped.
    Returns how many blobs were added (a vehicle seen by two neighbours counts twice).
    A view without a vehicle pixel adds nothing and is not warped.
    """
    views = [view for view in views if np.asarray(view.mask).any()]
    if not views:
        return 0
    own = np.maximum(bev[CHANNEL_INDEX['ego']], bev[CHANNEL_INDEX['seen_vehicles']])
    margin_px = int(round(fusion.match_distance / config.metres_per_pixel))
    near = np.flatnonzero(_near(own, margin_px))
    added_mask = np.zeros_like(own)
    added = 0
    for view in views:
        mask = np.asarray(view.mask)
        source = config if mask.shape[-1] == config.size else config.resized(mask.shape[-1])
        warped = warp_neighbour_bev(mask, view.pose, ego, config, source)
        new, count = _blobs_clear_of(warped, near)
        if count:
            added += count
            np.maximum(added_mask, new, out=added_mask)
    overlay_shared_mask(bev, added_mask)
    return added

"""
The "updated BEV" (paper section 4, App. F): shared information placed in ego coordinates.

Homogeneous agents: each accepted neighbour declares its pose and intention waypoints; the ego
draws neighbours it does not see itself in the shared-vehicles channel and every neighbour's
waypoints in the shared-waypoints channel. Heterogeneous agents share BEVs instead; their
vehicle channel is warped from the sender's image frame into the ego's.
"""
from dataclasses import dataclass, field
import math
from pathlib import Path
from typing import Any, List, Optional, Sequence, Union

from call_perception.bev_raster import BevConfig, CHANNEL_INDEX, map_to_pixel, ON
from call_perception.package_config import load_section
import cv2
import numpy as np

VEHICLE_CHANNELS = ('ego', 'seen_vehicles', 'shared_vehicles')


@dataclass(frozen=True)
class FusionConfig:
    """Numbers of config/fusion.yaml."""

    match_distance: float = 2.5  # [m] neighbour this close to a seen box is that box
    default_length: float = 4.6  # [m] size assumed when the message carries none (a car)
    default_width: float = 2.0  # [m]

    @classmethod
    def from_yaml(cls, path: Optional[Union[str, Path]] = None) -> 'FusionConfig':
        """Read config/fusion.yaml (or path); unknown keys are an error."""
        data = load_section('fusion.yaml', path)
        unknown = set(data) - {'match_distance', 'default_length', 'default_width'}
        if unknown:
            raise ValueError(f'unknown fusion config keys: {sorted(unknown)}')
        config = cls(**{k: float(v) for k, v in data.items()})
        if min(config.match_distance, config.default_length, config.default_width) <= 0:
            raise ValueError(f'fusion config values must be positive: {config}')
        return config


@dataclass
class SharedNeighbour:
    """One accepted neighbour's declared state (a box) and intention (map frame)."""

    sender_id: str
    x: float
    y: float
    yaw: float
    intention: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # (M, 2) [m]
    length: float = FusionConfig.default_length
    width: float = FusionConfig.default_width


@dataclass
class SharedLayer:
    """What the shared information adds to the ego's BEV."""

    vehicles: List[SharedNeighbour]  # neighbours the ego does not see itself
    waypoints: List[np.ndarray]  # every neighbour's intention, (M, 2) map frame


def parse_intention(flat: Sequence[float]) -> np.ndarray:
    """Flat [x0, y0, x1, y1, ...] -> (M, 2); raises ValueError on odd length or non-finite."""
    arr = np.asarray(flat, dtype=np.float64)
    if arr.ndim != 1 or len(arr) % 2:
        raise ValueError(f'intention_xy must hold x, y pairs, got {arr.shape}')
    arr = arr.reshape(-1, 2)
    if not np.all(np.isfinite(arr)):
        raise ValueError('intention_xy holds non-finite values')
    return arr


def fuse_shared(neighbours: Sequence[SharedNeighbour], seen: Sequence[Any],
                ego: Optional[Any] = None,
                config: FusionConfig = FusionConfig()) -> SharedLayer:
    """
    Split shared information into shared-only vehicles and shared waypoints.

    A neighbour within match_distance of a vehicle the ego sees (or of the ego itself) is
    already in the BEV, so only its waypoints are added; sender ids cannot be matched to
    simulator actor ids, positions can.
    """
    seen_xy = np.array([(b.x, b.y) for b in seen], dtype=np.float64).reshape(-1, 2)
    if ego is not None:
        seen_xy = np.vstack([seen_xy, [[ego.x, ego.y]]])
    vehicles, waypoints = [], []
    for neighbour in neighbours:
        if not all(math.isfinite(v) for v in (neighbour.x, neighbour.y, neighbour.yaw)):
            continue
        if len(neighbour.intention) >= 2:
            waypoints.append(np.asarray(neighbour.intention, dtype=np.float64))
        if len(seen_xy):
            gap = np.hypot(seen_xy[:, 0] - neighbour.x, seen_xy[:, 1] - neighbour.y).min()
            if gap <= config.match_distance:
                continue
        vehicles.append(neighbour)
    return SharedLayer(vehicles, waypoints)


def neighbour_to_ego(config: BevConfig, pose_j: Any, pose_ego: Any,
                     source: Optional[BevConfig] = None) -> np.ndarray:
    """2x3 affine from neighbour j's BEV pixels (``source``, default ``config``) to the ego's."""
    to_j = np.vstack([map_to_pixel(source or config, pose_j), [0.0, 0.0, 1.0]])
    to_ego = map_to_pixel(config, pose_ego)
    return to_ego @ np.linalg.inv(to_j)


def warp_neighbour_bev(bev_j: np.ndarray, pose_j: Any, pose_ego: Any,
                       config: BevConfig, source: Optional[BevConfig] = None) -> np.ndarray:
    """
    Neighbour j's vehicles (its decoded or received BEV) as an (H, W) 0/255 ego-frame mask.

    bev_j is either one (H, W) vehicle mask or a full (C, H, W) BEV in CHANNELS order, whose
    ego, seen and shared vehicle channels are merged. Poses have x, y, yaw (map frame).
    ``source`` is the layout of bev_j (default: ``config``, the ego's).
    """
    source = source or config
    bev_j = np.asarray(bev_j)
    n = config.size
    if bev_j.ndim == 3:
        mask = np.max(bev_j[[CHANNEL_INDEX[c] for c in VEHICLE_CHANNELS]], axis=0)
    elif bev_j.ndim == 2:
        mask = bev_j
    else:
        raise ValueError(f'expected an (H, W) or (C, H, W) BEV, got shape {bev_j.shape}')
    if mask.shape != (source.size, source.size):
        raise ValueError(f'BEV of shape {mask.shape} does not match the {source.size} px config')
    mask = np.where(mask > ON // 2, ON, 0).astype(np.uint8)
    affine = neighbour_to_ego(config, pose_j, pose_ego, source)
    return cv2.warpAffine(mask, affine, (n, n), flags=cv2.INTER_NEAREST,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def overlay_shared_mask(bev: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """
    Add a warped neighbour vehicle mask to bev's shared-vehicles channel, in place.

    Pixels the ego already sees (its own box or seen vehicles) stay in their own channel.
    """
    own = np.maximum(bev[CHANNEL_INDEX['ego']], bev[CHANNEL_INDEX['seen_vehicles']])
    shared = bev[CHANNEL_INDEX['shared_vehicles']]
    np.maximum(shared, np.where(own > 0, 0, mask).astype(np.uint8), out=shared)
    return bev

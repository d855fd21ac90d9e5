"""
The BEV for people: the paper's Fig. 8 colours as one RGB image.

Ego red, vehicles the ego sees green, vehicles known only through shared information yellow,
ego planned waypoints blue, other agents' waypoints yellow, road dark grey, markings white.
Later channels in PAINT_ORDER are drawn over earlier ones (vehicles over lines over road).
"""
from typing import Dict, Tuple

from call_perception.bev_raster import CHANNEL_INDEX, CHANNELS
import numpy as np

BACKGROUND: Tuple[int, int, int] = (0, 0, 0)
COLOURS: Dict[str, Tuple[int, int, int]] = {
    'drivable': (70, 70, 70),
    'lane_markings': (255, 255, 255),
    'shared_waypoints': (255, 215, 0),
    'ego_waypoints': (30, 110, 255),
    'shared_vehicles': (255, 215, 0),
    'seen_vehicles': (0, 200, 0),
    'ego': (230, 0, 0),
}
PAINT_ORDER: Tuple[str, ...] = ('drivable', 'lane_markings', 'shared_waypoints',
                                'ego_waypoints', 'shared_vehicles', 'seen_vehicles', 'ego')

_PALETTE = np.array([BACKGROUND] + [COLOURS[name] for name in PAINT_ORDER], dtype=np.uint8)
_ORDER = [CHANNEL_INDEX[name] for name in PAINT_ORDER]
_RANKS = np.arange(1, len(PAINT_ORDER) + 1, dtype=np.uint8)[:, None, None]


def colorize(bev: np.ndarray) -> np.ndarray:
    """
    (C, H, W) uint8 BEV in CHANNELS order -> (H, W, 3) uint8 RGB.

    A channel value above 127 counts as set, so thresholded decoder outputs colour the same.
    """
    if bev.ndim != 3 or bev.shape[0] != len(CHANNELS):
        raise ValueError(f'expected a ({len(CHANNELS)}, H, W) BEV, got {bev.shape}')
    # label each pixel with its top-most set channel, then look all colours up at once
    label = ((bev[_ORDER] > 127) * _RANKS).max(axis=0)
    return _PALETTE.take(label, axis=0)

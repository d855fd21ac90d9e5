"""A lane of the road map: what the simulator's lanes and OpenDRIVE roads both become."""
from dataclasses import dataclass

import numpy as np


@dataclass
class Lane:
    """One lane: its centre line in the map frame and its constant width."""

    lane_id: str
    centerline: np.ndarray  # (N, 2) float64, map frame [m], in driving direction
    width: float  # [m]

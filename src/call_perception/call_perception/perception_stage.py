"""
The perception stage of one vehicle step (ROS-free): what the ego sees, fuses and draws.

The one rule every pipeline of a CALL vehicle follows (the perception node, the fleet pipeline
that collects training data and evaluates): the ego's sensors see the vehicles that
``visibility.visible`` lets through; an accepted neighbour is drawn in the shared-vehicles
channel unless it lies within ``match_distance`` of a vehicle the ego sees (``fusion``), by
position, because that is all a real receiver can match (sender ids are not simulator actor
ids); the vehicles that only an accepted neighbour's decoded latent holds join the shared
channel too (``neighbour_views``, paper Fig. 4c); the ego's own line is its declared plan, or
the route until it has one.
"""
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from call_perception.bev_raster import BevConfig, BevRasterizer
from call_perception.fusion import fuse_shared, FusionConfig, SharedNeighbour
from call_perception.neighbour_views import add_neighbour_views, NeighbourView
from call_perception.road_map import RoadMap
from call_perception.visibility import visible
import numpy as np


@dataclass
class Box:
    """A vehicle bounding box in the map frame (the rasteriser's duck type)."""

    x: float
    y: float
    yaw: float
    length: float
    width: float


@dataclass(frozen=True)
class Perceived:
    """One rendered BEV and what went into it."""

    bev: np.ndarray            # uint8 (C, S, S)
    seen: int                  # vehicles the ego's own sensors see
    shared_only: int           # neighbours drawn from shared information only
    view_vehicles: int = 0     # vehicle blobs added from the neighbours' decoded views


class PerceptionStage:
    """Visibility, shared-vehicle fusion and the BEV raster of one ego."""

    def __init__(self, bev_config: BevConfig, road_map: Optional[RoadMap] = None,
                 sensor_range: float = 32.0, occlusion: bool = True,
                 full_observation: bool = False, fusion: FusionConfig = FusionConfig(),
                 share_intention: bool = True) -> None:
        """``share_intention`` False (latent sharing without intention) draws no shared lines."""
        if not sensor_range > 0.0:
            raise ValueError(f'sensor_range must be > 0, got {sensor_range}')
        self.rasterizer = BevRasterizer(bev_config, road_map)
        self.sensor_range = float(sensor_range)
        self.occlusion = bool(occlusion)
        self.full_observation = bool(full_observation)
        self.fusion = fusion
        self.share_intention = bool(share_intention)

    def set_road_map(self, road_map: RoadMap) -> None:
        """Draw a new static map from the next frame on (a map arrives after start-up)."""
        self.rasterizer = BevRasterizer(self.rasterizer.config, road_map)

    def render(self, ego: Any, others: Sequence[Any], neighbours: Sequence[SharedNeighbour],
               plan_xy: Optional[np.ndarray], route_xy: Optional[np.ndarray],
               views: Sequence[NeighbourView] = ()) -> Perceived:
        """
        Rasterise the ego's frame.

        ego, others: boxes (x, y, yaw, length, width), map frame; neighbours: the accepted
        shared information; plan_xy / route_xy: (M, 2) map-frame polylines; views: the
        accepted neighbours' decoded vehicle masks.
        """
        mask = visible(ego, others, self.sensor_range, self.occlusion, self.full_observation)
        seen = [box for box, is_seen in zip(others, mask) if is_seen]
        layer = fuse_shared(neighbours, seen, ego, self.fusion)
        own = plan_xy if plan_xy is not None and len(plan_xy) >= 2 else route_xy
        shared_lines = layer.waypoints if self.share_intention else []
        bev = self.rasterizer.render(ego, seen, layer.vehicles, own, shared_lines)
        added = add_neighbour_views(bev, ego, views, self.rasterizer.config, self.fusion)
        return Perceived(bev, len(seen), len(layer.vehicles), added)

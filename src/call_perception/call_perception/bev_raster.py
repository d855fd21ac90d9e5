"""
The paper's observation (App. E.1, Fig. 8): an ego-centric, heading-up semantic BEV.

Each channel is a binary mask (0/255) so the world model reconstructs classes, not colours.
Pixel geometry: the ego's centre sits at pixel (ego_row, ego_col); +x forward points up
(decreasing row), the ego's left points to decreasing column. OpenCV draws with integer pixel
centres, so a point d metres ahead lands on row ego_row - d / metres_per_pixel exactly.
"""
from dataclasses import dataclass, fields
import math
from pathlib import Path
from typing import Any, Optional, Sequence, Tuple, Union

from call_perception.package_config import load_section
from call_perception.road_map import RoadMap
import cv2
import numpy as np

CHANNELS: Tuple[str, ...] = ('drivable', 'lane_markings', 'ego', 'seen_vehicles',
                             'shared_vehicles', 'ego_waypoints', 'shared_waypoints')
CHANNEL_INDEX = {name: i for i, name in enumerate(CHANNELS)}
ON = 255
_SHIFT = 4  # OpenCV fixed-point bits: coordinates are drawn with 1/16 pixel precision
_SCALE = float(1 << _SHIFT)
# front-left, front-right, rear-right, rear-left in half-length/half-width units (convex order)
_CORNER_SIGNS = 0.5 * np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0], [-1.0, 1.0]])
_LIMIT = 1e5 * _SCALE  # [fixed-point px] clamp far points well inside int32


@dataclass(frozen=True)
class BevConfig:
    """Image size, resolution, ego placement and line widths (numbers in config/bev.yaml)."""

    size: int = 128
    metres_per_pixel: float = 0.5
    ego_row: float = 80.0
    ego_col: float = 64.0
    marking_thickness: int = 1
    waypoint_thickness: int = 2

    def __post_init__(self):
        """Fail fast on a configuration that cannot describe an image."""
        if int(self.size) < 8:
            raise ValueError(f'BEV size must be >= 8 px, got {self.size}')
        if not (math.isfinite(self.metres_per_pixel) and self.metres_per_pixel > 0):
            raise ValueError(f'metres_per_pixel must be > 0, got {self.metres_per_pixel}')
        for name in ('ego_row', 'ego_col'):
            value = getattr(self, name)
            if not 0 <= value <= self.size - 1:
                raise ValueError(f'{name}={value} lies outside the {self.size} px image')
        if self.marking_thickness < 1 or self.waypoint_thickness < 1:
            raise ValueError('line thicknesses must be >= 1 px')

    @classmethod
    def from_yaml(cls, path: Optional[Union[str, Path]] = None) -> 'BevConfig':
        """Read config/bev.yaml (or path); unknown keys are an error, not silently ignored."""
        data = load_section('bev.yaml', path)
        known = {f.name: f.type for f in fields(cls)}
        unknown = set(data) - set(known)
        if unknown:
            raise ValueError(f'unknown BEV config keys: {sorted(unknown)}')
        casts = {'size': int, 'marking_thickness': int, 'waypoint_thickness': int}
        return cls(**{k: casts.get(k, float)(v) for k, v in data.items()})

    def resized(self, size: int) -> 'BevConfig':
        """Return the same field of view at another pixel size (64 px models see 64 m too)."""
        factor = self.size / size
        return BevConfig(size=size, metres_per_pixel=self.metres_per_pixel * factor,
                         ego_row=self.ego_row / factor, ego_col=self.ego_col / factor,
                         marking_thickness=self.marking_thickness,
                         waypoint_thickness=max(1, round(self.waypoint_thickness / factor)))

    def at_size(self, size: int) -> 'BevConfig':
        """
        Return this config at the node parameter ``bev_size`` (0: as it is).

        The nodes render and read the BEV at their checkpoint's input size with the same field
        of view, as the ROS-free pipeline does; a negative size is a bad parameter.
        """
        if size < 0:
            raise ValueError(f'bev_size must be >= 0 (0: the bev.yaml size), got {size}')
        return self.resized(size) if size and size != self.size else self

    @property
    def view_radius(self) -> float:
        """Distance [m] from the ego to the farthest image corner (map lookup radius)."""
        far_row = max(self.ego_row, self.size - 1 - self.ego_row) + 1
        far_col = max(self.ego_col, self.size - 1 - self.ego_col) + 1
        return math.hypot(far_row, far_col) * self.metres_per_pixel


def map_to_pixel(config: BevConfig, ego: Any) -> np.ndarray:
    """2x3 affine matrix taking map (x, y) to (col, row) of the BEV centred on ego."""
    c, s = math.cos(ego.yaw), math.sin(ego.yaw)
    k = 1.0 / config.metres_per_pixel
    # forward f = c*dx + s*dy -> row = ego_row - f*k ; left l = -s*dx + c*dy -> col = ego_col - l*k
    a = np.array([[s * k, -c * k], [-c * k, -s * k]])
    b = np.array([config.ego_col, config.ego_row]) - a @ np.array([ego.x, ego.y])
    return np.hstack([a, b[:, None]])


def corners_from_array(arr: np.ndarray) -> np.ndarray:
    """(N, 4, 2) corners from an (N, 5) array of x, y, yaw, length, width."""
    c, s = np.cos(arr[:, 2:3]), np.sin(arr[:, 2:3])
    fx = arr[:, 3:4] * _CORNER_SIGNS[:, 0]  # (N, 4) forward offsets
    fy = arr[:, 4:5] * _CORNER_SIGNS[:, 1]  # (N, 4) left offsets
    out = np.empty((len(arr), 4, 2))
    out[:, :, 0] = arr[:, 0:1] + fx * c - fy * s
    out[:, :, 1] = arr[:, 1:2] + fx * s + fy * c
    return out


def _to_fixed(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Map-frame points (..., 2) -> OpenCV fixed-point int32 pixel coordinates (..., 2)."""
    pix = (points @ (affine[:, :2].T * _SCALE)) + affine[:, 2] * _SCALE
    # clamp far-away points so the fixed-point conversion never overflows int32
    np.minimum(pix, _LIMIT, out=pix)
    np.maximum(pix, -_LIMIT, out=pix)
    return np.rint(pix).astype(np.int32)


def _to_fixed_many(pieces: Sequence[np.ndarray], affine: np.ndarray) -> list:
    """Transform many polylines with one matrix product (per-call overhead dominates)."""
    if not pieces:
        return []
    fixed = _to_fixed(np.concatenate(pieces), affine)
    ends = np.cumsum([len(p) for p in pieces]).tolist()
    return [fixed[a:b] for a, b in zip([0] + ends[:-1], ends)]


def _finite_lines(lines: Optional[Sequence[np.ndarray]]) -> list:
    """Keep (M >= 2, 2) finite polylines; drop anything else (empty plans are normal)."""
    out = []
    for line in lines or ():
        arr = np.asarray(line, dtype=np.float64)
        if arr.ndim == 2 and arr.shape[0] >= 2 and arr.shape[1] == 2:
            arr = arr[np.all(np.isfinite(arr), axis=1)]
            if len(arr) >= 2:
                out.append(arr)
    return out


class BevRasterizer:
    """Draws the seven BEV channels for one ego; the road map is looked up per frame by chunk."""

    def __init__(self, config: BevConfig, road_map: Optional[RoadMap] = None):
        """Keep the configuration and the (possibly empty) static road map."""
        self.config = config
        self.road_map = road_map if road_map is not None else RoadMap.empty()

    def render(self, ego: Any, seen: Sequence[Any] = (), shared: Sequence[Any] = (),
               ego_waypoints: Optional[np.ndarray] = None,
               shared_waypoints: Sequence[np.ndarray] = ()) -> np.ndarray:
        """
        Rasterise one frame -> uint8 (len(CHANNELS), size, size), values 0 or 255.

        ego, seen and shared are boxes (x, y, yaw, length, width; map frame); waypoints are
        (M, 2) map-frame polylines. Boxes or points with non-finite values are skipped.
        """
        cfg = self.config
        n = cfg.size
        bev = np.zeros((len(CHANNELS), n, n), dtype=np.uint8)
        if not all(math.isfinite(v) for v in (ego.x, ego.y, ego.yaw)):
            return bev
        affine = map_to_pixel(cfg, ego)
        self._draw_road(bev, ego, affine)
        self._draw_boxes(bev[CHANNEL_INDEX['ego']], [ego], affine)
        self._draw_boxes(bev[CHANNEL_INDEX['seen_vehicles']], seen, affine)
        self._draw_boxes(bev[CHANNEL_INDEX['shared_vehicles']], shared, affine)
        ego_lines = [] if ego_waypoints is None else [ego_waypoints]
        self._draw_lines(bev[CHANNEL_INDEX['ego_waypoints']], _finite_lines(ego_lines), affine,
                         cfg.waypoint_thickness)
        self._draw_lines(bev[CHANNEL_INDEX['shared_waypoints']],
                         _finite_lines(shared_waypoints), affine, cfg.waypoint_thickness)
        return bev

    def _draw_road(self, bev: np.ndarray, ego: Any, affine: np.ndarray) -> None:
        radius = self.config.view_radius
        drivable = bev[CHANNEL_INDEX['drivable']]
        polygons = self.road_map.drivable.near(ego.x, ego.y, radius)
        for polygon in _to_fixed_many(polygons, affine):
            # one polygon per call: overlapping polygons in one fillPoly call cancel out
            cv2.fillPoly(drivable, [polygon], ON, cv2.LINE_8, _SHIFT)
        lines = self.road_map.markings.near(ego.x, ego.y, radius)
        self._draw_lines(bev[CHANNEL_INDEX['lane_markings']], lines, affine,
                         self.config.marking_thickness)

    def _draw_boxes(self, channel: np.ndarray, boxes: Sequence[Any], affine: np.ndarray) -> None:
        if len(boxes) == 0:
            return
        arr = np.array([(b.x, b.y, b.yaw, b.length, b.width) for b in boxes], dtype=np.float64)
        arr = arr[np.all(np.isfinite(arr), axis=1)]
        # OpenCV fills a polygon together with its outline, half a pixel beyond the box's
        # edges: shrink by that so a 4.6 m car covers 9 rows at 0.5 m/px, not 11
        arr[:, 3:5] = np.maximum(arr[:, 3:5] - self.config.metres_per_pixel, 0.0)
        # cull boxes that cannot touch the image (cheap with many far-away vehicles)
        centre = arr[:, :2] @ affine[:, :2].T + affine[:, 2]
        reach = np.hypot(arr[:, 3], arr[:, 4]) / (2.0 * self.config.metres_per_pixel) + 1.0
        n = self.config.size
        inside = np.all((centre > -reach[:, None]) & (centre < n - 1 + reach[:, None]), axis=1)
        if not inside.any():
            return
        for quad in _to_fixed(corners_from_array(arr[inside]), affine):
            cv2.fillConvexPoly(channel, quad, ON, cv2.LINE_8, _SHIFT)

    @staticmethod
    def _draw_lines(channel: np.ndarray, lines: Sequence[np.ndarray], affine: np.ndarray,
                    thickness: int) -> None:
        if lines:
            cv2.polylines(channel, _to_fixed_many(lines, affine), False, ON, thickness,
                          cv2.LINE_8, _SHIFT)

"""
Static road geometry for the BEV: lane polygons and lane-boundary lines in the map frame.

The rasteriser draws only what lies near the ego, so the map is cut into short chunks with
precomputed bounding boxes once; per frame a vectorised box test picks the few chunks in view.
"""
from dataclasses import dataclass
from typing import Iterable, List, Sequence

from call_perception.lane import Lane
import numpy as np

DEFAULT_CHUNK_LENGTH = 20.0  # [m] polyline piece length for the per-frame spatial selection


@dataclass
class MapChunks:
    """Polylines (or polygons) of one kind, cut into chunks with axis-aligned bounds."""

    pieces: List[np.ndarray]  # each (K, 2) float64, map frame [m]
    bounds: np.ndarray  # (len(pieces), 4) min_x, min_y, max_x, max_y [m]

    @classmethod
    def from_pieces(cls, pieces: Sequence[np.ndarray]) -> 'MapChunks':
        """Index pieces by their bounding boxes."""
        pieces = [np.ascontiguousarray(p, dtype=np.float64) for p in pieces if len(p) >= 2]
        if pieces:
            bounds = np.array([[p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()]
                               for p in pieces])
        else:
            bounds = np.zeros((0, 4))
        return cls(pieces, bounds)

    def near(self, x: float, y: float, radius: float) -> List[np.ndarray]:
        """Pieces whose bounding box intersects the square of half-side radius around (x, y)."""
        b = self.bounds
        mask = ((b[:, 0] <= x + radius) & (b[:, 2] >= x - radius)
                & (b[:, 1] <= y + radius) & (b[:, 3] >= y - radius))
        return [self.pieces[i] for i in np.flatnonzero(mask)]


def _left_normals(line: np.ndarray) -> np.ndarray:
    """Compute unit left normals at each vertex (averaged over the adjacent segments)."""
    seg = np.diff(line, axis=0)
    seg_len = np.linalg.norm(seg, axis=1, keepdims=True)
    seg = seg / np.maximum(seg_len, 1e-9)
    tangent = np.empty_like(line)
    tangent[0] = seg[0]
    tangent[-1] = seg[-1]
    tangent[1:-1] = seg[:-1] + seg[1:]
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)
    return np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)


def _clean_centerline(centerline: np.ndarray) -> np.ndarray:
    """Drop repeated points (they have no direction); reject non-finite or degenerate lanes."""
    line = np.asarray(centerline, dtype=np.float64)
    if line.ndim != 2 or line.shape[1] != 2 or not np.all(np.isfinite(line)):
        raise ValueError(f'lane centerline must be a finite (N, 2) array, got {line.shape}')
    keep = np.ones(len(line), dtype=bool)
    keep[1:] = np.linalg.norm(np.diff(line, axis=0), axis=1) > 1e-6
    line = line[keep]
    if len(line) < 2:
        raise ValueError('lane centerline needs at least two distinct points')
    return line


def _split(index: np.ndarray, line: np.ndarray, chunk_length: float) -> List[np.ndarray]:
    """
    Index ranges cutting a polyline into pieces of about chunk_length metres.

    Consecutive pieces share their end point so the drawn lines and polygons stay closed.
    """
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=1))])
    pieces = []
    start = 0
    while start < len(line) - 1:
        end = int(np.searchsorted(arc, arc[start] + chunk_length, side='right'))
        end = min(max(end, start + 1), len(line) - 1)
        pieces.append(index[start:end + 1])
        start = end
    return pieces


def _densify(line: np.ndarray, max_step: float) -> np.ndarray:
    """Insert points so no segment is longer than max_step (long straight lanes chunk well)."""
    seg_len = np.linalg.norm(np.diff(line, axis=0), axis=1)
    counts = np.maximum(np.ceil(seg_len / max_step).astype(int), 1)
    parts = [line[i] + np.outer(np.arange(c) / c, line[i + 1] - line[i])
             for i, c in enumerate(counts)]
    parts.append(line[-1:])
    return np.concatenate(parts)


def _boundary_key(line: np.ndarray) -> tuple:
    """Orientation-free key of a boundary: rounded end points (adjacent lanes share these)."""
    a = tuple(np.round(line[0], 1))
    b = tuple(np.round(line[-1], 1))
    return (min(a, b), max(a, b), len(line))


class RoadMap:
    """Drivable-area polygons and lane-marking polylines, chunked for fast per-frame lookup."""

    def __init__(self, lanes: Sequence[Lane], chunk_length: float = DEFAULT_CHUNK_LENGTH):
        """Build lane polygons and de-duplicated boundaries from lanes."""
        self.lanes = list(lanes)
        areas: List[np.ndarray] = []
        markings: List[np.ndarray] = []
        seen_boundaries = set()
        for lane in self.lanes:
            width = float(lane.width)
            if not np.isfinite(width) or width <= 0.0:
                raise ValueError(f'lane {lane.lane_id}: width must be positive, got {width}')
            line = _densify(_clean_centerline(lane.centerline), chunk_length / 4.0)
            offset = _left_normals(line) * (width / 2.0)
            for piece in _split(np.arange(len(line)), line, chunk_length):
                left, right = line[piece] + offset[piece], line[piece] - offset[piece]
                areas.append(np.concatenate([left, right[::-1]]))
                for boundary in (left, right):
                    key = _boundary_key(boundary)
                    if key not in seen_boundaries:
                        seen_boundaries.add(key)
                        markings.append(boundary)
        self.drivable = MapChunks.from_pieces(areas)
        self.markings = MapChunks.from_pieces(markings)

    @classmethod
    def from_lanes(cls, lanes: Iterable, chunk_length: float = DEFAULT_CHUNK_LENGTH) -> 'RoadMap':
        """Build from any lane-like objects with lane_id, centerline (N, 2) and width."""
        return cls([Lane(str(lane.lane_id), np.asarray(lane.centerline, dtype=np.float64),
                         float(lane.width)) for lane in lanes], chunk_length)

    @classmethod
    def from_opendrive(cls, xodr_text: str,
                       chunk_length: float = DEFAULT_CHUNK_LENGTH) -> 'RoadMap':
        """Build from OpenDRIVE text (CARLA's CarlaWorldInfo.opendrive)."""
        from call_perception.opendrive import parse_lanes  # optional module, imported on use
        return cls.from_lanes(parse_lanes(xodr_text), chunk_length)

    @classmethod
    def empty(cls) -> 'RoadMap':
        """Build a map with no roads: the BEV then holds vehicles and waypoints only."""
        return cls([])

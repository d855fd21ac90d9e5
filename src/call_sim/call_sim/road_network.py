"""
SUMO road network as CALL sees it: lane polylines, lane geometry queries and the map's xodr.

Positions come from SUMO lane shapes (netconvert may shift input coordinates).
"""
from dataclasses import dataclass
from pathlib import Path

from call_sim.types import Lane
import numpy as np
import sumolib

MAPS_DIR = Path(__file__).resolve().parent / 'maps'


def map_paths(name: str) -> tuple[Path, Path]:
    """(.net.xml, .xodr) of a committed map; fails fast with the known map names."""
    net, xodr = MAPS_DIR / name / f'{name}.net.xml', MAPS_DIR / name / f'{name}.xodr'
    if not net.is_file() or not xodr.is_file():
        known = sorted(p.name for p in MAPS_DIR.iterdir() if p.is_dir())
        raise FileNotFoundError(f'unknown map {name!r}: expected {net} and {xodr}; '
                                f'known maps: {known} (python -m call_sim.build_maps)')
    return net, xodr


@dataclass(frozen=True)
class LanePoint:
    """Where a point lies relative to the nearest lane."""

    lane_id: str
    lane_yaw: float
    lateral_distance: float  # from the lane centreline, m
    edge_excess: float       # distance beyond the lane edge, m (<= 0 inside the lane)


class RoadNetwork:
    """Lanes of one map (normal and junction-internal) with vectorised nearest-lane lookup."""

    def __init__(self, name: str):
        self.name = name
        self.net_path, self.xodr_path = map_paths(name)
        self.net = sumolib.net.readNet(str(self.net_path), withInternal=True)
        self.lanes: list[Lane] = []
        starts, ends, widths, owners = [], [], [], []
        for edge in self.net.getEdges(withInternal=True):
            for lane in edge.getLanes():
                points = np.asarray(lane.getShape(), dtype=np.float64)[:, :2]
                self.lanes.append(Lane(lane.getID(), points, float(lane.getWidth())))
                starts.append(points[:-1])
                ends.append(points[1:])
                widths += [lane.getWidth()] * (len(points) - 1)
                owners += [len(self.lanes) - 1] * (len(points) - 1)
        self._start = np.concatenate(starts)
        self._delta = np.concatenate(ends) - self._start
        self._length_sq = np.maximum((self._delta ** 2).sum(axis=1), 1e-12)
        self._half_width = 0.5 * np.asarray(widths)
        self._owner = np.asarray(owners)
        self._yaw = np.arctan2(self._delta[:, 1], self._delta[:, 0])

    def opendrive(self) -> str:
        """Return the map as OpenDRIVE text (what /carla/world_info carries)."""
        return self.xodr_path.read_text()

    def road_of(self, x: float, y: float) -> str:
        """Return the id of the road (SUMO edge) whose lane is nearest to a point."""
        return self.net.getLane(self.locate(x, y).lane_id).getEdge().getID()

    def locate(self, x: float, y: float) -> LanePoint:
        """Nearest lane to a point (by distance beyond the lane edge)."""
        rel = np.array([x, y]) - self._start
        t = np.clip((rel * self._delta).sum(axis=1) / self._length_sq, 0.0, 1.0)
        dist = np.hypot(rel[:, 0] - t * self._delta[:, 0], rel[:, 1] - t * self._delta[:, 1])
        excess = dist - self._half_width
        i = int(np.argmin(excess))
        return LanePoint(self.lanes[self._owner[i]].lane_id, float(self._yaw[i]),
                         float(dist[i]), float(excess[i]))

"""
Routes of CALL vehicles (the stand-in for CARLA's planning module): source -> destination.

A route is a random walk over the SUMO edge graph from a random place on a source edge,
`route.length` metres long, through junction-internal lanes where it turns, with random
lane-change points on its last edge. It is turned into a dense waypoint polyline; the
vehicle publishes the next `horizon` metres of it, refreshed every K steps.
"""
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from call_sim.road_network import RoadNetwork
import numpy as np


@dataclass(frozen=True)
class Route:
    """Waypoints (N, 2) every ~`spacing` m with their arc lengths, and its SUMO edges."""

    points: np.ndarray
    arc_length: np.ndarray
    edges: tuple[str, ...]
    start_lane: int
    start_pos: float

    @property
    def length(self) -> float:
        """Total length in metres."""
        return float(self.arc_length[-1])

    def start_yaw(self) -> float:
        """Heading of the first route segment."""
        d = self.points[1] - self.points[0]
        return float(np.arctan2(d[1], d[0]))

    def project(self, x: float, y: float, min_s: float = -np.inf) -> tuple[float, float, float]:
        """(arc length, distance, segment yaw) of the nearest route point at or after min_s."""
        start, end = self.points[:-1], self.points[1:]
        delta = end - start
        rel = np.array([x, y]) - start
        t = np.clip((rel * delta).sum(1) / np.maximum((delta ** 2).sum(1), 1e-12), 0.0, 1.0)
        dist = np.hypot(rel[:, 0] - t * delta[:, 0], rel[:, 1] - t * delta[:, 1])
        s = self.arc_length[:-1] + t * (self.arc_length[1:] - self.arc_length[:-1])
        dist = np.where(s >= min_s, dist, np.inf)
        i = int(np.argmin(dist))
        return float(s[i]), float(dist[i]), float(np.arctan2(delta[i, 1], delta[i, 0]))

    def window(self, s: float, horizon: float) -> np.ndarray:
        """Waypoints from arc length `s` to `s + horizon` (at least the destination)."""
        mask = (self.arc_length >= s) & (self.arc_length <= s + horizon)
        if not mask.any():
            return self.points[-1:].copy()
        return self.points[mask].copy()


def start_window(window, low: float, high: float) -> tuple[float, float]:
    """Clip the admissible start positions [low, high] to the scenario's start window."""
    w_low, w_high = max(low, float(window[0])), min(high, float(window[1]))
    if w_low > w_high:
        raise ValueError(f'route.start_window {list(window)} leaves no start position on the '
                         f'source edge (admissible [{low:.1f}, {high:.1f}] m)')
    return w_low, w_high


def resample(polyline: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Points every `spacing` m along a polyline (keeping its end), and their arc lengths."""
    keep = np.concatenate([[True], np.hypot(*np.diff(polyline, axis=0).T) > 1e-6])
    polyline = polyline[keep]
    cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(polyline, axis=0).T))])
    samples = np.append(np.arange(0.0, cum[-1], spacing), cum[-1])
    points = np.stack([np.interp(samples, cum, polyline[:, 0]),
                       np.interp(samples, cum, polyline[:, 1])], axis=1)
    return points, samples


def point_on_lane(shape: np.ndarray, lane_length: float, s: np.ndarray) -> np.ndarray:
    """Points at SUMO lane positions `s` (scaled from the lane length to the shape length)."""
    cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(shape, axis=0).T))])
    g = np.clip(s, 0.0, lane_length) * cum[-1] / lane_length
    return np.stack([np.interp(g, cum, shape[:, 0]), np.interp(g, cum, shape[:, 1])], axis=1)


class RoutePlanner:
    """Samples routes on one road network; every draw comes from the caller's RNG."""

    def __init__(self, road: RoadNetwork, config: Mapping[str, Any]):
        self.road = road
        self.config = config
        net = road.net
        self._edges = list(net.getEdges(withInternal=False))
        self.source_edges = sorted(
            e.getID() for e in self._edges
            if all(i.getFromNode() == e.getToNode() for i in e.getFromNode().getIncoming()))
        if not self.source_edges:
            raise ValueError(f'map {road.name} has no source edge (dead-end start)')

    def start_positions(self, spacing: float = 1.0) -> tuple[list[tuple[str, int, float]],
                                                             np.ndarray]:
        """
        Every start `sample` could draw outside the start window, every `spacing` metres.

        Returns the (edge, lane index, position) sources and their (S, 2) map points: a
        respawn in dense traffic looks for the freest of them instead of drawing blindly.
        """
        cfg, sources, points = self.config, [], []
        for edge_id in self.source_edges:
            edge = self.road.net.getEdge(edge_id)
            low = float(cfg['start_margin'])
            high = max(low, edge.getLength() - float(cfg['end_margin'])
                       - min(float(cfg['length']), 0.5 * edge.getLength()))
            positions = np.arange(low, high + 1e-9, spacing)
            for lane in edge.getLanes():
                sources += [(edge_id, lane.getIndex(), float(p)) for p in positions]
                points.append(point_on_lane(*self._lane_shape(lane.getID()), positions))
        return sources, np.concatenate(points).reshape(-1, 2)

    def _lane_shape(self, lane_id: str) -> tuple[np.ndarray, float]:
        lane = self.road.net.getLane(lane_id)
        return np.asarray(lane.getShape(), dtype=np.float64)[:, :2], float(lane.getLength())

    def _edge_points(self, edge_id: str, s_from: float, s_to: float,
                     changes: list[tuple[float, int, int]], lane: int) -> np.ndarray:
        """Polyline along an edge, blending lanes with a smoothstep at each change point."""
        spacing = 0.5 * float(self.config['spacing'])
        s = np.append(np.arange(s_from, s_to, spacing), s_to)
        edge = self.road.net.getEdge(edge_id)
        shapes = [self._lane_shape(lane_obj.getID()) for lane_obj in edge.getLanes()]
        points = point_on_lane(*shapes[lane], s)
        change_length = float(self.config['lane_change_length'])
        for s_change, from_lane, to_lane in changes:
            alpha = np.clip((s - s_change) / change_length, 0.0, 1.0)
            alpha = (alpha * alpha * (3.0 - 2.0 * alpha))[:, None]
            shift = point_on_lane(*shapes[to_lane], s) - point_on_lane(*shapes[from_lane], s)
            points = points + alpha * shift
        return points

    @staticmethod
    def _scripted(edge: Any, scripted: Sequence[Sequence[float]] | None, lane: int
                  ) -> tuple[list[tuple[float, int, int]], int]:
        """Scripted changes on one edge as (position, from, to), and the lane they end in."""
        changes = []
        for position, target in scripted or ():
            if not 0 <= int(target) < edge.getLaneNumber():
                raise ValueError(f'edge {edge.getID()} has no lane {int(target)}')
            changes.append((float(position), lane, int(target)))
            lane = int(target)
        return changes, lane

    def sample(self, rng: np.random.Generator, source: tuple[str, int, float] | None = None,
               in_window: bool = True, next_edge: str | None = None,
               lane_changes: Mapping[str, Sequence[Sequence[float]]] | None = None) -> Route:
        """
        Draw one route; `source` = (edge, lane index, position) fixes its start.

        `next_edge` fixes the edge the route takes after its start edge (a scripted
        encounter's straight crossing); a name the start edge does not lead to fails fast.

        `lane_changes[edge] = [(position, lane), ...]` fixes the lane changes on that edge (a
        scripted merge): at each position (metres along the edge) the route blends into the
        named lane, in place of the edge's random changes; on an edge the route leaves, it
        then reaches the next edge from the lane the last change ends in.

        `in_window=False` ignores the scenario's start window (anywhere on a source edge):
        the fallback of a respawn that finds the window full of traffic.
        """
        cfg = self.config
        net = self.road.net
        scripted_edges = dict(lane_changes or {})
        if source is None:
            edge_id = self.source_edges[rng.integers(len(self.source_edges))]
            edge = net.getEdge(edge_id)
            low = float(cfg['start_margin'])
            high = max(low, edge.getLength() - float(cfg['end_margin'])
                       - min(float(cfg['length']), 0.5 * edge.getLength()))
            if in_window and cfg.get('start_window') is not None:
                low, high = start_window(cfg['start_window'], low, high)
            source = (edge_id, int(rng.integers(edge.getLaneNumber())), rng.uniform(low, high))
        edge_id, lane, pos = source
        remaining = float(cfg['length'])
        pieces, edges = [], [edge_id]
        start_lane, start_pos = lane, pos
        while True:
            edge = net.getEdge(edge_id)
            length = edge.getLength()
            outgoing = {e.getID(): c for e, c in edge.getOutgoing().items()
                        if e.getFunction() != 'internal'}
            if length - pos >= remaining + float(cfg['end_margin']) or not outgoing:
                end = min(max(pos + remaining, pos + float(cfg['end_margin'])),
                          length - float(cfg['end_margin']))
                end = max(end, pos + 1.0)
                changes, lane_now = self._scripted(edge, scripted_edges.get(edge_id), lane)
                n_changes = int(rng.integers(int(cfg['max_lane_changes']) + 1))
                usable = end - pos - float(cfg['lane_change_length'])
                if (edge_id not in scripted_edges and edge.getLaneNumber() > 1 and n_changes
                        and usable > 0.0):
                    points_s = np.sort(rng.uniform(pos, pos + usable, n_changes))
                    for s_change in points_s:
                        if changes and s_change < changes[-1][0] + cfg['lane_change_length']:
                            continue
                        step = int(rng.choice([-1, 1]))
                        target = lane_now + step
                        if not 0 <= target < edge.getLaneNumber():
                            target = lane_now - step
                        changes.append((float(s_change), lane_now, target))
                        lane_now = target
                pieces.append(self._edge_points(edge_id, pos, end, changes, lane))
                break
            if next_edge is not None and len(edges) == 1:
                if next_edge not in outgoing:
                    raise ValueError(f'edge {edge_id} does not lead to {next_edge}')
                chosen = next_edge
            else:
                chosen = sorted(outgoing)[rng.integers(len(outgoing))]
            connections = outgoing[chosen]
            scripted, lane_now = self._scripted(edge, scripted_edges.get(edge_id), lane)
            same_lane = [c for c in connections if c.getFromLane().getIndex() == lane_now]
            conn = (same_lane or connections)[rng.integers(len(same_lane or connections))]
            from_lane = conn.getFromLane().getIndex()
            if from_lane != lane and len(pieces) == 0 and start_pos == pos and not scripted:
                lane = lane_now = start_lane = from_lane  # start directly on the lane that turns
            changes = scripted + ([] if from_lane == lane_now else [
                (max(pos, length - 2.0 * float(self.config['lane_change_length'])), lane_now,
                 from_lane)])
            pieces.append(self._edge_points(edge_id, pos, length, changes, lane))
            remaining -= length - pos
            via = conn.getViaLaneID()
            while via:
                shape, _ = self._lane_shape(via)
                pieces.append(shape)
                remaining -= float(np.hypot(*np.diff(shape, axis=0).T).sum())
                nxt = net.getLane(via).getOutgoing()
                via = nxt[0].getViaLaneID() if nxt and nxt[0].getViaLaneID() else ''
            edge_id, lane, pos = chosen, conn.getToLane().getIndex(), 0.0
            edges.append(edge_id)
        points, arc = resample(np.concatenate(pieces), float(cfg['spacing']))
        return Route(points, arc, tuple(edges), start_lane, float(start_pos))

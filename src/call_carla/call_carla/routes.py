"""
The paper's Town04 scenario on a CARLA map: a four-lane section and one route per vehicle.

Works on any ``carla.Map`` - the live world's, or one built offline from OpenDRIVE text with
``carla.Map(name, xodr)`` - using only waypoint queries (``next``, left/right lanes), so no
GlobalRoutePlanner is needed. A route starts at a random lane and offset near the section's
start, changes lane at random points and ends at a random destination inside the section.
Outputs are in our map frame (CARLA's y and yaw negated).
"""
from dataclasses import dataclass, field
import math
import random
from typing import Any, Dict, List, Mapping, Sequence

from call_carla.bridge_config import SpawnPoint
import numpy as np


@dataclass(frozen=True)
class SectionConfig:
    """Numbers of the ``section`` block of the scenario YAML."""

    lanes: int = 4
    length_m: float = 150.0
    candidate_spacing_m: float = 10.0
    waypoint_step_m: float = 2.0
    spawn_gap_m: float = 12.0
    max_start_offset_m: float = 40.0
    min_route_m: float = 80.0
    lane_changes: tuple = (0, 2)
    lane_change_length_m: float = 20.0
    spawn_z_m: float = 0.5

    def __post_init__(self) -> None:
        if self.lanes < 1 or self.length_m <= 0.0 or self.waypoint_step_m <= 0.0:
            raise ValueError('section: lanes, length_m and waypoint_step_m must be positive')
        if self.min_route_m + self.max_start_offset_m > self.length_m:
            raise ValueError('section: max_start_offset_m + min_route_m exceeds length_m')
        low, high = self.lane_changes
        if not 0 <= low <= high:
            raise ValueError(f'section.lane_changes must be [low, high], got {self.lane_changes}')

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> 'SectionConfig':
        """Build from the YAML mapping; unknown keys fail fast."""
        unknown = sorted(set(config) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f'section: unknown keys {unknown}')
        values = dict(config)
        if 'lane_changes' in values:
            values['lane_changes'] = tuple(int(v) for v in values['lane_changes'])
        if 'lanes' in values:
            values['lanes'] = int(values['lanes'])
        return cls(**values)


@dataclass
class Route:
    """One CALL vehicle's task: spawn pose, waypoints (M, 2) and where it changes lane."""

    role: str
    spawn: SpawnPoint
    waypoints: np.ndarray = field(repr=False)  # map frame [m]
    lane_change_at_m: List[float] = field(default_factory=list)  # distance from the source


def map_xy(waypoint: Any) -> tuple:
    """Return a CARLA waypoint's location in the map frame."""
    loc = waypoint.transform.location
    return float(loc.x), -float(loc.y)


def _is_driving(waypoint: Any) -> bool:
    return waypoint is not None and str(waypoint.lane_type) == 'Driving'


def same_direction_lanes(waypoint: Any) -> List[Any]:
    """List the same-direction driving lanes beside the waypoint's, left to right."""
    lanes = [waypoint]
    sign = waypoint.lane_id > 0
    left = waypoint.get_left_lane()
    while _is_driving(left) and (left.lane_id > 0) == sign and len(lanes) < 16:
        lanes.insert(0, left)
        left = left.get_left_lane()
    right = waypoint.get_right_lane()
    while _is_driving(right) and (right.lane_id > 0) == sign and len(lanes) < 16:
        lanes.append(right)
        right = right.get_right_lane()
    return lanes


def _ahead(waypoint: Any, distance: float) -> Any:
    if distance <= 0.0:
        return waypoint
    following = waypoint.next(distance)
    return following[0] if following else None


def find_sections(carla_map: Any, config: SectionConfig) -> List[Any]:
    """Find starts (leftmost lane) of junction-free stretches with config.lanes lanes."""
    starts = []
    probe = config.candidate_spacing_m
    for waypoint in carla_map.generate_waypoints(config.candidate_spacing_m):
        if not _is_driving(waypoint) or waypoint.is_junction:
            continue
        lanes = same_direction_lanes(waypoint)
        if len(lanes) != config.lanes or lanes[0].lane_id != waypoint.lane_id:
            continue
        ok = True
        for k in range(1, int(config.length_m // probe) + 1):
            ahead = _ahead(waypoint, k * probe)
            if ahead is None or ahead.is_junction or \
                    len(same_direction_lanes(ahead)) != config.lanes:
                ok = False
                break
        if ok:
            starts.append(waypoint)
    return starts


def _change_points(rng: random.Random, count: int, route_m: float,
                   change_m: float) -> List[float]:
    """
    Draw sorted distances of up to count lane changes, each in its own slot of the route.

    A change needs change_m of road and none may overlap the next one or the route's end,
    so the usable stretch is cut into count equal slots of at least change_m each.
    """
    low, high = 0.5 * change_m, route_m - change_m
    count = min(count, int((high - low) // change_m)) if high > low else 0
    if count <= 0:
        return []
    slot = (high - low) / count
    return [low + i * slot + rng.uniform(0.0, slot - change_m) for i in range(count)]


def _drive(start: Any, lane_index: int, lanes: int, route_m: float, changes: List[float],
           rng: random.Random, config: SectionConfig) -> tuple:
    """Walk the route: straight in steps, diagonal over lane_change_length at change points."""
    waypoint, travelled, index = start, 0.0, lane_index
    points = [map_xy(waypoint)]
    done_changes: List[float] = []
    pending = list(changes)
    while travelled < route_m - 1e-6:
        if pending and travelled >= pending[0]:
            pending.pop(0)
            options = [d for d in (-1, 1) if 0 <= index + d < lanes]
            side = rng.choice(options) if options else 0
            neighbour = waypoint.get_left_lane() if side < 0 else waypoint.get_right_lane()
            if side and _is_driving(neighbour):
                landing = _ahead(neighbour, config.lane_change_length_m)
                if landing is not None:
                    waypoint, index = landing, index + side
                    done_changes.append(travelled)
                    travelled += config.lane_change_length_m
                    points.append(map_xy(waypoint))
                    continue
        step = min(config.waypoint_step_m, route_m - travelled)
        following = _ahead(waypoint, step)
        if following is None:
            break
        waypoint = following
        travelled += step
        points.append(map_xy(waypoint))
    return np.array(points, dtype=np.float64), done_changes


def plan_routes(section_start: Any, roles: Sequence[str], config: SectionConfig,
                rng: random.Random) -> List[Route]:
    """Plan one route per role inside the section that begins at section_start (leftmost lane)."""
    lanes = same_direction_lanes(section_start)
    if len(lanes) != config.lanes:
        raise ValueError(f'section start has {len(lanes)} lanes, expected {config.lanes}')
    taken: Dict[int, List[float]] = {}
    routes = []
    for role in roles:
        for _ in range(200):
            index = rng.randrange(config.lanes)
            offset = rng.uniform(0.0, config.max_start_offset_m)
            if all(abs(offset - o) >= config.spawn_gap_m for o in taken.get(index, [])):
                break
        else:
            raise ValueError(f'no room for {len(roles)} vehicles {config.spawn_gap_m} m apart '
                             f'in the first {config.max_start_offset_m} m of {config.lanes} '
                             'lanes')
        taken.setdefault(index, []).append(offset)
        start = _ahead(lanes[index], offset)
        route_m = rng.uniform(config.min_route_m, config.length_m - offset)
        count = rng.randint(*config.lane_changes)
        changes = _change_points(rng, count, route_m, config.lane_change_length_m)
        waypoints, done = _drive(start, index, config.lanes, route_m, changes, rng, config)
        loc, rot = start.transform.location, start.transform.rotation
        spawn = SpawnPoint.from_carla(loc.x, loc.y, loc.z + config.spawn_z_m, rot.yaw)
        routes.append(Route(role, spawn, waypoints, done))
    return routes


def choose_section(carla_map: Any, config: SectionConfig, rng: random.Random) -> Any:
    """Pick a random four-lane section start; ValueError when the map has none."""
    starts = find_sections(carla_map, config)
    if not starts:
        raise ValueError(f'map {carla_map.name!r} has no {config.length_m:g} m stretch with '
                         f'{config.lanes} same-direction lanes')
    return rng.choice(starts)


def route_heading(waypoints: np.ndarray) -> np.ndarray:
    """Return the yaw (rad, CCW from +x) along a waypoint polyline, one per point."""
    diff = np.diff(waypoints, axis=0)
    if len(diff) == 0:
        return np.zeros(len(waypoints))
    yaw = np.arctan2(diff[:, 1], diff[:, 0])
    return np.concatenate([yaw, yaw[-1:]])


def spawn_distance(a: SpawnPoint, b: SpawnPoint) -> float:
    """Return the planar distance between two spawn points [m]."""
    return math.hypot(a.x - b.x, a.y - b.y)

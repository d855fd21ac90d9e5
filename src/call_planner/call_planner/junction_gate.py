"""
Junction gate: a vehicle enters a junction only when it can clear it ("don't block the box").

A vehicle that stops inside a junction blocks the crossing flows: the simulator's drivers
treat it as a foe they wait for, and if it waits for one of them nobody moves (a gridlock).
Traffic law and every intersection module of an automated-driving stack (Autoware's
behavior_velocity intersection module: stop line, "stuck vehicle" and "collision" checks;
the "do not block the intersection" rule, e.g. StVO section 11 (1), UK Highway Code rule
174) answer this the same way: before the stop line the vehicle checks that

1. its exit has room: no vehicle stands (slower than `standing_speed`) on its path through
   the junction or on the first `exit_room` metres beyond the ego's length past the exit,
   so that once in, it can leave;
2. it accepts the gap: no crossing vehicle is predicted on a point of its path through the
   junction while the ego covers that point, the ego's window widened by `time_gap` each
   side (a post-encroachment time, as gap acceptance at unsignalised junctions is modelled:
   each conflict point is cleared `time_gap` before the other vehicle arrives or after it
   has left). Every other vehicle moves at constant velocity; the ego starts from its speed
   and speeds up at `go_accel` to `cross_speed` (not slower than it is), so a left turn
   across oncoming traffic needs the gap that lets it clear the oncoming lanes, not the
   whole junction. A vehicle heading within `follow_angle` of the ego's path where it meets
   it is a leader or a follower, not a crossing vehicle, and is left to car-following and
   the TTC monitor;

and otherwise stops its front `stop_margin` before the junction, on the stop-line speed
profile v <= sqrt(2 b d) with b = `decel` (d the distance left to the stop point), braking
harder (up to `max_decel`) only if it is already faster than that. Once the ego's front is
past the junction's edge, or it cannot stop before that edge with `max_decel`, it commits:
it is not held inside the junction (the TTC monitor still guards it against contacts).

Map facts come from the map the simulator sends every node (CarlaWorldInfo's OpenDRIVE:
the junction's connecting roads, `junction` != -1) and the route the planning module
publishes (/carla/<role>/waypoints); the other vehicles are the TTC monitor's tracks (seen,
shared and neighbours' messages). No simulator state is read.
"""
from dataclasses import dataclass, fields
import math
from typing import Any, Mapping, Optional, Sequence

from call_planner.route_path import finite_points, resample, route_from
import numpy as np

#: [m] spacing of the ego's path through the junction
PATH_STEP = 0.5
#: [s] sampling of the crossing vehicles' prediction
TIME_STEP = 0.25


@dataclass(frozen=True)
class JunctionConfig:
    """The gate's numbers (config/planner.yaml, `junction_*`)."""

    enabled: bool = True
    stop_margin: float = 1.0      # [m] the ego's front stops this far before the junction
    exit_room: float = 2.0        # [m] free beyond the ego's length past the junction's exit
    standing_speed: float = 1.5   # [m/s] a vehicle slower than this occupies where it stands
    go_accel: float = 1.5         # [m/s^2] the ego is assumed to speed up at ...
    cross_speed: float = 6.0      # [m/s] ... to this speed (or keep a higher one) to cross
    time_gap: float = 1.0         # [s] margin of the ego's occupancy window, each side
    follow_angle: float = 30.0    # [deg] heading difference below which a vehicle follows
    clearance: float = 0.3        # [m] lateral clearance between footprints
    decel: float = 2.0            # [m/s^2] b of the stop-line speed profile
    max_decel: float = 4.0        # [m/s^2] hardest braking to stop before the junction
    reach: float = 15.0           # [m] look this far beyond the braking distance at b

    def __post_init__(self):
        """Fail fast on numbers that cannot work."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == 'enabled':
                continue
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f'junction_{f.name} must be >= 0, got {value}')
        for name in ('go_accel', 'cross_speed', 'decel', 'max_decel', 'standing_speed'):
            if getattr(self, name) <= 0.0:
                raise ValueError(f'junction_{name} must be positive')
        if self.max_decel < self.decel:
            raise ValueError('junction_max_decel must be at least junction_decel')

    @classmethod
    def from_params(cls, params: Mapping[str, Any], prefix: str = 'junction_'
                    ) -> 'JunctionConfig':
        """Build from flat parameters named `<prefix><field>`; missing ones keep defaults."""
        values = {}
        for f in fields(cls):
            if prefix + f.name in params:
                cast = bool if f.name == 'enabled' else float
                values[f.name] = cast(params[prefix + f.name])
        return cls(**values)


class JunctionMap:
    """The junctions' drivable area: their connecting lanes (centre lines and widths)."""

    def __init__(self, lanes: Sequence[Any]):
        """`lanes`: lane-like objects (centerline (N, 2), width) inside junctions."""
        starts, deltas, half = [], [], []
        for lane in lanes:
            line = np.asarray(lane.centerline, dtype=np.float64).reshape(-1, 2)
            if len(line) < 2:
                continue
            starts.append(line[:-1])
            deltas.append(np.diff(line, axis=0))
            half.append(np.full(len(line) - 1, 0.5 * float(lane.width)))
        self._start = np.concatenate(starts) if starts else np.zeros((0, 2))
        self._delta = np.concatenate(deltas) if deltas else np.zeros((0, 2))
        self._half = np.concatenate(half) if half else np.zeros(0)
        self._length2 = np.maximum((self._delta ** 2).sum(-1), 1e-12)

    @classmethod
    def from_opendrive(cls, xodr_text: str) -> 'JunctionMap':
        """Read the connecting roads (junction != -1) of an OpenDRIVE map; ValueError if bad."""
        from call_perception.opendrive import parse_lanes, parse_roads
        inside = {road.road_id for road in parse_roads(xodr_text)
                  if road.junction not in ('-1', '')}
        return cls([lane for lane in parse_lanes(xodr_text)
                    if lane.lane_id.split(':', 1)[0] in inside])

    def __len__(self) -> int:
        """Return the number of lane segments (0: a map without junctions)."""
        return len(self._half)

    def centre(self) -> Optional[tuple[float, float]]:
        """Return the mean of the junction lanes' vertices (None: no junction)."""
        if not len(self):
            return None
        x, y = self._start.mean(0)
        return float(x), float(y)

    def inside(self, points: np.ndarray) -> np.ndarray:
        """(P,) whether each point (P, 2) lies on a junction lane."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if not len(self):
            return np.zeros(len(points), bool)
        rel = points[:, None, :] - self._start[None]                            # (P, S, 2)
        t = (rel * self._delta).sum(-1) / self._length2
        gap = rel - t[..., None] * self._delta
        # the band beside each segment, without the round caps at its ends: a lane's caps
        # would reach half its width beyond the junction's edge, into the approach
        return ((np.sqrt((gap ** 2).sum(-1)) <= self._half) & (t >= 0.0) & (t <= 1.0)).any(1)


@dataclass(frozen=True)
class GateVerdict:
    """The gate's decision for one step."""

    accel: Optional[float]      # [m/s^2] the most the ego may accelerate; None: no limit
    reason: str                 # one line for /diagnostics ('' without a hold)
    distance: float = math.inf  # [m] from the ego's front to the stop point


def _point_distances(path: np.ndarray, cx: np.ndarray, cy: np.ndarray, yaw: float,
                     length: float, width: float) -> np.ndarray:
    """(T, P) distance [m] from a box's axis (centres cx, cy (T,)) to each path point (P, 2)."""
    half_axis = max(0.5 * (length - width), 0.0)
    offsets = np.linspace(-half_axis, half_axis, 5)
    px = cx[:, None] + offsets[None] * math.cos(yaw)                           # (T, 5)
    py = cy[:, None] + offsets[None] * math.sin(yaw)
    dx = px[..., None] - path[None, None, :, 0]                                # (T, 5, P)
    dy = py[..., None] - path[None, None, :, 1]
    return np.sqrt(dx ** 2 + dy ** 2).min(axis=1)


def _footprint_distance(path: np.ndarray, cx: np.ndarray, cy: np.ndarray, yaw: float,
                        length: float, width: float) -> np.ndarray:
    """Distance [m] from each centre (T,) of a box's axis (less its half width) to a path."""
    return _point_distances(path, cx, cy, yaw, length, width).min(axis=1)


class JunctionGate:
    """Decides per step whether the ego may enter the junction ahead on its route."""

    def __init__(self, config: JunctionConfig, junctions: JunctionMap,
                 ego_length: float, ego_width: float):
        """Bind the numbers, the map's junctions and the ego's footprint."""
        self.config = config
        self.junctions = junctions
        self.ego_length = float(ego_length)
        self.ego_width = float(ego_width)

    def assess(self, pose: tuple, speed: float, route: np.ndarray,
               tracks: Sequence[Any]) -> GateVerdict:
        """Return the acceleration limit for the ego at `pose` on `route` (M, 2) among `tracks`."""
        cfg = self.config
        free = GateVerdict(None, '')
        route = finite_points(route)
        if not cfg.enabled or not len(self.junctions) or len(route) < 1:
            return free
        speed = max(float(speed), 0.0)
        path, s = resample(route_from(route, (pose[0], pose[1])), PATH_STEP)
        flags = self.junctions.inside(path)
        if flags[0] or not flags.any():
            return free                 # inside already (committed), or no junction ahead
        first = int(np.argmax(flags))
        edge = s[first] - 0.5 * self.ego_length        # the ego's front to the junction
        distance = edge - cfg.stop_margin               # ... and to its stop point
        if edge <= 0.0 or distance > speed ** 2 / (2 * cfg.decel) + cfg.reach:
            return free                 # its front is in (committed), or far from it
        if speed ** 2 / (2 * edge) > cfg.max_decel:
            return free                 # cannot stop before the junction: go through
        after = np.flatnonzero(~flags[first:])
        last = first + int(after[0]) if len(after) else len(flags) - 1
        reason = self._blocked(path, s, first, last, speed, tracks)
        if not reason:
            return free
        if distance <= 0.0:             # within the margin: stop, or stay stopped
            accel = -cfg.decel if speed < 0.1 else -min(
                max(speed ** 2 / (2.0 * edge), cfg.decel), cfg.max_decel)
        elif speed > math.sqrt(2.0 * cfg.decel * distance):
            accel = -min(speed ** 2 / (2.0 * distance), cfg.max_decel)
        else:
            # below the profile: towards it, its speed gap closed in about a second
            accel = min(math.sqrt(2.0 * cfg.decel * distance) - speed, cfg.decel)
        return GateVerdict(accel, reason, distance)

    def _blocked(self, path: np.ndarray, s: np.ndarray, first: int, last: int, speed: float,
                 tracks: Sequence[Any]) -> str:
        """Why the ego may not enter ('' if it may): a standing vehicle or a crossing one."""
        cfg = self.config
        clear_to = s[last] + self.ego_length + cfg.exit_room
        box, arc = path[first:last + 1], s[first:last + 1]
        needed = path[first:int(np.searchsorted(s, clear_to)) + 1]
        # each box point's window: from the ego's front reaching it to its rear leaving it
        half = 0.5 * self.ego_length
        enter = self.arrival(np.maximum(arc - half, 0.0), speed) - cfg.time_gap
        leave = self.arrival(arc + half, speed) + cfg.time_gap
        times = np.arange(0.0, float(leave.max()) + 1e-9, TIME_STEP)
        covered = (times[:, None] >= enter[None]) & (times[:, None] <= leave[None])   # (T, P)
        follow = math.radians(cfg.follow_angle)
        for k in tracks:
            reach = 0.5 * (self.ego_width + float(k.width)) + cfg.clearance
            vx, vy = float(k.vx), float(k.vy)
            moving = math.hypot(vx, vy)
            if moving < cfg.standing_speed:
                d = _footprint_distance(needed, np.array([k.x]), np.array([k.y]), k.yaw,
                                        k.length, k.width)
                if d[0] < reach:
                    return (f'junction hold: a vehicle stands on the path through the junction'
                            f' or its exit, at ({k.x:.1f}, {k.y:.1f})')
                continue
            heading = math.atan2(vy, vx)
            cx, cy = k.x + vx * times, k.y + vy * times
            meets = (_point_distances(box, cx, cy, heading, k.length, k.width) < reach) \
                & covered                                                         # (T, P)
            if not meets.any():
                continue
            when, where = np.unravel_index(int(np.argmax(meets)), meets.shape)
            # the path's heading where the vehicle meets it: a follower or leader is no foe
            a, b = box[max(where - 1, 0)], box[min(where + 1, len(box) - 1)]
            path_heading = math.atan2(b[1] - a[1], b[0] - a[0])
            if abs(math.remainder(heading - path_heading, math.tau)) < follow:
                continue
            return (f'junction hold: a crossing vehicle is predicted on the path through the '
                    f'junction in {times[when]:.1f} s, from ({k.x:.1f}, {k.y:.1f})')
        return ''

    def arrival(self, distance: np.ndarray, speed: float) -> np.ndarray:
        """[s] when the ego's centre has covered `distance` [m]: from `speed`, at `go_accel`."""
        cfg = self.config
        v0 = max(float(speed), 0.0)
        top = max(cfg.cross_speed, v0)
        ramp = (top ** 2 - v0 ** 2) / (2.0 * cfg.go_accel)     # [m] covered speeding up
        d = np.asarray(distance, dtype=np.float64)
        speeding = (np.sqrt(v0 ** 2 + 2.0 * cfg.go_accel * np.minimum(d, ramp)) - v0) \
            / cfg.go_accel
        return speeding + np.maximum(d - ramp, 0.0) / top


def gate_override(verdict: GateVerdict, accel: float) -> Optional[float]:
    """Return the acceleration replacing `accel` (planner's or monitor's); None: it stands."""
    if verdict.accel is None or accel <= verdict.accel:
        return None
    return verdict.accel


def after_monitor(gate: JunctionGate, pose: tuple, speed: float, route: Any, tracks: Sequence,
                  planned: float, override: Optional[float]
                  ) -> tuple[Optional[float], GateVerdict, bool]:
    """
    Apply the gate after the TTC monitor, as the planner node and the fleet both do.

    `planned` is the planner's acceleration, `override` the monitor's (None: none). Returns
    the acceleration override that results (the monitor's, or the gate's when lower), the
    gate's verdict, and whether the gate alone holds the ego (a comfortable override of its
    own, counted as a junction hold).
    """
    verdict = gate.assess(pose, speed, route, tracks)
    held = gate_override(verdict, planned if override is None else override)
    if held is None:
        return override, verdict, False
    return held, verdict, override is None


def gate_from_params(params: Mapping[str, Any], opendrive: Optional[str]
                     ) -> Optional[JunctionGate]:
    """
    Build the gate of the planner's parameters on the map's OpenDRIVE (None: it is off).

    Without a map yet (None) the gate knows no junction and holds nothing; a malformed map
    raises ValueError (the caller fails fast, or drops the message and counts it).
    """
    config = JunctionConfig.from_params(params)
    if not config.enabled:
        return None
    junctions = JunctionMap([]) if opendrive is None else JunctionMap.from_opendrive(opendrive)
    return JunctionGate(config, junctions, float(params['ego_length']),
                        float(params['ego_width']))

"""
Scripted occluded encounters: one ego, one other CALL vehicle, one truck that hides them.

The situation of paper Fig. 1 (a vehicle hidden behind a large one, known to the ego only
through what another vehicle shares), reduced to three vehicles so that every encounter is
about the occluded conflict and nothing else (no background traffic: with it, most
conflicts are with queued or background vehicles that sharing cannot tell of). Two
layouts (`LAYOUTS`), one machinery:

- `crossing`, on the crossroad map: the ego (`hero0`, CALL) approaches the junction from
  the south on the inner lane (`south_in` lane 1, heading north) and goes straight
  (`north_out`); the crosser (`hero1`, CALL, driven by the same stack) comes from the ego's
  right (`east_in` lane 1, heading west) and goes straight (`west_out`); their lanes cross
  at `CONFLICT_POINT`. A stationary 12 m truck stands on the ego's right lane (`south_in`
  lane 0), its front at the stop line, and hides the east arm from the ego (and the ego
  from the crosser) until both are close to the junction.
- `merge`, on the highway_merge map, past the on-ramp's junction (`accel_lane`: lane 0 is
  the ramp's acceleration lane, lanes 1 and 2 the main road): the ego (`hero0`) drives the
  main road's left lane (lane 2); the merger (`hero1`) comes from the ramp in the
  acceleration lane and its route changes over both lanes into the ego's lane at
  `MERGE_CHANGE` (one blend of the scenario's `lane_change_length`); a 12 m truck, *held*
  at the merger's speed by the simulator, drives the main road's right lane (lane 1, the
  lane between them) just behind the merger, and hides it from the ego (and the ego from
  it) until the merger pulls out in front of the truck. The ego is the faster: it comes up
  from behind and the merger cuts in ahead of it. A parked vehicle cannot do this: in a
  lane between the two it would block it.

Per encounter (seed, index) the script draws the ego's and the other vehicle's speeds, the
ego's nominal arrival at the conflict point (`t_conflict`: where the lanes cross, or where
the merger's centre enters the ego's lane) and the other's offset to it: both placed so
that, held at their initial speeds, the ego reaches the conflict point at `t_conflict` and
the other `offset` seconds later. A script depends on (seed, index) only, never on a mode,
so every mode drives the identical encounter. It also gives, from the same constant-speed
motion and the pipeline's own visibility test (`call_perception.visibility.visible`, range
and line of sight), when the ego's own sensors would first see the other vehicle with the
truck (`visible_s`) and without it (`visible_free_s`): script facts, the same for every
mode. The record's keys name the other vehicle `crosser` in both layouts.
"""
from dataclasses import dataclass, field
import math
from typing import Any, Callable, Dict, List, Optional, Tuple

from call_perception.perception_stage import Box
from call_perception.visibility import visible
import numpy as np

EGO, CROSSER = 'hero0', 'hero1'
SENSOR_RANGE = 32.0            # [m] call_learning train.yaml `sensor_range` (checked in tests)
VEHICLE = (4.8, 2.0)           # [m] the CALL vehicles' box (call_sim vehicle.yaml)
DT = 0.1                       # [s] the simulator step
TRUCK_SIZE = {'length': 12.0, 'width': 2.6}   # [m] as long as the scenarios' trucks

# -- crossing -----------------------------------------------------------------------------
#: [m] where the ego's (x = 1.75) and the crosser's (y = 1.75) lane centres cross
CONFLICT_POINT = (1.75, 1.75)
#: the crossroad's approach edges are 189 m long and end 11 m from the centre: a vehicle
#: centre `pos` m along `south_in` is at y = pos - 200, along `east_in` at x = 200 - pos
EDGE_START = 200.0
SPEEDS = (6.0, 9.0)            # [m/s] uniform, ego and crosser drawn apart
#: [s] ego's nominal arrival at the conflict point, uniform: late enough that the first
#: deceleration's 5 s look-back begins after the stack's first seconds of driving
EGO_ARRIVAL = (8.0, 9.0)
OFFSET = (-1.5, 1.5)           # [s] crosser's arrival minus the ego's, uniform
#: the parked truck: on the ego's right lane, front at the stop line (SUMO pos, metres
#: along `south_in`)
TRUCK = {'edge': 'south_in', 'lane': 0, 'pos': 188.5, **TRUCK_SIZE}

# -- merge --------------------------------------------------------------------------------
#: `accel_lane` runs along x from ACCEL_X (its position 0) with its lanes' centres at y
#: MERGE_LANES (0: the ramp's acceleration lane, 1 and 2: the main road)
ACCEL_X = 249.17
MERGE_LANES = (-8.75, -5.25, -1.75)
MERGE_CHANGE = 70.0            # [m] along accel_lane where the merger's route blends 0 -> 2
MERGE_CHANGE_LENGTH = 40.0     # [m] the blend (the merge scenario's `lane_change_length`)
MERGE_EGO_SPEEDS = (8.0, 10.0)     # [m/s] uniform: the ego comes up from behind ...
MERGE_SPEEDS = (5.0, 7.0)          # [m/s] ... on the merger and its truck
MERGE_OFFSET = (-1.5, 0.0)     # [s] the merger enters the ego's lane before it or with it
TRUCK_GAP = 3.0                # [m] from the merger's rear back to the truck's front


@dataclass(frozen=True)
class Encounter:
    """One scripted encounter: where everything starts, and the script's own timings."""

    seed: int
    index: int
    ego_speed: float            # [m/s]
    crosser_speed: float        # [m/s] the other CALL vehicle's (crosser or merger)
    t_conflict: float           # [s] the ego's nominal arrival at the conflict point
    offset: float               # [s] the other's nominal arrival minus the ego's
    occluder: bool = True
    visible_s: float = math.nan       # [s] first nominal step the ego sees the other
    visible_free_s: float = math.nan  # [s] ... with the truck removed
    hidden_s: float = field(default=math.nan)   # [s] visible_s - visible_free_s
    layout: str = 'crossing'          # a key of LAYOUTS

    @property
    def env_seed(self) -> int:
        """Return the seed of the simulator's reset (SUMO and the env's own draws)."""
        return 1000 * self.seed + self.index

    def starts(self) -> Dict[str, Dict[str, Any]]:
        """Return `MultiVehicleEnv.reset`'s options['starts'] for the two CALL vehicles."""
        return LAYOUTS[self.layout].starts(self)

    def options(self) -> Dict[str, Any]:
        """Return the full `MultiVehicleEnv.reset` options: starts and the truck."""
        return dict(LAYOUTS[self.layout].truck(self) if self.occluder else {},
                    starts=self.starts())

    def record(self) -> Dict[str, Any]:
        """Return the script's figures, for the per-encounter records."""
        return {'seed': self.seed, 'encounter': self.index,
                'ego_speed': round(self.ego_speed, 3),
                'crosser_speed': round(self.crosser_speed, 3),
                't_conflict_s': round(self.t_conflict, 3), 'offset_s': round(self.offset, 3),
                'visible_s': _finite(self.visible_s),
                'visible_free_s': _finite(self.visible_free_s),
                'hidden_s': _finite(self.hidden_s)}


def _finite(value: float) -> Optional[float]:
    return round(value, 2) if math.isfinite(value) else None


@dataclass(frozen=True)
class Layout:
    """
    One scripted situation: its draws' ranges and where things are.

    `starts(encounter)`: the reset's starts; `truck(encounter)`: the reset options that
    place the occluder; `boxes(encounter, t)`: ego, other vehicle and truck at time t on
    the nominal motion (both CALL vehicles held at their initial speeds).
    """

    ego_speeds: Tuple[float, float]
    other_speeds: Tuple[float, float]
    arrival: Tuple[float, float]
    offsets: Tuple[float, float]
    starts: Callable[[Encounter], Dict[str, Dict[str, Any]]]
    truck: Callable[[Encounter], Dict[str, Any]]
    boxes: Callable[[Encounter, float], Tuple[Box, Box, Box]]


def truck_box() -> Box:
    """Return the parked truck's box (centre half a length behind its front, heading north)."""
    centre_y = TRUCK['pos'] - EDGE_START - 0.5 * TRUCK['length']
    return Box(5.25, centre_y, 0.5 * math.pi, TRUCK['length'], TRUCK['width'])


def _crossing_starts(encounter: Encounter) -> Dict[str, Dict[str, Any]]:
    ego_d = encounter.ego_speed * encounter.t_conflict
    crosser_d = encounter.crosser_speed * (encounter.t_conflict + encounter.offset)
    return {EGO: {'edge': 'south_in', 'lane': 1, 'next': 'north_out',
                  'pos': EDGE_START + CONFLICT_POINT[1] - ego_d, 'speed': encounter.ego_speed},
            CROSSER: {'edge': 'east_in', 'lane': 1, 'next': 'west_out',
                      'pos': EDGE_START - CONFLICT_POINT[0] - crosser_d,
                      'speed': encounter.crosser_speed}}


def _crossing_boxes(encounter: Encounter, t: float) -> Tuple[Box, Box, Box]:
    cx, cy = CONFLICT_POINT
    ego_y = cy - encounter.ego_speed * (encounter.t_conflict - t)
    crosser_x = cx + encounter.crosser_speed * (encounter.t_conflict + encounter.offset - t)
    return (Box(cx, ego_y, 0.5 * math.pi, *VEHICLE), Box(crosser_x, cy, math.pi, *VEHICLE),
            truck_box())


def _merge_path() -> Tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """
    Return the merger's path along accel_lane: x, y, arc length, conflict arc length.

    The route's blend of call_sim (a smoothstep from lane 0 to lane 2 over
    MERGE_CHANGE_LENGTH from MERGE_CHANGE); arc lengths from ACCEL_X; the conflict point is
    where the merger's centre crosses into the ego's lane.
    """
    pos = np.arange(0.0, 190.0, 0.05)
    a = np.clip((pos - MERGE_CHANGE) / MERGE_CHANGE_LENGTH, 0.0, 1.0)
    y = MERGE_LANES[0] + (MERGE_LANES[2] - MERGE_LANES[0]) * a * a * (3.0 - 2.0 * a)
    x = ACCEL_X + pos
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
    boundary = 0.5 * (MERGE_LANES[1] + MERGE_LANES[2])
    k = int(np.argmax(y >= boundary))
    conflict = float(np.interp(boundary, y[k - 1:k + 1], arc[k - 1:k + 1]))
    return x, y, arc, conflict


MERGE_PATH = _merge_path()
#: [m] x of the conflict point: where the merger's centre enters the ego's lane
MERGE_CONFLICT_X = float(np.interp(MERGE_PATH[3], MERGE_PATH[2], MERGE_PATH[0]))


def _merger_arc0(encounter: Encounter) -> float:
    """Arc length of the merger's start along its path (held at speed it is there at 0)."""
    t_merger = encounter.t_conflict + encounter.offset
    return MERGE_PATH[3] - encounter.crosser_speed * t_merger


def _merge_starts(encounter: Encounter) -> Dict[str, Dict[str, Any]]:
    ego_x = MERGE_CONFLICT_X - encounter.ego_speed * encounter.t_conflict
    # the merger starts before its blend, where arc length and position are one
    return {EGO: {'edge': 'accel_lane', 'lane': 2, 'pos': ego_x - ACCEL_X,
                  'speed': encounter.ego_speed},
            CROSSER: {'edge': 'accel_lane', 'lane': 0, 'pos': _merger_arc0(encounter),
                      'speed': encounter.crosser_speed,
                      'lane_changes': {'accel_lane': [(MERGE_CHANGE, 2)]}}}


def _merge_truck_front(encounter: Encounter, t: float) -> float:
    """Position [m along accel_lane] of the held truck's front at time t."""
    merger_rear = _merger_arc0(encounter) - 0.5 * VEHICLE[0]
    return merger_rear - TRUCK_GAP + encounter.crosser_speed * t


def _merge_truck(encounter: Encounter) -> Dict[str, Any]:
    return {'held': [{'route': ['accel_lane', 'main_out'], 'lane': 1,
                      'pos': _merge_truck_front(encounter, 0.0),
                      'speed': encounter.crosser_speed, **TRUCK_SIZE}]}


def _merge_boxes(encounter: Encounter, t: float) -> Tuple[Box, Box, Box]:
    x, y, arc, conflict = MERGE_PATH
    ego_x = MERGE_CONFLICT_X - encounter.ego_speed * (encounter.t_conflict - t)
    s = conflict - encounter.crosser_speed * (encounter.t_conflict + encounter.offset - t)
    k = min(max(int(np.searchsorted(arc, s)), 1), len(arc) - 1)
    yaw = math.atan2(y[k] - y[k - 1], x[k] - x[k - 1])
    truck_x = ACCEL_X + _merge_truck_front(encounter, t) - 0.5 * TRUCK_SIZE['length']
    return (Box(ego_x, MERGE_LANES[2], 0.0, *VEHICLE),
            Box(float(np.interp(s, arc, x)), float(np.interp(s, arc, y)), yaw, *VEHICLE),
            Box(truck_x, MERGE_LANES[1], 0.0, TRUCK_SIZE['length'], TRUCK_SIZE['width']))


LAYOUTS = {
    'crossing': Layout(SPEEDS, SPEEDS, EGO_ARRIVAL, OFFSET, _crossing_starts,
                       lambda encounter: {'parked': [dict(TRUCK)]}, _crossing_boxes),
    'merge': Layout(MERGE_EGO_SPEEDS, MERGE_SPEEDS, EGO_ARRIVAL, MERGE_OFFSET, _merge_starts,
                    _merge_truck, _merge_boxes),
}


def nominal_boxes(encounter: Encounter, t: float) -> Tuple[Box, Box]:
    """Ego's and the other vehicle's boxes at time t, both held at their initial speeds."""
    return LAYOUTS[encounter.layout].boxes(encounter, t)[:2]


def first_visible(encounter: Encounter, occluder: bool,
                  sensor_range: float = SENSOR_RANGE) -> float:
    """First step [s] at which the ego's own sensors see the other on the nominal script."""
    boxes = LAYOUTS[encounter.layout].boxes
    steps = int(round((encounter.t_conflict + abs(encounter.offset) + 2.0) / DT))
    for k in range(steps + 1):
        ego, other, truck = boxes(encounter, k * DT)
        others: List[Any] = [other] + ([truck] if occluder else [])
        if visible(ego, others, sensor_range)[0]:
            return k * DT
    return math.inf


def draw(seed: int, index: int, occluder: bool = True,
         sensor_range: float = SENSOR_RANGE, layout: str = 'crossing') -> Encounter:
    """
    Encounter `index` of `seed`: its own generator, so it is the same whatever ran before.

    The draws come from `numpy.random.default_rng([seed, index])` in a fixed order (ego's
    speed, the other's, the ego's arrival, the offset), each from the layout's range.
    """
    spec = LAYOUTS[layout]
    rng = np.random.default_rng([int(seed), int(index)])
    ego_speed = float(rng.uniform(*spec.ego_speeds))
    other_speed = float(rng.uniform(*spec.other_speeds))
    t_conflict = float(rng.uniform(*spec.arrival))
    offset = float(rng.uniform(*spec.offsets))
    base = Encounter(int(seed), int(index), ego_speed, other_speed, t_conflict, offset,
                     occluder, layout=layout)
    seen = first_visible(base, occluder, sensor_range)
    free = first_visible(base, False, sensor_range)
    return Encounter(int(seed), int(index), ego_speed, other_speed, t_conflict, offset,
                     occluder, seen, free, seen - free, layout)

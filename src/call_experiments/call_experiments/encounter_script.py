"""
Scripted occluded crossings on the crossroad map: one ego, one crosser, one parked truck.

The situation of paper Fig. 1 (a vehicle hidden behind a large one, known to the ego only
through what another vehicle shares), reduced to three vehicles so that every encounter is
about the occluded crossing and nothing else (no background traffic: with it, most
conflicts at the junction are with queued or background vehicles that the crossing's
sharing cannot tell of):

- the ego (`hero0`, CALL) approaches the junction from the south on the inner lane
  (`south_in` lane 1, heading north) and goes straight (`north_out`);
- the crosser (`hero1`, CALL, driven by the same stack) comes from the ego's right
  (`east_in` lane 1, heading west) and goes straight (`west_out`); their lanes cross at
  `CONFLICT_POINT`;
- a stationary 12 m truck stands on the ego's right lane (`south_in` lane 0), its front at
  the stop line, and hides the east arm from the ego (and the ego from the crosser) until
  both are close to the junction.

Per encounter (seed, index) the script draws the ego's and the crosser's speeds
(`SPEEDS`), the ego's nominal arrival at the conflict point (`EGO_ARRIVAL`) and the
crosser's offset to it (`OFFSET`): both placed so that, held at their initial speeds, the
ego reaches the conflict point at `t_conflict` and the crosser `offset` seconds later. A
script depends on (seed, index) only, never on a mode, so every mode drives the identical
encounter. It also gives, from the same constant-speed motion and the pipeline's own
visibility test (`call_perception.visibility.visible`, range and line of sight), when the
ego's own sensors would first see the crosser with the truck (`visible_s`) and without it
(`visible_free_s`): script facts, the same for every mode.
"""
from dataclasses import dataclass, field
import math
from typing import Any, Dict, List, Optional, Tuple

from call_perception.perception_stage import Box
from call_perception.visibility import visible
import numpy as np

EGO, CROSSER = 'hero0', 'hero1'
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
#: along `south_in`), as long as the scenarios' trucks
TRUCK = {'edge': 'south_in', 'lane': 0, 'pos': 188.5, 'length': 12.0, 'width': 2.6}
SENSOR_RANGE = 32.0            # [m] call_learning train.yaml `sensor_range` (checked in tests)
VEHICLE = (4.8, 2.0)           # [m] the CALL vehicles' box (call_sim vehicle.yaml)
DT = 0.1                       # [s] the simulator step


@dataclass(frozen=True)
class Encounter:
    """One scripted encounter: where everything starts, and the script's own timings."""

    seed: int
    index: int
    ego_speed: float            # [m/s]
    crosser_speed: float        # [m/s]
    t_conflict: float           # [s] the ego's nominal arrival at the conflict point
    offset: float               # [s] crosser's nominal arrival minus the ego's
    occluder: bool = True
    visible_s: float = math.nan       # [s] first nominal step the ego sees the crosser
    visible_free_s: float = math.nan  # [s] ... with the truck removed
    hidden_s: float = field(default=math.nan)   # [s] visible_s - visible_free_s

    @property
    def env_seed(self) -> int:
        """Return the seed of the simulator's reset (SUMO and the env's own draws)."""
        return 1000 * self.seed + self.index

    def starts(self) -> Dict[str, Dict[str, Any]]:
        """Return `MultiVehicleEnv.reset`'s options['starts'] for the two CALL vehicles."""
        ego_d = self.ego_speed * self.t_conflict
        crosser_d = self.crosser_speed * (self.t_conflict + self.offset)
        return {EGO: {'edge': 'south_in', 'lane': 1, 'next': 'north_out',
                      'pos': EDGE_START + CONFLICT_POINT[1] - ego_d, 'speed': self.ego_speed},
                CROSSER: {'edge': 'east_in', 'lane': 1, 'next': 'west_out',
                          'pos': EDGE_START - CONFLICT_POINT[0] - crosser_d,
                          'speed': self.crosser_speed}}

    def options(self) -> Dict[str, Any]:
        """Return the full `MultiVehicleEnv.reset` options: starts and the parked truck."""
        return {'starts': self.starts(), 'parked': [dict(TRUCK)] if self.occluder else []}

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


def truck_box() -> Box:
    """Return the parked truck's box (centre half a length behind its front, heading north)."""
    centre_y = TRUCK['pos'] - EDGE_START - 0.5 * TRUCK['length']
    return Box(5.25, centre_y, 0.5 * math.pi, TRUCK['length'], TRUCK['width'])


def nominal_boxes(encounter: Encounter, t: float) -> Tuple[Box, Box]:
    """Ego's and crosser's boxes at time t, both held at their initial speeds."""
    cx, cy = CONFLICT_POINT
    ego_y = cy - encounter.ego_speed * (encounter.t_conflict - t)
    crosser_x = cx + encounter.crosser_speed * (encounter.t_conflict + encounter.offset - t)
    return (Box(cx, ego_y, 0.5 * math.pi, *VEHICLE), Box(crosser_x, cy, math.pi, *VEHICLE))


def first_visible(encounter: Encounter, occluder: bool,
                  sensor_range: float = SENSOR_RANGE) -> float:
    """First step [s] at which the ego's own sensors see the crosser on the nominal script."""
    steps = int(round((encounter.t_conflict + abs(encounter.offset) + 2.0) / DT))
    for k in range(steps + 1):
        ego, crosser = nominal_boxes(encounter, k * DT)
        others: List[Any] = [crosser] + ([truck_box()] if occluder else [])
        if visible(ego, others, sensor_range)[0]:
            return k * DT
    return math.inf


def draw(seed: int, index: int, occluder: bool = True,
         sensor_range: float = SENSOR_RANGE) -> Encounter:
    """
    Encounter `index` of `seed`: its own generator, so it is the same whatever ran before.

    The draws come from `numpy.random.default_rng([seed, index])` in a fixed order.
    """
    rng = np.random.default_rng([int(seed), int(index)])
    ego_speed = float(rng.uniform(*SPEEDS))
    crosser_speed = float(rng.uniform(*SPEEDS))
    t_conflict = float(rng.uniform(*EGO_ARRIVAL))
    offset = float(rng.uniform(*OFFSET))
    base = Encounter(int(seed), int(index), ego_speed, crosser_speed, t_conflict, offset,
                     occluder)
    seen = first_visible(base, occluder, sensor_range)
    free = first_visible(base, False, sensor_range)
    return Encounter(int(seed), int(index), ego_speed, crosser_speed, t_conflict, offset,
                     occluder, seen, free, seen - free)

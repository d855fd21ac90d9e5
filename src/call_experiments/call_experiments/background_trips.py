"""
The simulator's own drivers scored by the CALL vehicles' trip rule: what the traffic allows.

On a map with a junction most CALL trips that fail time out in the queue before it. Whether
the stack or the traffic is the cause shows in the same run's background drivers (SUMO's
car-following and junction model, which see every vehicle on their lanes): each of them is
given a trip that begins where the CALL vehicles' trips begin, on its way in, at the median
distance from the junction's centre at which the run's CALL trips began; it is reached once
the vehicle has driven the median length the CALL trips had to drive to arrive, and times out
at the trip time limit, as a CALL trip does (`driving_eval --trip-timeout`). A background
vehicle that leaves the simulation during its trip (SUMO removes it at the map's edge, or
after a collision) ends it uncounted; it has no off-road or collision outcome of its own.

It reads the simulator's states of the vehicles (what every mode is scored against), never
what a CALL vehicle perceived, and changes nothing in the run.

The approaches differ: at a priority junction the minor road waits for gaps in the major
road's traffic, and the CALL trips and the background's need not begin on each road in the
same shares. So each trip also keeps the road it began on (its approach), and
`approach_gap` compares the two road by road: the CALL vehicles' success less the
background's on the same approach, weighted by the CALL trips that ended there.
"""
from dataclasses import dataclass
import math
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple

from call_planner.junction_gate import JunctionMap
import numpy as np


@dataclass
class _Trip:
    start: float            # [s] simulation time it began
    approach: str           # the road it began on
    travelled: float = 0.0  # [m] odometer since then


class BackgroundTrips:
    """Opens, drives and ends the background vehicles' trips, step by step."""

    def __init__(self, centre: tuple[float, float], timeout: float,
                 approach: Optional[Callable[[float, float], str]] = None):
        """
        Score trips within `timeout` [s] around the junction at `centre` (map frame).

        `approach(x, y)` names the road a trip begins on (None: one approach for all).
        """
        if not timeout > 0.0:
            raise ValueError(f'the trip time limit must be > 0, got {timeout}')
        self.centre = (float(centre[0]), float(centre[1]))
        self.timeout = float(timeout)
        self.approach = approach or (lambda x, y: '')
        self.by_approach: Dict[str, Tuple[int, int]] = {}   # road -> (reached, ended)
        self._starts: list[float] = []          # CALL trips' start distances to the centre
        self._lengths: list[float] = []         # ... and the distances they had to drive
        self._last: Dict[int, float] = {}       # actor id -> its last distance to the centre
        self._open: Dict[int, _Trip] = {}
        self.left = 0           # trips whose vehicle left the simulation before an outcome

    def _distance(self, x: float, y: float) -> float:
        return math.hypot(x - self.centre[0], y - self.centre[1])

    def call_trip_started(self, x: float, y: float, length: float) -> None:
        """Note a CALL trip's start and the distance [m] to drive to arrive: the same for all."""
        self._starts.append(self._distance(x, y))
        self._lengths.append(float(length))

    @property
    def start_distance(self) -> float:
        """[m] distance from the centre at which a background trip begins (nan: none yet)."""
        return float(np.median(self._starts)) if self._starts else math.nan

    @property
    def length(self) -> float:
        """[m] distance a background vehicle drives to arrive (nan: no CALL trip yet)."""
        return float(np.median(self._lengths)) if self._lengths else math.nan

    def observe(self, now: float, dt: float, vehicles: Iterable[Any]) -> None:
        """
        Take one step's background vehicle states (actor_id, x, y, speed) at time `now`.

        A trip opens when a vehicle crosses the start distance on its way in between two
        steps; each step adds speed x `dt` to its odometer.
        """
        radius, length = self.start_distance, self.length
        present = set()
        for v in vehicles:
            key = int(v.actor_id)
            present.add(key)
            distance = self._distance(float(v.x), float(v.y))
            last, self._last[key] = self._last.get(key), distance
            trip = self._open.get(key)
            if trip is None:
                if last is not None and last > radius >= distance:
                    self._open[key] = _Trip(now, self.approach(float(v.x), float(v.y)))
                continue
            trip.travelled += max(float(v.speed), 0.0) * dt
            reached = trip.travelled >= length
            if not (reached or now - trip.start >= self.timeout - 1e-9):
                continue
            done, ended = self.by_approach.get(trip.approach, (0, 0))
            self.by_approach[trip.approach] = (done + int(reached), ended + 1)
            del self._open[key]
        for key in set(self._last) - present:
            self._last.pop(key)
            if self._open.pop(key, None) is not None:
                self.left += 1

    @property
    def reached(self) -> int:
        """Trips reached, on every approach."""
        return sum(done for done, _ in self.by_approach.values())

    @property
    def timeouts(self) -> int:
        """Trips timed out, on every approach."""
        return sum(ended - done for done, ended in self.by_approach.values())

    def summary(self) -> Dict[str, float]:
        """Reached and timed-out trips, and their success rate (nan without an ended trip)."""
        ended = self.reached + self.timeouts
        return {'background_trips_ended': float(ended),
                'background_reached': float(self.reached),
                'background_success_rate': self.reached / ended if ended else math.nan,
                'background_trip_start_m': self.start_distance}


def approach_gap(call_trips: Iterable[Tuple[str, str]],
                 background: Mapping[str, Tuple[int, int]]) -> float:
    """
    Return CALL success less the background's, road by road, weighted by CALL trips ended.

    `call_trips`: (approach, outcome) of each CALL trip; `background`: approach -> (reached,
    ended) of the background's trips. A trip cut short by the run's end has not ended (as in
    the success rate); approaches where either side ended no trip are left out; nan when none
    is left.
    """
    call: Dict[str, Tuple[int, int]] = {}
    for approach, outcome in call_trips:
        if outcome != 'cut_short':
            done, ended = call.get(approach, (0, 0))
            call[approach] = (done + int(outcome == 'reached'), ended + 1)
    gaps = [(ended, done / ended - background[a][0] / background[a][1])
            for a, (done, ended) in call.items() if background.get(a, (0, 0))[1] > 0]
    weight = sum(n for n, _ in gaps)
    return sum(n * gap for n, gap in gaps) / weight if weight else math.nan


def junction_centre(opendrive: Optional[str]) -> Optional[tuple[float, float]]:
    """Return the centre of the map's junction lanes (None: no map, or no junction)."""
    return JunctionMap.from_opendrive(opendrive).centre() if opendrive else None

"""
Conflicts of a run and how each vehicle reacted to them (ROS-free; `call_demo --compare`).

Conventions (per CALL vehicle, one value per simulation step of `dt` seconds):
- TTC is the simulator's time-to-collision to the nearest conflicting vehicle
  (`call_sim.measures.time_to_collision`; inf when nothing closes in).
- A *conflict* is a maximal run of consecutive steps whose TTC is below `ttc_threshold`
  seconds. A run interrupted by one missing step (no report) stays one conflict.
- *Min TTC per conflict*: the smallest TTC inside the conflict; a run reports the mean of
  these minima over all its conflicts and the smallest one.
- *First-deceleration time*: seconds from the conflict's first step to the first step, from
  one step before the conflict on, at which the vehicle commanded a negative acceleration
  (its planner's action). 0 when it was already braking as the conflict began, so a vehicle
  that foresaw the conflict (e.g. through shared latents) scores 0. A conflict the vehicle
  never braked in counts as `not_decelerated` and has no time.
"""
from dataclasses import dataclass, field
import math
from typing import Optional


@dataclass
class Conflict:
    """One conflict of one vehicle."""

    role: str
    start: float                         # sim time of its first step [s]
    end: float                           # sim time of its last step [s]
    min_ttc: float                       # [s]
    first_deceleration: Optional[float]  # [s] after start; None: never braked in it


@dataclass
class ConflictTracker:
    """Feeds on per-step TTC and commanded accelerations; yields conflicts."""

    ttc_threshold: float = 3.0           # [s]
    dt: float = 0.1                      # [s] simulation step
    conflicts: list = field(default_factory=list)
    _open: dict = field(default_factory=dict)
    _closed: list = field(default_factory=list)
    _accel: dict = field(default_factory=dict)   # (role, step index) -> commanded accel

    def _index(self, stamp: float) -> int:
        return int(round(stamp / self.dt))

    def add_action(self, role: str, stamp: float, accel: float) -> None:
        """Record the acceleration `role` commanded for the step at `stamp`."""
        self._accel[(role, self._index(stamp))] = float(accel)

    def add_ttc(self, role: str, stamp: float, ttc: float) -> None:
        """Feed the simulator's TTC of `role` at `stamp` (steps in time order per role)."""
        index = self._index(stamp)
        current = self._open.get(role)
        if current is not None and index - current['last'] > 2:
            self._close(role)
            current = None
        if math.isfinite(ttc) and ttc < self.ttc_threshold:
            if current is None:
                current = self._open[role] = {'first': index, 'last': index, 'min': ttc}
            current['last'] = index
            current['min'] = min(current['min'], ttc)
        elif current is not None:
            self._close(role)

    def _braked_at(self, role: str, first: int, last: int) -> Optional[int]:
        for index in range(first - 1, last + 1):
            if self._accel.get((role, index), 0.0) < 0.0:
                return max(index, first)
        return None

    def _close(self, role: str) -> None:
        self._closed.append((role, self._open.pop(role)))

    def finish(self) -> list:
        """
        Close the conflicts still open at the end of the run; return all conflicts.

        Reactions are looked up only now: a step's action can arrive after its TTC report.
        """
        for role in list(self._open):
            self._close(role)
        for role, run in self._closed:
            braked = self._braked_at(role, run['first'], run['last'])
            self.conflicts.append(Conflict(
                role, run['first'] * self.dt, run['last'] * self.dt, run['min'],
                None if braked is None else (braked - run['first']) * self.dt))
        self._closed = []
        return self.conflicts

    def summary(self) -> dict:
        """Count and average the conflicts of `finish()` (None when there were none)."""
        minima = [c.min_ttc for c in self.conflicts]
        reactions = [c.first_deceleration for c in self.conflicts
                     if c.first_deceleration is not None]
        return {
            'conflicts': len(self.conflicts),
            'conflict_ttc_threshold_s': self.ttc_threshold,
            'mean_min_ttc_s': sum(minima) / len(minima) if minima else None,
            'lowest_min_ttc_s': min(minima) if minima else None,
            'mean_first_deceleration_s': sum(reactions) / len(reactions) if reactions else None,
            'not_decelerated': len(self.conflicts) - len(reactions),
        }

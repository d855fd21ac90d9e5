"""
Conflicts of a demo run and how each vehicle reacted to them (ROS-free; `call_demo`).

The definitions are `call_sim.driving_metrics`'s, the ones the experiments report
(`call_experiments.driving_eval`), so the demo's figures mean the same thing:
- a conflict is a maximal run of a vehicle's steps whose simulator TTC
  (`call_sim.measures.time_to_collision`) is below `ttc_threshold` or that are in collision;
  runs less than `merge_gap` steps apart are one conflict;
- its TTC is the minimum within it (0 when it ended in a collision);
- its first-deceleration time is the first step from `decel_lookback` seconds before its
  start up to its end at which the vehicle commanded an acceleration of at most
  -`decel_threshold` (its planner's or the safety monitor's), relative to the start:
  negative = it braked before the TTC fell below the threshold (anticipation, e.g. from
  shared latents); a conflict the vehicle never braked in counts as `not_decelerated`.
The demo knows the commanded acceleration (the planner's `Action`), not the realised one.
"""
from dataclasses import dataclass, field
import math
from typing import Optional

from call_sim import driving_metrics


@dataclass
class Conflict:
    """One conflict of one vehicle."""

    role: str
    start: float                         # sim time of its first step [s]
    end: float                           # sim time of its last step [s]
    min_ttc: float                       # [s]; 0 when it ended in a collision
    first_deceleration: Optional[float]  # [s] relative to start; None: never braked


@dataclass
class ConflictTracker:
    """Feeds on per-step TTC and commanded accelerations; yields conflicts."""

    ttc_threshold: float = 3.0           # [s]
    dt: float = 0.1                      # [s] simulation step
    conflicts: list = field(default_factory=list)
    _steps: dict = field(default_factory=dict)   # (role, step index) -> (ttc, collision)
    _accel: dict = field(default_factory=dict)   # (role, step index) -> commanded accel

    def _index(self, stamp: float) -> int:
        return int(round(stamp / self.dt))

    def add_action(self, role: str, stamp: float, accel: float) -> None:
        """Record the acceleration `role` commanded for the step at `stamp`."""
        self._accel[(role, self._index(stamp))] = float(accel)

    def add_ttc(self, role: str, stamp: float, ttc: float, collision: bool = False) -> None:
        """Feed the simulator's TTC (and collision flag) of `role` at `stamp`."""
        self._steps[(role, self._index(stamp))] = (float(ttc), bool(collision))

    def finish(self) -> list:
        """
        Find every conflict of the run (`call_sim.driving_metrics.conflicts`).

        Reactions are looked up only now: a step's action can arrive after its TTC report.
        """
        conventions = driving_metrics.MetricConventions(conflict_ttc=self.ttc_threshold)
        records = [driving_metrics.VehicleStep(
            role, index * self.dt, math.inf if math.isnan(ttc) else ttc,
            collision, self._accel.get((role, index), 0.0))
            for (role, index), (ttc, collision) in sorted(self._steps.items())]
        # steps before a vehicle's first TTC report still show its braking
        reported = set(self._steps)
        records += [driving_metrics.VehicleStep(role, index * self.dt, math.inf, False, accel)
                    for (role, index), accel in self._accel.items()
                    if (role, index) not in reported]
        self.conflicts = [
            Conflict(c.trip, c.start, c.end, c.min_ttc,
                     None if math.isnan(c.first_deceleration) else c.first_deceleration)
            for c in driving_metrics.conflicts(records, conventions)]
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

"""
The demo's live line and end-of-run summary, from per-step vehicle reports (ROS-free).

Definitions (per CALL vehicle and simulation step, as the paper's Table 6):
- collision rate: % of vehicle-steps in collision;
- conflict TTC, first deceleration, route completion: `call_sim.driving_metrics` (TTC is the
  minimum over each conflict, not a mean over free-flow steps; conventions stated there);
- mean TTC (kept in summary.json for old readers, not printed): mean of the finite TTC values
  over vehicle-steps, which measures traffic density more than safety;
- success rate: routes whose destination was reached / routes driven (reached, ended by a
  collision or leaving the road, or still unfinished when the run ended);
- bytes/step: serialized LatentMessage bytes accepted by all egos in one step (CommStats);
- safety-monitor overrides: the planners' counters (`/diagnostics`), the share of commanded
  steps whose acceleration the TTC monitor replaced, per level.
"""
from dataclasses import dataclass, field
import math
from typing import Optional

from call_sim import driving_metrics
from call_sim.driving_metrics import VehicleStep


def _flag(value) -> bool:
    return str(value).strip().lower() in ('1', 'true', 'yes')


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


@dataclass
class StepReport:
    """What the simulator said about one vehicle at one step."""

    collision: bool = False
    ttc: float = math.inf
    reached: bool = False
    off_road: bool = False
    accel: float = math.nan
    progress: float = math.nan
    route_length: float = math.nan

    @classmethod
    def from_values(cls, values: dict) -> 'StepReport':
        """From diagnostic key/values (strings) of the simulator."""
        return cls(collision=_flag(values.get('collision', False)),
                   ttc=_number(values.get('ttc', math.inf)),
                   reached=_flag(values.get('reached', False)),
                   off_road=_flag(values.get('off_road', False)),
                   accel=_number(values.get('accel', math.nan)),
                   progress=_number(values.get('progress', math.nan)),
                   route_length=_number(values.get('route_length', math.nan)))


@dataclass
class RunMetrics:
    """Accumulates reports per step; gives the live line and the summary."""

    roles: list
    vehicle_steps: int = 0
    collision_steps: int = 0
    ttc_values: list = field(default_factory=list)
    reached: int = 0
    failed: int = 0
    steps: int = 0
    bytes_by_stamp: dict = field(default_factory=dict)
    records: list = field(default_factory=list)       # driving_metrics.VehicleStep
    _finished: dict = field(default_factory=dict)
    _route: dict = field(default_factory=dict)        # role -> number of its current route
    _fraction: dict = field(default_factory=dict)     # (role, route) -> progress fraction
    _planner: dict = field(default_factory=dict)      # role -> latest planner counters

    def add_planner_counts(self, role: str, values: dict) -> None:
        """Keep a planner's cumulative counters (planned, overrides_comfortable, ...)."""
        self._planner[role] = {key: _number(values.get(key, 0)) for key in
                               ('planned', 'overrides_comfortable', 'overrides_emergency')}

    def add_comm(self, stamp: float, role: str, bytes_received: int) -> None:
        """One CommStats: bytes `role` accepted at simulation time `stamp`."""
        self.bytes_by_stamp.setdefault(round(stamp, 3), {})[role] = bytes_received

    def bytes_at(self, stamp: float) -> Optional[int]:
        """Bytes all egos accepted at `stamp` (None before any CommStats of that step)."""
        step = self.bytes_by_stamp.get(round(stamp, 3))
        return None if step is None else sum(step.values())

    def add_step(self, reports: dict, stamp: float = math.nan) -> None:
        """One simulation step at sim time `stamp`: the simulator's report per vehicle role."""
        self.steps += 1
        for role, report in reports.items():
            route = self._route.setdefault(role, 0)
            if not math.isnan(stamp):
                self.records.append(VehicleStep((role, route), stamp, report.ttc,
                                                report.collision, report.accel))
            if report.route_length > 0:
                self._fraction[(role, route)] = report.progress / report.route_length
            self.vehicle_steps += 1
            self.collision_steps += int(report.collision)
            if math.isfinite(report.ttc):
                self.ttc_values.append(report.ttc)
            if report.reached and not self._finished.get(role):
                self.reached += 1
                self._finished[role] = True
            elif (report.collision or report.off_road) and not self._finished.get(role):
                self.failed += 1
                self._finished[role] = True
            elif not (report.reached or report.collision or report.off_road):
                if self._finished.get(role):
                    self._route[role] = route + 1        # the next steps are a new route
                self._finished[role] = False             # driving a (new) route

    def summary(self) -> dict:
        """Success rate, mean TTC, collision rate, mean bytes/step (None when no data)."""
        unfinished = sum(1 for role in self.roles if not self._finished.get(role))
        routes = self.reached + self.failed + unfinished
        per_step = [sum(step.values()) for step in self.bytes_by_stamp.values()]
        # every route counts, an unfinished one with the progress it made (no cut-short trips:
        # the demo's routes end when the run ends)
        fractions = list(self._fraction.values())
        conflicts = driving_metrics.summarise(self.records, ['timeout'] * len(fractions),
                                              fractions) if self.records else {}
        return {
            'steps': self.steps,
            'vehicle_steps': self.vehicle_steps,
            'success_rate': self.reached / routes if routes else None,
            'routes': routes,
            'reached': self.reached,
            'mean_ttc_s': (sum(self.ttc_values) / len(self.ttc_values)
                           if self.ttc_values else None),
            'collision_rate': (self.collision_steps / self.vehicle_steps
                               if self.vehicle_steps else None),
            'mean_bytes_per_step': sum(per_step) / len(per_step) if per_step else None,
            'route_completion': _finite(conflicts.get('route_completion')),
            'conflicts': conflicts.get('conflicts'),
            'conflict_min_ttc_mean_s': _finite(conflicts.get('conflict_min_ttc_mean_s')),
            'conflict_min_ttc_p5_s': _finite(conflicts.get('conflict_min_ttc_p5_s')),
            'first_deceleration_mean_s': _finite(conflicts.get('first_deceleration_mean_s')),
            **self._override_shares(),
        }

    def _override_shares(self) -> dict:
        totals = {key: sum(c[key] for c in self._planner.values() if math.isfinite(c[key]))
                  for key in ('planned', 'overrides_comfortable', 'overrides_emergency')}
        steps = sum(totals.values())
        if not steps:
            return {'override_comfortable': None, 'override_emergency': None}
        return {'override_comfortable': totals['overrides_comfortable'] / steps,
                'override_emergency': totals['overrides_emergency'] / steps}


def _finite(value) -> Optional[float]:
    return value if value is not None and math.isfinite(value) else None


def format_summary(summary: dict) -> str:
    """Human-readable summary block."""
    def pct(value: Optional[float]) -> str:
        return 'n/a' if value is None else f'{100.0 * value:.1f} %'

    def seconds(value: Optional[float]) -> str:
        return 'n/a' if value is None else f'{value:.2f} s'

    bytes_step = summary['mean_bytes_per_step']
    return '\n'.join([
        f'steps: {summary["steps"]} ({summary["vehicle_steps"]} vehicle-steps)',
        f'success rate: {pct(summary["success_rate"])} '
        f'({summary["reached"]}/{summary["routes"]} routes)',
        f'route completion: {pct(summary.get("route_completion"))}',
        f'conflicts (TTC < 3 s or collision): {summary.get("conflicts", "n/a")}; min TTC per '
        f'conflict: mean {seconds(summary.get("conflict_min_ttc_mean_s"))}, 5th percentile '
        f'{seconds(summary.get("conflict_min_ttc_p5_s"))}; first deceleration relative to the '
        f'conflict: mean {seconds(summary.get("first_deceleration_mean_s"))}',
        f'safety-monitor overrides: {pct(summary.get("override_comfortable"))} comfortable, '
        f'{pct(summary.get("override_emergency"))} emergency of commanded steps',
        f'collision rate: {pct(summary["collision_rate"])} of vehicle-steps',
        f'mean bytes/step: {"n/a" if bytes_step is None else f"{bytes_step:.0f} B"} '
        '(all egos, accepted V2V latents)',
    ])

"""
The demo's live line and end-of-run summary, from per-step vehicle reports (ROS-free).

Definitions (per CALL vehicle and simulation step, as the paper's Table 6):
- collision rate: % of vehicle-steps in collision;
- mean TTC: mean of the finite time-to-collision values [s] over vehicle-steps;
- success rate: routes whose destination was reached / routes driven (reached, ended by a
  collision or leaving the road, or still unfinished when the run ended);
- bytes/step: serialized LatentMessage bytes accepted by all egos in one step (CommStats);
- conflicts, min TTC per conflict, first-deceleration time: `call_bringup.conflicts`
  (`call_sim.driving_metrics`'s definitions; negative first deceleration = braked before).
"""
from dataclasses import dataclass, field
import math
from typing import Optional


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

    @classmethod
    def from_values(cls, values: dict) -> 'StepReport':
        """From diagnostic key/values (strings) of the simulator."""
        return cls(collision=_flag(values.get('collision', False)),
                   ttc=_number(values.get('ttc', math.inf)),
                   reached=_flag(values.get('reached', False)),
                   off_road=_flag(values.get('off_road', False)))


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
    _finished: dict = field(default_factory=dict)

    def add_comm(self, stamp: float, role: str, bytes_received: int) -> None:
        """One CommStats: bytes `role` accepted at simulation time `stamp`."""
        self.bytes_by_stamp.setdefault(round(stamp, 3), {})[role] = bytes_received

    def bytes_at(self, stamp: float) -> Optional[int]:
        """Bytes all egos accepted at `stamp` (None before any CommStats of that step)."""
        step = self.bytes_by_stamp.get(round(stamp, 3))
        return None if step is None else sum(step.values())

    def steps_with_bytes(self) -> float:
        """Fraction of the run's steps in which some ego accepted V2V bytes."""
        sharing = sum(1 for step in self.bytes_by_stamp.values() if sum(step.values()) > 0)
        return min(sharing, self.steps) / self.steps if self.steps else 0.0

    def add_step(self, reports: dict) -> None:
        """One simulation step: the simulator's report per vehicle role."""
        self.steps += 1
        for role, report in reports.items():
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
                self._finished[role] = False             # driving a (new) route

    def summary(self) -> dict:
        """Success rate, mean TTC, collision rate, mean bytes/step (None when no data)."""
        unfinished = sum(1 for role in self.roles if not self._finished.get(role))
        routes = self.reached + self.failed + unfinished
        per_step = [sum(step.values()) for step in self.bytes_by_stamp.values()]
        return {
            'steps': self.steps,
            'vehicle_steps': self.vehicle_steps,
            'collision_steps': self.collision_steps,
            'success_rate': self.reached / routes if routes else None,
            'routes': routes,
            'reached': self.reached,
            'mean_ttc_s': (sum(self.ttc_values) / len(self.ttc_values)
                           if self.ttc_values else None),
            'collision_rate': (self.collision_steps / self.vehicle_steps
                               if self.vehicle_steps else None),
            'mean_bytes_per_step': sum(per_step) / len(per_step) if per_step else None,
        }


def _seconds(value: Optional[float]) -> str:
    return 'n/a' if value is None else f'{value:.2f} s'


def _percent(value: Optional[float]) -> str:
    return 'n/a' if value is None else f'{100.0 * value:.1f} %'


def _bytes(value: Optional[float]) -> str:
    return 'n/a' if value is None else f'{value:.0f} B'


def format_summary(summary: dict) -> str:
    """Human-readable summary block."""
    lines = [
        '=== CALL demo summary ===',
        f'steps: {summary["steps"]} ({summary["vehicle_steps"]} vehicle-steps)',
        f'success rate: {_percent(summary["success_rate"])} '
        f'({summary["reached"]}/{summary["routes"]} routes)',
        f'mean TTC: {_seconds(summary["mean_ttc_s"])}',
        f'collision rate: {_percent(summary["collision_rate"])} of vehicle-steps',
        f'mean bytes/step: {_bytes(summary["mean_bytes_per_step"])} '
        '(all egos, accepted V2V latents)',
    ]
    if 'conflicts' in summary:
        lines.append(
            f'conflicts (TTC < {summary["conflict_ttc_threshold_s"]:g} s): '
            f'{summary["conflicts"]}, min TTC per conflict {_seconds(summary["mean_min_ttc_s"])}'
            f' (lowest {_seconds(summary["lowest_min_ttc_s"])}), first deceleration '
            f'{_seconds(summary["mean_first_deceleration_s"])} from the conflict\'s start '
            f'({summary["not_decelerated"]} without)')
    if summary.get('steps_with_v2v_bytes') is not None:
        missed = summary.get('missed_ticks', 0)
        lines.append(f'steps with V2V bytes > 0: {_percent(summary["steps_with_v2v_bytes"])}; '
                     "ticks the simulator took without every vehicle's command: "
                     f'{missed}' + (' (a loaded machine: their lines show "-")' if missed else ''))
    if summary.get('prediction_error_quartiles'):
        quartiles = '/'.join(f'{q:.1f}' for q in summary['prediction_error_quartiles'])
        lines.append(f'prediction error E quartiles {quartiles} against c = {summary["c"]}')
    if summary.get('first_tick_s') is not None:
        lines.append(f'first tick {summary["first_tick_s"]:.1f} s after the nodes started, '
                     'first step with every vehicle live '
                     f'{_seconds(summary.get("first_live_step_s"))}')
    return '\n'.join(lines)


COMPARED = (
    ('success rate', lambda s: f'{_percent(s["success_rate"])} ({s["reached"]}/{s["routes"]})'),
    ('collisions (vehicle-steps)', lambda s: str(s.get('collision_steps', 'n/a'))),
    ('conflicts', lambda s: str(s['conflicts'])),
    ('min TTC per conflict, mean', lambda s: _seconds(s['mean_min_ttc_s'])),
    ('min TTC per conflict, lowest', lambda s: _seconds(s['lowest_min_ttc_s'])),
    ('first deceleration at conflicts', lambda s: _seconds(s['mean_first_deceleration_s'])),
    ('conflicts without deceleration', lambda s: str(s['not_decelerated'])),
    ('bytes/step', lambda s: _bytes(s['mean_bytes_per_step'])),
)


def format_comparison(runs: dict) -> str:
    """One table, a column per run (e.g. CALL vs local observation), a row per measure."""
    names = list(runs)
    width = max(len(label) for label, _ in COMPARED)
    lines = [f'{"":<{width}}  ' + '  '.join(f'{name:>16}' for name in names)]
    for label, cell in COMPARED:
        lines.append(f'{label:<{width}}  ' + '  '.join(f'{cell(runs[n]):>16}' for n in names))
    return '\n'.join(lines)

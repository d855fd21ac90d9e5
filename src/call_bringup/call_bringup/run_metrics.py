"""
The demo's live line and end-of-run summary, from per-step vehicle reports (ROS-free).

Definitions (per CALL vehicle and simulation step, as the paper's Table 6):
- collision rate: % of vehicle-steps in collision;
- success rate: routes whose destination was reached among routes that ended by themselves
  (reached, or ended by a collision or by leaving the road); routes still being driven when
  the run ended are counted apart (`call_sim.driving_metrics.success_rate`'s convention, the
  one the experiments report). No mean TTC: over free-flow steps it measures traffic density,
  not safety; the conflicts' minimum TTC is reported instead;
- safety-monitor overrides: the planners' cumulative counters (their `/diagnostics`): commands
  the TTC monitor replaced, per level, among all commands the planners gave;
- bytes/step: serialized LatentMessage bytes accepted by all egos in one step (CommStats);
- conflicts, min TTC per conflict, first-deceleration time: `call_bringup.conflicts`
  (`call_sim.driving_metrics`'s definitions; negative first deceleration = braked before).
"""
from dataclasses import dataclass, field
import math
from typing import Optional

from call_sim import driving_metrics


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
    reached: int = 0
    collided: int = 0
    left_road: int = 0
    steps: int = 0
    bytes_by_stamp: dict = field(default_factory=dict)
    planner_counts: dict = field(default_factory=dict)   # role -> the planner's counters
    #: sim time of the first measured step: CommStats can arrive before the caller knows
    #: which step that is, so they are all kept and the earlier ones left out of the summary
    measured_from: float = -math.inf
    #: sim time of the last measured step: CommStats of later steps, which come in while the
    #: caller waits for the last step's, are left out too
    measured_until: float = math.inf
    _finished: dict = field(default_factory=dict)

    def add_comm(self, stamp: float, role: str, bytes_received: int) -> None:
        """One CommStats: bytes `role` accepted at simulation time `stamp`."""
        self.bytes_by_stamp.setdefault(round(stamp, 3), {})[role] = bytes_received

    def measured(self, stamp: float) -> bool:
        """Whether simulation time `stamp` lies among the measured steps."""
        return self.measured_from - 1e-6 <= stamp <= self.measured_until + 1e-6

    def comm_behind(self, stamp: float, roles) -> set:
        """
        Roles whose CommStats have not reached step `stamp` yet.

        A vehicle's CommStats come in stamp order, after its planner answered the step (comm
        publishes them once the neighbours' views are decoded), so on a loaded machine the
        simulator can be several steps ahead of them when a run reaches its last step.
        """
        reached = set()
        for step_stamp, step in self.bytes_by_stamp.items():
            if step_stamp >= stamp - 1e-6:
                reached.update(step)
        return set(roles) - reached

    def bytes_at(self, stamp: float) -> Optional[int]:
        """Bytes all egos accepted at `stamp` (None before any CommStats of that step)."""
        step = self.bytes_by_stamp.get(round(stamp, 3))
        return None if step is None else sum(step.values())

    def _measured_bytes(self) -> list:
        return [sum(step.values()) for stamp, step in self.bytes_by_stamp.items()
                if self.measured(stamp)]

    def steps_with_bytes(self) -> float:
        """Fraction of the run's steps in which some ego accepted V2V bytes."""
        sharing = sum(1 for received in self._measured_bytes() if received > 0)
        return min(sharing, self.steps) / self.steps if self.steps else 0.0

    def add_planner_counts(self, role: str, values: dict) -> None:
        """Keep a planner's cumulative command counters (`planned`, `overrides_<level>`)."""
        counts = {}
        for key in ('planned',) + tuple(f'overrides_{level}'
                                        for level in driving_metrics.OVERRIDE_LEVELS):
            try:
                counts[key] = int(values[key])
            except (KeyError, ValueError):
                return                               # not a counter report: keep the last
        self.planner_counts[role] = counts

    def add_step(self, reports: dict) -> None:
        """One simulation step: the simulator's report per vehicle role."""
        self.steps += 1
        for role, report in reports.items():
            self.vehicle_steps += 1
            self.collision_steps += int(report.collision)
            if report.reached and not self._finished.get(role):
                self.reached += 1
                self._finished[role] = True
            elif (report.collision or report.off_road) and not self._finished.get(role):
                self.collided += int(report.collision)
                self.left_road += int(not report.collision)
                self._finished[role] = True
            elif not (report.reached or report.collision or report.off_road):
                self._finished[role] = False             # driving a (new) route

    def summary(self) -> dict:
        """Success rate, collision rate, overrides, mean bytes/step (None when no data)."""
        unfinished = sum(1 for role in self.roles if not self._finished.get(role))
        outcomes = (['reached'] * self.reached + ['collision'] * self.collided
                    + ['off_road'] * self.left_road + ['cut_short'] * unfinished)
        success = driving_metrics.success_rate(outcomes)
        per_step = self._measured_bytes()
        overrides = {level: sum(c[f'overrides_{level}'] for c in self.planner_counts.values())
                     for level in driving_metrics.OVERRIDE_LEVELS}
        commands = sum(c['planned'] for c in self.planner_counts.values()) \
            + sum(overrides.values())
        return {
            'steps': self.steps,
            'vehicle_steps': self.vehicle_steps,
            'collision_steps': self.collision_steps,
            'success_rate': None if math.isnan(success) else success,
            'routes': len(outcomes),
            'routes_ended': len(outcomes) - unfinished,
            'reached': self.reached,
            'unfinished': unfinished,
            'collision_rate': (self.collision_steps / self.vehicle_steps
                               if self.vehicle_steps else None),
            'override_rate': sum(overrides.values()) / commands if commands else None,
            'overrides': overrides,
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
        f'({summary["reached"]}/{summary["routes_ended"]} routes that ended; '
        f'{summary["unfinished"]} still driving at the end)',
        f'collision rate: {_percent(summary["collision_rate"])} of vehicle-steps',
        f'safety-monitor overrides: {_percent(summary["override_rate"])} of the planners\' '
        'commands (' + ', '.join(f'{level} {count}'
                                 for level, count in summary['overrides'].items()) + ')',
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
    ('success rate', lambda s: f'{_percent(s["success_rate"])} '
                               f'({s["reached"]}/{s["routes_ended"]})'),
    ('routes still driving at the end', lambda s: str(s['unfinished'])),
    ('safety-monitor overrides', lambda s: _percent(s['override_rate'])),
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

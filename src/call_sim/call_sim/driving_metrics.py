"""
Driving metrics with stated conventions, on plain per-vehicle-step records (ROS-free).

One module for the experiments (`call_experiments`), the demo summary (`call_bringup`) and
anyone else, so that "TTC" or "success" mean the same thing everywhere.

Conventions
-----------
- Vehicle-step: one CALL vehicle at one simulation step (0.1 s). A trip is one vehicle from
  its start (reset or respawn) to its end; its records carry the same `trip` key.
- Conflict: a maximal run of one trip's steps whose TTC (`call_sim.measures`: the nearest
  vehicle within the lateral conflict band and closing in, inf otherwise) is below
  `conflict_ttc` or that are in collision; runs of the same trip less than `merge_gap` steps
  apart are one conflict. Free-flow steps (no conflict) do not enter any TTC figure: a mean
  over them measures traffic density, not safety.
- Conflict TTC: the minimum TTC within a conflict (0 when it ended in a collision), the
  paper's per-encounter notion; reported as mean, median and 5th percentile over conflicts.
- First-deceleration time of a conflict: the first step from `decel_lookback` seconds before
  the conflict's start up to its end at which the vehicle's acceleration is at most
  -`decel_threshold`, relative to the conflict's start [s]: negative = braked before the TTC
  fell below the threshold (anticipation, e.g. from shared information). NaN (and counted in
  `conflicts_without_deceleration`) when the vehicle never braked that hard.
- Occluded conflict: a conflict whose partner -- the vehicle its start step's TTC is with
  (`call_sim.measures.ttc_partners`) -- the ego's own sensors did not see
  (`call_perception.visibility.visible`: beyond sensor range or hidden behind another vehicle,
  as the BEV's seen-vehicles channel holds it) at some step within `occlusion_window` seconds
  before the conflict's start, the start included. Sharing can only tell the ego what its
  sensors do not, so the anticipation that sharing buys is read on these conflicts
  (`first_deceleration_occluded_*`), beside the figures over every conflict. Why a window of
  1 s and not the start step alone or the whole `decel_lookback`: vehicles that a merge or a
  crossing hides mostly come into view a fraction of a second before the TTC falls below
  `conflict_ttc`, so "unseen at the start" leaves almost no conflict; "unseen at some step of
  the 5 s look-back" takes in almost every approaching vehicle, which seconds earlier was
  beyond sensor range, and dilutes the effect again; with 1 s -- the margin the anticipation
  target asks for -- the ego's own sensors gave it at most 1 s of the partner before the
  conflict, so a brake earlier than that can only come from memory or from what it was told.
  Per conflict `last_unseen` (the last step the partner was unseen, relative to the start,
  within the look-back) lets any other window be read off. A conflict whose start step names
  no partner (a collision without a closing TTC) or has no visibility records is not
  occluded. Collisions with occluded partners: occluded conflicts that ended in a collision.
- Path conflict (ground truth, beside the conflicts above, not in place of them): a maximal run
  of one trip's steps at which the ego and another vehicle, both held at their current
  velocity from their simulator states, would first touch within `path_conflict_ttc` seconds
  (`path_ttc`, the contact ahead of the ego; the caller computes it, e.g. `call_experiments.
  driving_eval` with the monitor's footprint geometry); partner: the vehicle of the start
  step's `path_ttc`. The conflicts above begin when the simulator's lane-band TTC falls below
  `conflict_ttc`, i.e. late in an encounter and after the ego's reaction to it: an ego that
  eases off early for a vehicle it was told of can keep that TTC above the threshold, and the
  encounter leaves the first-deceleration sample that should show the anticipation. A path
  conflict begins as soon as the vehicles' motions, held, meet, with a threshold
  (`path_conflict_ttc` 6 s, the planner's conflict horizon) above every reaction threshold of
  the planner and the monitor, so it starts before the ego's reaction and stays in the sample
  whatever the ego then does. It is the same ground truth in every mode (simulator states,
  never what a mode perceived). Occluded path conflicts and their first deceleration follow the
  same rules as above (`first_deceleration_path_occluded_*`).
- Collision rate: fraction of vehicle-steps in collision (the paper's Table 6: 0.28 % for CALL).
- At-fault collision (nuPlan's `no_ego_at_fault_collisions` classes, from where the vehicle
  hit stood at the collision step): the ego is not at fault when it stood (at most
  `STOPPED_SPEED`) or when the other vehicle's centre was behind the ego's rear axle, within
  `REAR_CONE_DEG` of straight behind (struck from behind); it is at fault when the other stood,
  and for every other contact, front or side. nuPlan excuses a side contact while the ego
  keeps to its lane; this count does not (it has no lane record), so it counts at most as
  many collisions against the ego as nuPlan would, never fewer. The at-fault collision rate
  is such collisions per vehicle-step. Why: at a junction the simulator's background drivers
  follow their lanes, so one that runs into a CALL vehicle standing or crawling across its
  lane counts as a collision of that CALL vehicle, and no decision of the ego's avoids it.
- Success: trips that reached their destination among trips that ended by themselves
  (reached, collision, off road, time out); trips cut short because the fleet's episode
  ended for another vehicle are excluded and counted apart.
- Route completion: mean fraction of the route driven, over trips that ended by themselves.
- Safety-monitor overrides: fraction of vehicle-steps whose command the monitor replaced,
  per level (`comfortable`, `emergency`); the learned planner's share is the rest.
- Interval over seeds: mean and Student-t 95 % interval of a per-seed figure.
"""
from dataclasses import dataclass
import math
from typing import Hashable, Iterable, Optional, Sequence

import numpy as np

OUTCOMES = ('reached', 'collision', 'off_road', 'timeout', 'cut_short')
OVERRIDE_LEVELS = ('comfortable', 'emergency')
#: [m/s^2] a vehicle's acceleration is its speed's finite difference over one step, and a
#: command of exactly the deceleration threshold (the safety monitor's comfortable stop)
#: comes back a few ulps short of it; within this it counts as reaching the threshold
ACCEL_ROUNDOFF = 1e-9
#: [m/s] at or below it a vehicle stands, for the at-fault classes (nuPlan's threshold)
STOPPED_SPEED = 0.05
#: [deg] a vehicle whose centre is within this of straight behind the ego's rear axle struck it
#: from behind (nuPlan's `is_agent_behind`: 150 deg from the heading)
REAR_CONE_DEG = 30.0
#: [m] the rear axle behind the box centre: half the kinematic bicycle's wheelbase
#: (call_sim vehicle.yaml, 2.9 m; the axles sit symmetrically in the box)
REAR_AXLE_BEHIND_CENTRE = 1.45
#: collision classes (`collision_class`) that count against the ego
AT_FAULT_CLASSES = ('other_stopped', 'front_or_side')


@dataclass(frozen=True)
class MetricConventions:
    """The numbers the definitions above name."""

    conflict_ttc: float = 3.0      # [s] (call_sim reward.yaml ttc_threshold)
    merge_gap: int = 5             # [steps] runs closer than this are one conflict
    decel_threshold: float = 1.0   # [m/s^2] Autoware's comfortable stop
    decel_lookback: float = 5.0    # [s] before a conflict's start
    occlusion_window: float = 1.0  # [s] before a conflict's start, for occluded conflicts
    path_conflict_ttc: float = 6.0     # [s] ground-truth path conflicts (module doc)

    def __post_init__(self):
        """Fail fast on conventions that define nothing."""
        if not (self.conflict_ttc > 0 and self.decel_threshold > 0 and self.path_conflict_ttc > 0
                and self.decel_lookback >= 0 and self.merge_gap >= 1
                and 0 <= self.occlusion_window <= self.decel_lookback):
            raise ValueError(f'invalid metric conventions {self}')


@dataclass(frozen=True)
class VehicleStep:
    """One CALL vehicle at one step: what the metrics need."""

    trip: Hashable
    time: float
    ttc: float
    collision: bool
    accel: float = math.nan
    override: str = ''        # '' (planner), 'comfortable' or 'emergency'
    partner: Optional[Hashable] = None      # the vehicle the TTC is with (None: inf TTC)
    seen: Optional[frozenset] = None        # vehicles the ego's own sensors saw (None: unknown)
    path_ttc: float = math.inf              # [s] ground-truth contact time (path conflicts)
    path_partner: Optional[Hashable] = None  # the vehicle of path_ttc


@dataclass(frozen=True)
class Conflict:
    """One conflict of one trip (see the module doc)."""

    trip: Hashable
    start: float
    end: float
    min_ttc: float
    collided: bool
    first_deceleration: float   # [s] relative to start; NaN if none
    partner: Optional[Hashable] = None   # the vehicle the start step's TTC is with
    last_unseen: float = math.nan   # [s] last step the ego did not see it, relative to start
    occluded: bool = False      # partner unseen at some step of the occlusion window


def conflicts(steps: Sequence[VehicleStep], conventions: MetricConventions = MetricConventions()
              ) -> list[Conflict]:
    """Every conflict of every trip, in trip and time order."""
    return _conflicts(steps, conventions, False)


def path_conflicts(steps: Sequence[VehicleStep],
                   conventions: MetricConventions = MetricConventions()) -> list[Conflict]:
    """Every ground-truth path conflict of every trip (module doc), in trip and time order."""
    return _conflicts(steps, conventions, True)


def _conflicts(steps: Sequence[VehicleStep], conventions: MetricConventions,
               path: bool) -> list[Conflict]:
    by_trip: dict = {}
    for step in steps:
        by_trip.setdefault(step.trip, []).append(step)
    found = []
    for trip, records in by_trip.items():
        records = sorted(records, key=lambda s: s.time)
        if path:
            flagged = [i for i, s in enumerate(records)
                       if s.path_ttc < conventions.path_conflict_ttc]
        else:
            flagged = [i for i, s in enumerate(records)
                       if s.collision or s.ttc < conventions.conflict_ttc]
        runs: list[list[int]] = []
        for i in flagged:
            if runs and i - runs[-1][-1] <= conventions.merge_gap:
                runs[-1].append(i)
            else:
                runs.append([i])
        for run in runs:
            members = records[run[0]:run[-1] + 1]
            collided = any(s.collision for s in members)
            min_ttc = 0.0 if collided else min(s.path_ttc if path else s.ttc
                                               for s in members)
            first = records[run[0]]
            start, end = first.time, records[run[-1]].time
            partner = first.path_partner if path else first.partner
            unseen = last_unseen(records[:run[0] + 1], partner, start, conventions)
            found.append(Conflict(trip, start, end, min_ttc, collided,
                                  first_deceleration(records, start, end, conventions),
                                  partner, unseen,
                                  unseen >= -conventions.occlusion_window - 1e-9))
    return found


def first_deceleration(records: Sequence[VehicleStep], start: float, end: float,
                       conventions: MetricConventions = MetricConventions()) -> float:
    """First time in [start - lookback, end] with accel <= -threshold, minus start (or NaN)."""
    for step in records:
        if start - conventions.decel_lookback - 1e-9 <= step.time <= end + 1e-9 \
                and step.accel <= -conventions.decel_threshold + ACCEL_ROUNDOFF:
            return step.time - start
    return math.nan


def last_unseen(records: Sequence[VehicleStep], partner: Optional[Hashable], start: float,
                conventions: MetricConventions = MetricConventions()) -> float:
    """
    Last time in [start - lookback, start] the ego's sensors did not see `partner`, minus start.

    NaN when they saw it at every recorded step of that span, or when there is no partner or
    no visibility record at the start.
    """
    if partner is None or not records or records[-1].seen is None:
        return math.nan
    for step in reversed(records):
        if step.time < start - conventions.decel_lookback - 1e-9:
            break
        if step.seen is not None and partner not in step.seen:
            return step.time - start
    return math.nan


def collision_rate(steps: Sequence[VehicleStep]) -> float:
    """Fraction of vehicle-steps in collision (NaN without steps)."""
    return float(np.mean([s.collision for s in steps])) if steps else math.nan


def collision_class(ego_speed: float, other_speed: float, ahead: float, left: float) -> str:
    """
    Classify one collision as nuPlan does: `ego_stopped`, `other_stopped`, `rear`, `front_or_side`.

    `ahead`, `left` [m]: the other vehicle's centre in the ego's frame (from the ego's centre,
    x along its heading) at the collision step; speeds [m/s] at that step.
    """
    if ego_speed <= STOPPED_SPEED:
        return 'ego_stopped'
    if other_speed <= STOPPED_SPEED:
        return 'other_stopped'
    behind_axle = -(ahead + REAR_AXLE_BEHIND_CENTRE)
    if behind_axle > 0.0 and abs(left) <= behind_axle * math.tan(math.radians(REAR_CONE_DEG)):
        return 'rear'
    return 'front_or_side'


def success_rate(outcomes: Iterable[str]) -> float:
    """Fraction of reached trips among trips that ended by themselves (NaN: none ended)."""
    outcomes = list(outcomes)
    unknown = set(outcomes) - set(OUTCOMES)
    if unknown:
        raise ValueError(f'unknown trip outcomes {sorted(unknown)}; known: {OUTCOMES}')
    ended = [o for o in outcomes if o != 'cut_short']
    return sum(o == 'reached' for o in ended) / len(ended) if ended else math.nan


def route_completion(outcomes: Sequence[str], progress: Sequence[float]) -> float:
    """Mean route fraction driven over trips that ended by themselves (NaN: none ended)."""
    done = [min(max(p, 0.0), 1.0) for o, p in zip(outcomes, progress) if o != 'cut_short']
    return float(np.mean(done)) if done else math.nan


def override_shares(steps: Sequence[VehicleStep]) -> dict:
    """Fraction of vehicle-steps per override level, and the learned planner's share."""
    if not steps:
        return {**{level: math.nan for level in OVERRIDE_LEVELS}, 'learned': math.nan}
    shares = {level: sum(s.override == level for s in steps) / len(steps)
              for level in OVERRIDE_LEVELS}
    shares['learned'] = 1.0 - sum(shares.values())
    return shares


def _stat(values: Sequence[float], fn) -> float:
    values = [v for v in values if math.isfinite(v)]
    return float(fn(values)) if values else math.nan


def summarise(steps: Sequence[VehicleStep], outcomes: Sequence[str],
              progress: Sequence[float],
              conventions: MetricConventions = MetricConventions()) -> dict:
    """
    Every metric of the module doc in one flat dict (fractions, not percentages).

    `outcomes` and `progress` are per trip (same order).
    """
    found = conflicts(steps, conventions)
    ttcs = [c.min_ttc for c in found]
    decel = [c.first_deceleration for c in found]
    hidden = [c for c in found if c.occluded]
    hidden_decel = [c.first_deceleration for c in hidden]
    paths = path_conflicts(steps, conventions)
    path_decel = [c.first_deceleration for c in paths]
    path_hidden = [c.first_deceleration for c in paths if c.occluded]
    shares = override_shares(steps)
    return {
        'vehicle_steps': len(steps),
        'trips': len(outcomes),
        'trips_ended': sum(o != 'cut_short' for o in outcomes),
        'success_rate': success_rate(outcomes),
        'route_completion': route_completion(outcomes, progress),
        'collision_rate': collision_rate(steps),
        'conflicts': len(found),
        'conflicts_per_1000_steps': 1000.0 * len(found) / len(steps) if steps else math.nan,
        'conflict_min_ttc_mean_s': _stat(ttcs, np.mean),
        'conflict_min_ttc_median_s': _stat(ttcs, np.median),
        'conflict_min_ttc_p5_s': _stat(ttcs, lambda v: np.percentile(v, 5)),
        'first_deceleration_mean_s': _stat(decel, np.mean),
        'first_deceleration_median_s': _stat(decel, np.median),
        'conflicts_without_deceleration': sum(not math.isfinite(d) for d in decel),
        'occluded_conflicts': len(hidden),
        'first_deceleration_occluded_mean_s': _stat(hidden_decel, np.mean),
        'first_deceleration_occluded_median_s': _stat(hidden_decel, np.median),
        'occluded_conflicts_without_deceleration': sum(not math.isfinite(d)
                                                       for d in hidden_decel),
        'occluded_collisions': sum(c.collided for c in hidden),
        'path_conflicts': len(paths),
        'first_deceleration_path_mean_s': _stat(path_decel, np.mean),
        'path_occluded_conflicts': len(path_hidden),
        'first_deceleration_path_occluded_mean_s': _stat(path_hidden, np.mean),
        'first_deceleration_path_occluded_median_s': _stat(path_hidden, np.median),
        'path_occluded_conflicts_without_deceleration': sum(not math.isfinite(d)
                                                            for d in path_hidden),
        'override_comfortable': shares['comfortable'],
        'override_emergency': shares['emergency'],
        'learned_share': shares['learned'],
        'conventions': {'conflict_ttc_s': conventions.conflict_ttc,
                        'merge_gap_steps': conventions.merge_gap,
                        'decel_threshold_mps2': conventions.decel_threshold,
                        'decel_lookback_s': conventions.decel_lookback,
                        'occlusion_window_s': conventions.occlusion_window,
                        'path_conflict_ttc_s': conventions.path_conflict_ttc},
    }


# two-sided 97.5 % quantiles of Student's t for 1..30 degrees of freedom
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def mean_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, low, high): Student-t 95 % interval of the mean of per-seed values."""
    finite = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    if finite.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(finite.mean())
    if finite.size == 1:
        return mean, math.nan, math.nan
    dof = finite.size - 1
    t = _T975[dof - 1] if dof <= len(_T975) else 1.96
    half = t * float(finite.std(ddof=1)) / math.sqrt(finite.size)
    return mean, mean - half, mean + half


def intervals_overlap(a: Sequence[float], b: Sequence[float]) -> Optional[bool]:
    """Whether the 95 % intervals of two per-seed samples overlap (None: undefined)."""
    _, a_low, a_high = mean_interval(a)
    _, b_low, b_high = mean_interval(b)
    if any(math.isnan(v) for v in (a_low, a_high, b_low, b_high)):
        return None
    return not (a_high < b_low or b_high < a_low)

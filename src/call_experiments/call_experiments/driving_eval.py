"""
`call_driving_eval`: does CALL reach its goal and react to every vehicle it knows of.

Held-out seeds, each one continuous run of a scenario in which every CALL vehicle drives
route after route (a vehicle that arrives, collides or leaves the road respawns on a new
route and restarts its pipeline, as in the demo), through the ROS-free vehicle core
(`call_learning.pipeline.VehiclePipeline`: perception, world model, range gate, driver),
with the planner node's look-ahead (paper eq. 3 plus the occupancy cost) and its TTC safety
monitor beside it, every number from `call_planner/config/planner.yaml`.

Per seed the metrics of `call_sim.driving_metrics` (its docstring states the conventions:
per-conflict minimum TTC, first deceleration relative to each conflict, success and route
completion over trips that ended by themselves, collision rate per vehicle-step, override
shares) are computed; the CSV gives, per mode and metric, the mean over the seeds and its
Student-t 95 % interval (`call_world_model.prediction_metrics.mean_interval`: the seeds are
the independent units), with the seeds and the number of routes (trips that ended). With more
than one mode and CALL (`lsi`) among them, `--combine` also writes the paired comparison
(`PAIRED_METRICS`, `paired_rows`): a seed fixes the scenario's traffic and routes for every
mode, so CALL's difference to each other mode seed by seed is a sharper test than two
unpaired intervals.

A trip still driving `trip_timeout` after its start ends then as a time out (the vehicle
respawns on a new route); a trip still open when the run ends is cut short (excluded). On a
map with a junction the same run also scores its background drivers (SUMO's) by that trip
rule (`call_experiments.background_trips`): what the traffic lets a driver reach, beside what
the CALL vehicles reached (`success_minus_background`, seed by seed, and
`success_minus_background_by_approach`, road by road within the seed: each trip's approach and
exit road are in its record, the background's per approach in the JSON's
`background_by_approach`).

    python -m call_experiments.driving_eval --scenario four_lane_demo [--quick]

writes results/driving_four_lane_demo.csv.
"""
import argparse
from collections import Counter
import csv
from dataclasses import dataclass, field, replace
import json
import math
import os
from pathlib import Path
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

from call_experiments import manifest
from call_experiments.background_trips import approach_gap, BackgroundTrips, junction_centre
from call_experiments.bandwidth import WireSettings
from call_experiments.experiment_config import default_settings, parse_sets
from call_experiments.rollout import received_bytes, scenario_with
from call_learning.pipeline import MODES, PipelineConfig, VehiclePipeline
from call_perception.bev_raster import CHANNEL_INDEX
from call_perception.visibility import visible
from call_planner.junction_gate import after_monitor, gate_from_params, JunctionGate
from call_planner.plan_stage import driver_from_params, FleetLookahead, planner_params
from call_planner.shared_tracks import shared_tracks, SharedState
from call_planner.ttc_monitor import (BevGeometry, COMFORTABLE, EMERGENCY, first_contacts,
                                      MonitorConfig, NONE, override_accel, Track, TtcMonitor)
from call_planner.turn_assist import turn_assist_from_params, TurnAssist
from call_sim import driving_metrics
from call_vehicle.intention import intention_waypoints
from call_world_model import checkpoint
from call_world_model.prediction_metrics import mean_interval
import numpy as np
import torch

CSV_COLUMNS = ('mode', 'metric', 'mean', 'ci_low', 'ci_high', 'seeds', 'routes')
PAIRED_COLUMNS = ('mode', 'reference', 'metric', 'mean', 'ci_low', 'ci_high', 'seeds',
                  'reference_better')
# metrics compared seed by seed, and whether higher is better
PAIRED_METRICS = {'success_rate': True, 'route_completion': True, 'collision_rate': False,
                  'at_fault_collision_rate': False, 'mean_trip_return': True,
                  'override_total': False}
#: the metrics written, in order (fractions; seconds for times)
METRICS = ('success_rate', 'route_completion', 'collision_rate', 'at_fault_collision_rate',
           'conflicts_per_1000_steps',
           'conflict_min_ttc_mean_s', 'conflict_min_ttc_p5_s', 'first_deceleration_mean_s',
           'first_deceleration_median_s', 'conflicts_without_deceleration',
           'occluded_conflicts', 'first_deceleration_occluded_mean_s',
           'first_deceleration_occluded_median_s', 'occluded_conflicts_without_deceleration',
           'occluded_collisions', 'path_conflicts', 'first_deceleration_path_mean_s',
           'path_occluded_conflicts', 'first_deceleration_path_occluded_mean_s',
           'first_deceleration_path_occluded_median_s',
           'path_occluded_conflicts_without_deceleration',
           'override_comfortable', 'override_emergency', 'override_total', 'learned_share',
           'stop_share', 'trips_ended', 'reached', 'collisions', 'at_fault_collisions',
           'off_road', 'timeouts',
           'vehicle_steps', 'mean_trip_return', 'mean_neighbours', 'call_bytes_per_ego_step',
           'background_success_rate', 'background_trips_ended', 'success_minus_background',
           'success_minus_background_by_approach')
DEFAULT_C = 50.0                     # the comm node's default threshold (comm.yaml)
DEFAULT_SEEDS = (3000, 3001, 3002)   # held out: training used seeds 0-2, call_evaluate 1000+
SHIPPED_CHECKPOINT = 'call_small64g8c.pt'   # the nodes' default (call_bringup bringup.yaml)
CONVENTIONS = driving_metrics.MetricConventions()   # the summaries' conventions
#: footprint geometry of the ground-truth path conflicts: the monitor's dataclass defaults, not
#: planner.yaml's numbers (a metric the planner's parameters cannot move)
PATH_GEOMETRY = MonitorConfig()


@dataclass
class SeedResult:
    """One seed's records: per-vehicle-step records and per-trip outcomes."""

    steps: List[driving_metrics.VehicleStep] = field(default_factory=list)
    outcomes: List[str] = field(default_factory=list)
    progress: List[float] = field(default_factory=list)
    stops: int = 0              # vehicle-steps in the controlled stop (model state not valid)
    waiting_steps: int = 0      # steps a vehicle waited outside the map for a free start
    trips: List[Dict[str, Any]] = field(default_factory=list)   # per trip: why and how it ended
    override_causes: Dict[str, int] = field(default_factory=dict)   # override steps by cause
    turn_assisted: int = 0      # vehicle-steps whose steer the turn assist set
    told: Dict[tuple, frozenset] = field(default_factory=dict)   # (trip, time): `told_ids`
    returns: List[float] = field(default_factory=list)   # per ended trip: its summed reward
    neighbours: int = 0         # accepted senders summed over the vehicle-steps
    call_bytes: int = 0         # their LatentMessages' bytes, as the comm node encodes them
    background: Dict[str, float] = field(default_factory=dict)   # `background_trips` summary
    # approach (the road a trip began on) -> the background's (reached, ended) trips there
    background_by_approach: Dict[str, tuple] = field(default_factory=dict)
    wall_s: float = 0.0

    def summary(self) -> Dict[str, float]:
        """Driving metrics of this seed, plus outcome counts and the stop share."""
        s = driving_metrics.summarise(self.steps, self.outcomes, self.progress)
        s.pop('conventions')
        s['override_total'] = s['override_comfortable'] + s['override_emergency']
        s['stop_share'] = self.stops / len(self.steps) if self.steps else math.nan
        s['turn_assist_share'] = self.turn_assisted / len(self.steps) if self.steps else math.nan
        for outcome, key in (('reached', 'reached'), ('collision', 'collisions'),
                             ('off_road', 'off_road'), ('timeout', 'timeouts')):
            s[key] = float(self.outcomes.count(outcome))
        # paper Fig. 19/20: return per trip (the env's reward summed), bandwidth per ego-step
        s['mean_trip_return'] = float(np.mean(self.returns)) if self.returns else math.nan
        n = len(self.steps)
        s['mean_neighbours'] = self.neighbours / n if n else math.nan
        s['call_bytes_per_ego_step'] = self.call_bytes / n if n else math.nan
        s.update(self.background)
        return with_fault_counts(s, self.trips)


class MonitoredFleet:
    """
    The planner node's decision for every vehicle of a pipeline: look-ahead, then monitor.

    As in `call_planner.planner_node`: the monitor observes the vehicle channels of the step's
    fused BEV and takes the accepted neighbours of the step's model state as the tracks their
    messages state (`call_planner.shared_tracks`); when the TTC falls below its thresholds it
    replaces the planned acceleration (keeping the steer), the world model hears the nearest
    discrete action, the vehicle declares braking as its intention and re-plans afterwards.
    """

    def __init__(self, pipeline: VehiclePipeline, policy: FleetLookahead,
                 config: MonitorConfig, horizon: int, gate: Optional[JunctionGate] = None,
                 turn_assist: Optional[TurnAssist] = None):
        """Bind the pipeline and its look-ahead; one monitor per vehicle; gate and assist."""
        self.pipeline = pipeline
        self.gate = gate
        self.turn_assist = turn_assist
        self.assisted_steps = 0     # steps whose steer the turn assist set
        self.policy = policy
        self.config = config
        self.horizon = horizon
        bev = pipeline.bev_config
        self.geometry = BevGeometry(bev.metres_per_pixel, bev.ego_row, bev.ego_col)
        self.monitors: Dict[str, TtcMonitor] = {}
        self.yaws: Dict[str, float] = {}
        # this step's yaw rate and monitor verdict per role (None: not assessed), for the
        # per-step diagnostics that read the monitor beside the driving
        self.yaw_rates: Dict[str, float] = {}
        self.verdicts: Dict[str, Any] = {}
        self.override_causes: Counter = Counter()     # override steps by override_cause
        self.shared_dropped = 0     # neighbour messages too old or not finite for a track
        self.told: Dict[str, frozenset] = {}    # per role: vehicles known only through sharing

    def reset(self, roles: Sequence[str]) -> None:
        """Fresh monitors for every vehicle, and no track of the old ones in the look-ahead."""
        self.monitors = {role: TtcMonitor(self.config, self.geometry) for role in roles}
        self.yaws, self.yaw_rates, self.verdicts = {}, {}, {}
        self.policy.tracks.clear()

    def restart(self, role: str) -> None:
        """One vehicle respawned: forget its tracks and plan."""
        self.monitors[role] = TtcMonitor(self.config, self.geometry)
        for per_role in (self.yaws, self.yaw_rates, self.verdicts):
            per_role.pop(role, None)
        index = self.pipeline.roles.index(role)
        self.policy.forget(index)
        self.policy.tracks.pop(index, None)

    def step(self, observations: Dict[str, Any], now: float, dt: float) -> Dict[str, tuple]:
        """Observe, plan, monitor: {role: (VehicleControl, override level, stopped)}."""
        p = self.pipeline
        steps = p.observe(observations)
        seen_c, shared_c = CHANNEL_INDEX['seen_vehicles'], CHANNEL_INDEX['shared_vehicles']
        if self.config.enabled:     # the monitor's tracks feed the look-ahead's conflict cost
            for i, role in enumerate(p.roles):
                ego, bev = observations[role].ego, steps[i].bev
                monitor = self.monitors[role]
                monitor.observe(now, bev[seen_c] > 127, bev[shared_c] > 127,
                                (ego.x, ego.y, ego.yaw))
                # the neighbours this step's model state heard, as their messages state them
                known, dropped = shared_tracks(
                    [SharedState(m.x, m.y, m.yaw, m.speed, m.stamp, m.waypoints)
                     for m in steps[i].senders], now, self.config)
                self.shared_dropped += dropped
                monitor.share(known)
                self.policy.tracks[i] = monitor.moving_tracks()
                self.told[role] = told_ids(self.policy.tracks[i], observations[role].others,
                                           self.config.match_radius)
        controls = p.act(observations, self.policy)
        driver = p.driver
        out = {}
        for i, role in enumerate(p.roles):
            ego = observations[role].ego
            pose = (ego.x, ego.y, ego.yaw)
            last = self.yaws.get(role)
            yaw_rate = 0.0 if last is None else math.remainder(ego.yaw - last, math.tau) / dt
            self.yaws[role], self.yaw_rates[role], self.verdicts[role] = ego.yaw, yaw_rate, None
            level, control = NONE, controls[role]
            stopped = not p.outputs[i].valid
            accel, steer = driver.actions.action(int(steps[i].action))
            assisted = (None if self.turn_assist is None or stopped else
                        self.turn_assist.steer(pose, ego.speed, observations[role].route, steer))
            if assisted is not None:
                # a bend tighter than the action set turns (planner_node._act: the same rule)
                steer = assisted
                control = driver.control_model.to_control(accel, steer, max(float(ego.speed), 0.0))
                p.models[i].action = driver.actions.index(accel, steer)
                self.assisted_steps += 1
            if self.config.enabled and not stopped:
                path = None if self.turn_assist is None else self.turn_assist.predicted_path(
                    pose, ego.speed, observations[role].route,
                    self.monitors[role].path_length(ego.speed))
                verdict = self.monitors[role].assess(now, pose, ego.speed, yaw_rate, path)
                self.verdicts[role] = verdict
                override = override_accel(verdict, accel)
                if override is not None:
                    level = verdict.level
                    self.override_causes[override_cause(verdict, pose, self.config)] += 1
                # the junction gate (planner_node._act: the same order): it may lower the
                # planner's or the monitor's acceleration before a junction it cannot clear
                if self.gate is not None:
                    override, _, gate_only = after_monitor(
                        self.gate, pose, ego.speed, observations[role].route,
                        self.policy.tracks[i], accel, override)
                    if gate_only:
                        level = COMFORTABLE
                        self.override_causes['junction_hold'] += 1
                if override is not None:
                    speed = max(float(ego.speed), 0.0)
                    control = driver.control_model.to_control(override, steer, speed)
                    p.models[i].action = driver.actions.index(override, steer)
                    p.plans[i] = intention_waypoints(driver.bicycle, pose, speed,
                                                     [(override, steer)] * self.horizon)
                    self.policy.forget(i)
            out[role] = (control, level, stopped)
        return out


def told_ids(tracks: Sequence[Track], others: Sequence[Any], radius: float) -> frozenset:
    """
    Actor ids of the vehicles the ego's monitor holds only through sharing (a diagnostic).

    A vehicle counts when a shared-only track with a velocity lies within `radius` of its
    simulator position: whether what sharing told the ego could have led it to brake for the
    partner of a conflict, not a figure of any mode's driving.
    """
    shared = [(k.x, k.y) for k in tracks if k.shared_only]
    if not shared:
        return frozenset()
    return frozenset(o.actor_id for o in others
                     if any(math.hypot(o.x - x, o.y - y) <= radius for x, y in shared))


def override_cause(verdict: Any, pose: tuple, config: MonitorConfig) -> str:
    """
    Why an override step happened, so the override share can be taken apart.

    `held`: the verdict's TTC is above its level's threshold, the step only holds an earlier
    trigger (`give_way` when that trigger was a neighbour the ego gives way to, which holds
    it the whole `hold_time`); `anticipation_shared` for the monitor's anticipation of a
    crossing or merging vehicle known only through sharing; otherwise where the conflicting
    vehicle is in the ego frame: `behind` (its centre behind the ego's: a cut-in or the
    ego's lane change), `same_lane` (within half a lane, 1.75 m, sideways) or `next_lane`,
    with `_shared` when only sharing knows it.
    """
    threshold = (config.anticipation_ttc if verdict.anticipated else config.emergency_ttc
                 if verdict.level == EMERGENCY else config.comfortable_ttc)
    if verdict.ttc >= threshold or verdict.conflict is None:
        return 'give_way' if verdict.giving_way else 'held'
    if verdict.anticipated:
        return 'anticipation_shared'
    k, (x, y, yaw) = verdict.conflict, pose
    ahead = math.cos(yaw) * (k.x - x) + math.sin(yaw) * (k.y - y)
    left = -math.sin(yaw) * (k.x - x) + math.cos(yaw) * (k.y - y)
    where = 'behind' if ahead < 0 else 'same_lane' if abs(left) < 1.75 else 'next_lane'
    return where + ('_shared' if k.shared_only else '')


def conflict_partner(info: Dict[str, Any]) -> Optional[int]:
    """
    Return the vehicle a step's conflict is with: its TTC's partner, else the first one hit.

    The TTC only takes vehicles in the ego's lateral band: a vehicle crossing from the side
    can hit the ego without ever closing in within it, and that collision has a partner too.
    """
    partner = info.get('ttc_partner')
    if partner is None and info.get('collided_with'):
        partner = info['collided_with'][0]
    return partner


def path_conflict(observation: Any, dt: float = 0.1,
                  horizon: float = CONVENTIONS.path_conflict_ttc) -> tuple:
    """
    (time [s], actor id) of the ego's first ground-truth contact ahead: (inf, None) for none.

    `call_sim.driving_metrics`' path conflicts: the ego and every other vehicle held at their
    current velocity from their simulator states (what every mode is scored against, never
    what it perceived), footprints as the monitor's (`PATH_GEOMETRY`), contacts that begin
    behind the ego with a vehicle closing in from behind left out, within `horizon`.
    """
    ego, others = observation.ego, observation.others
    if not others:
        return math.inf, None
    t = np.arange(0.0, horizon + 1e-9, dt)
    speed = max(float(ego.speed), 0.0)
    ex, ey = ego.x + speed * t * math.cos(ego.yaw), ego.y + speed * t * math.sin(ego.yaw)
    tracks = [Track(o.x, o.y, o.yaw, o.length, o.width, o.speed * math.cos(o.yaw),
                    o.speed * math.sin(o.yaw), False) for o in others]
    first = first_contacts(ex, ey, np.full(len(t), ego.yaw), tracks, t, 0.0, PATH_GEOMETRY)
    best = int(first.argmin())
    if first[best] >= len(t):
        return math.inf, None
    return float(t[first[best]]), others[best].actor_id


def own_sensors_see(pipeline: VehiclePipeline, observation: Any) -> frozenset:
    """
    Actor ids of the vehicles the ego's own sensors see in `observation`.

    The same test and settings as the pipeline's perception stage, on the observation that
    stage renders at the next step: what the ego knows of other vehicles without sharing.
    """
    stage = pipeline.perception
    others = observation.others
    mask = visible(pipeline.ego_box(observation.ego), [pipeline.box(v) for v in others],
                   stage.sensor_range, stage.occlusion, stage.full_observation)
    return frozenset(other.actor_id for other, seen in zip(others, mask) if seen)


def load_policy_models(path: str):
    """checkpoint.load once, models in eval mode (fails fast on a bad file)."""
    loaded = checkpoint.load(path, load_optimizers=False)
    if not loaded.meta.get('has_actor_critic', False):
        raise checkpoint.CheckpointError(f'{path} has no actor-critic: the planner cannot drive')
    loaded.world_model.eval()
    loaded.actor_critic.eval()
    return loaded


def build_fleet(loaded: Any, settings: PipelineConfig, env: Any, planner: Dict[str, Any],
                seed: int = 0) -> 'MonitoredFleet':
    """Build the pipeline, the planner's stages (costs included) and the monitors."""
    wm = loaded.world_model
    driver = driver_from_params(planner)
    opendrive = env.opendrive() if hasattr(env, 'opendrive') else None
    pipeline = VehiclePipeline(wm, settings, env.lanes(), driver, opendrive=opendrive)
    policy = FleetLookahead(wm, loaded.actor_critic, planner,
                            seed_of=lambda index, episode: seed + 7919 * index)
    monitor = MonitorConfig.from_params(planner)
    gate = gate_from_params(planner, opendrive) if monitor.enabled else None
    return MonitoredFleet(pipeline, policy, monitor, int(planner['K']), gate,
                          turn_assist_from_params(planner))


def trip_record(role: str, start: float, end: float, outcome: str, progress: float,
                length: float) -> Dict[str, Any]:
    """One trip's end, so that failures can be told apart (time out, collision, off road)."""
    return {'role': role, 'start_s': round(start, 2), 'duration_s': round(end - start, 2),
            'outcome': outcome, 'progress': round(progress, 3), 'route_m': round(length, 1)}


def with_fault_counts(summary: Dict[str, Any], trips: Sequence[Dict[str, Any]]
                      ) -> Dict[str, Any]:
    """
    Return the summary with its at-fault collisions (`driving_metrics.collision_class`).

    A collision trip counts against the ego when any vehicle it hit was hit at fault; from the
    trips' `hit` geometry, so that summaries written before the count existed get it too
    (`--combine`). NaN when a collision trip has no geometry, or the trips are not the
    summary's collisions.
    """
    collided = [t for t in trips if t['outcome'] == 'collision']
    if any(not t.get('hit') for t in collided) \
            or len(collided) != summary.get('collisions', len(collided)):
        count = math.nan
    else:
        count = float(sum(any(driving_metrics.collision_class(
            h['ego_speed'], h['other_speed'], h['ahead_m'], h['left_m'])
            in driving_metrics.AT_FAULT_CLASSES for h in t['hit']) for t in collided))
    steps = summary.get('vehicle_steps') or math.nan
    return {**summary, 'at_fault_collisions': count, 'at_fault_collision_rate': count / steps}


def collision_geometry(observation: Any, collided_with: Sequence[int],
                       override: str) -> List[Dict[str, Any]]:
    """Where each vehicle hit stood in the ego frame, so the kind of crash shows."""
    ego = observation.ego
    cos, sin = math.cos(ego.yaw), math.sin(ego.yaw)
    found = []
    for other in observation.others:
        if other.actor_id not in collided_with:
            continue
        dx, dy = other.x - ego.x, other.y - ego.y
        found.append({'call': bool(other.role_name), 'ahead_m': round(cos * dx + sin * dy, 2),
                      'left_m': round(-sin * dx + cos * dy, 2),
                      'yaw_deg': round(math.degrees(math.remainder(other.yaw - ego.yaw,
                                                                   math.tau)), 1),
                      'ego_speed': round(ego.speed, 2), 'other_speed': round(other.speed, 2),
                      'ego_accel': round(ego.accel, 2), 'override': override})
        hit = found[-1]     # classed on the recorded figures, as `with_fault_counts` does
        hit['class'] = driving_metrics.collision_class(
            hit['ego_speed'], hit['other_speed'], hit['ahead_m'], hit['left_m'])
    return found


def drive_seed(loaded: Any, mode: str, scenario: str, seed: int, steps: int,
               planner: Dict[str, Any], c: float, trip_timeout: float,
               overrides: Optional[Dict[str, Any]] = None, log=None,
               progress_every: int = 0, on_progress=None, probe=None,
               settings: Optional[Dict[str, Any]] = None) -> SeedResult:
    """
    One seed: `steps` simulator steps of continuous driving with respawns.

    Every `progress_every` steps `on_progress(steps_done, result)` gets the records so far
    (a long run on a shared machine leaves usable figures if it is stopped). `probe`, if
    given, is called after every simulator step as `probe(time, observations, trip, fleet)`
    with the observations the fleet decided on, each role's trip index and the fleet, keyed
    by the time the step's records carry (a diagnostic reads what the vehicles knew; it
    must not change them). `settings` replaces fields of the pipeline's settings (the range
    gate's `initial_range`, say) for a diagnostic run; c is `c`.
    """
    from call_experiments.evaluate import collect_settings
    from call_sim.env import MultiVehicleEnv
    started = time.time()
    torch.manual_seed(seed)
    # a trip that runs past trip_timeout ends then as a time out and the vehicle respawns:
    # a vehicle stuck in traffic is one failed route, not the rest of the run
    values = {'respawn_done': True, 'episode_steps': steps + 1, 'seed': seed,
              'trip_time_limit': trip_timeout, **(overrides or {})}
    env = MultiVehicleEnv.from_scenario(scenario_with(scenario, values))
    result = SeedResult()
    try:
        fleet = build_fleet(loaded, replace(collect_settings(mode, c), **(settings or {})),
                            env, planner, seed)
        result.override_causes = fleet.override_causes      # counted as the run goes
        pipeline = fleet.pipeline
        obs, _ = env.reset(seed=seed)
        roles = sorted(obs)
        pipeline.reset(roles)
        fleet.reset(roles)
        # the simulator's drivers on the CALL trip rule, where the map has a junction
        centre = junction_centre(env.opendrive() if hasattr(env, 'opendrive') else None)
        background = None if centre is None else BackgroundTrips(centre, trip_timeout,
                                                                 env.road.road_of)
        tolerance = float(env.scenario['route']['reach_tolerance'])
        routes: Dict[str, Any] = {}         # role -> its trip's route (the env respawns first)

        def trip_began(role: str) -> None:
            if background is not None and not env.heroes[role].waiting:
                ego = obs[role].ego
                routes[role] = env.heroes[role].route
                background.call_trip_started(ego.x, ego.y, routes[role].length - tolerance)

        def trip_ended(role: str, record: Dict[str, Any]) -> None:
            result.trips.append(record)
            if role in routes:      # the roads it began and ends on
                record.update(approach=routes[role].edges[0], exit=routes[role].edges[-1])
        for role in roles:
            trip_began(role)
        trip = dict.fromkeys(roles, 0)
        trip_start = dict.fromkeys(roles, env.time)
        trip_return = dict.fromkeys(roles, 0.0)
        wire = WireSettings.from_mapping(default_settings()['bandwidth'])
        progress = dict.fromkeys(roles, 0.0)
        for k in range(steps):
            if log and k and k % 100 == 0:
                log(f'{scenario} {mode} seed {seed}: step {k}, outcomes '
                    f'{sorted((o, result.outcomes.count(o)) for o in set(result.outcomes))}')
            if on_progress and progress_every and k and k % progress_every == 0:
                on_progress(k, result)
            sent = dict(pipeline.heard)
            decided = fleet.step(obs, env.time, env.dt)
            heard = {role: len(step.neighbours) for role, step in zip(pipeline.roles,
                                                                      pipeline.steps)}
            received = dict(zip(pipeline.roles, received_bytes(pipeline, sent, wire)))
            decided_on = obs
            obs, rewards, terminations, _, infos = env.step(
                {r: d[0] for r, d in decided.items()})
            if probe is not None:
                probe(env.time, decided_on, trip, fleet)
            if background is not None:
                background.observe(env.time, env.dt, [v for v in env.vehicle_states()
                                                      if not v.role_name])
            for role, info in infos.items():
                if info.get('respawned') and not terminations.get(role, False):
                    # back from waiting for a free start: a new trip begins now
                    trip_start[role] = env.time
                    pipeline.restart(role)
                    fleet.restart(role)
                    trip_began(role)
                if info.get('waiting'):     # parked until a start frees up: no vehicle-step
                    result.waiting_steps += 1
                    continue
                control, level, stopped = decided[role]
                result.stops += int(stopped)
                result.neighbours += heard[role]
                result.call_bytes += received[role]
                trip_return[role] += float(rewards.get(role, 0.0))
                result.told[((role, trip[role]), round(env.time, 2))] = \
                    fleet.told.get(role, frozenset())
                result.steps.append(driving_metrics.VehicleStep(
                    (role, trip[role]), env.time, float(info['ttc']), bool(info['collision']),
                    float(info['accel']), '' if level == NONE else level,
                    conflict_partner(info), own_sensors_see(pipeline, obs[role]),
                    *path_conflict(obs[role], env.dt)))
                length = float(info.get('route_length', 0.0))
                progress[role] = (min(float(info['progress']) / length, 1.0) if length
                                  else 0.0)
                if terminations.get(role, False):
                    outcome = ('reached' if info['reached'] else 'collision'
                               if info['collision'] else 'off_road' if info['off_road']
                               else 'timeout' if info.get('timeout') else 'collision')
                    result.outcomes.append(outcome)
                    result.progress.append(progress[role])
                    result.returns.append(trip_return[role])
                    trip_return[role] = 0.0
                    trip_ended(role, trip_record(role, trip_start[role], env.time, outcome,
                                                 progress[role], length))
                    if info['collision']:
                        result.trips[-1]['hit'] = collision_geometry(
                            obs[role], info['collided_with'], decided[role][1])
                    if log and outcome != 'reached':
                        log(f'{scenario} {mode} seed {seed}: {result.trips[-1]}')
                    trip[role] += 1
                    trip_start[role] = env.time
                    pipeline.restart(role)
                    fleet.restart(role)
                    obs[role] = env.observe(role)
                    trip_began(role)
        for role in roles:      # trips still driving when the run ends
            if env.heroes[role].waiting:    # no trip began: it waits for a free start
                continue
            late = env.time - trip_start[role] > trip_timeout
            result.outcomes.append('timeout' if late else 'cut_short')
            if late:
                result.returns.append(trip_return[role])
            result.progress.append(progress[role])
            trip_ended(role, trip_record(role, trip_start[role], env.time,
                                         result.outcomes[-1], progress[role], math.nan))
    finally:
        env.close()
    result.turn_assisted = fleet.assisted_steps
    if background is not None:
        result.background = background.summary()
        result.background_by_approach = dict(sorted(background.by_approach.items()))
        result.background['success_minus_background_by_approach'] = approach_gap(
            ((t['approach'], t['outcome']) for t in result.trips), background.by_approach)
    result.wall_s = time.time() - started
    if log:
        s = result.summary()
        log(f'{scenario} {mode} seed {seed}: success {s["success_rate"]:.3f} '
            f'({int(s["reached"])}/{s["trips_ended"]}), collisions {int(s["collisions"])} '
            f'rate {100 * s["collision_rate"]:.3f} %, timeouts {int(s["timeouts"])}, '
            f'overrides {100 * s["override_total"]:.2f} %, stops {100 * s["stop_share"]:.1f} %'
            f', turn assist {100 * s["turn_assist_share"]:.1f} %'
            f', first decel {s["first_deceleration_mean_s"]:.2f} s, occluded '
            f'{s["first_deceleration_occluded_mean_s"]:.2f} s over '
            f'{s["occluded_conflicts"]}'
            + (f', the simulator\'s drivers {s["background_success_rate"]:.3f} '
               f'({int(s["background_reached"])}/{int(s["background_trips_ended"])}), CALL '
               f'less theirs by approach {s["success_minus_background_by_approach"]:+.3f}'
               if result.background else '') + f' ({result.wall_s:.0f} s)')
    return result


def rows_for(mode: str, per_seed: Sequence[Any]) -> List[Dict[str, Any]]:
    """
    CSV rows of one mode: mean and 95 % interval over the seeds of every metric.

    `per_seed`: SeedResults or their summaries (dicts, as `--combine` reads them back).
    """
    summaries = [with_background_gap(r if isinstance(r, dict) else r.summary())
                 for r in per_seed]
    routes = int(sum(s['trips_ended'] for s in summaries))
    rows = []
    for metric in METRICS:
        # a summary written before a metric existed counts as missing, not as zero
        mean, low, high, n = mean_interval([s.get(metric, math.nan) for s in summaries])
        rows.append({'mode': mode, 'metric': metric, 'mean': mean, 'ci_low': low,
                     'ci_high': high, 'seeds': n, 'routes': routes})
    return rows


def with_background_gap(summary: Dict[str, Any]) -> Dict[str, Any]:
    """
    Return the summary with the CALL vehicles' success less the simulator's drivers' (if any).

    Both from the same run (`background_trips`): the seed's traffic is the same for both, so
    the difference seed by seed is the sharper comparison.
    """
    if 'background_success_rate' not in summary:
        return summary
    return {**summary, 'success_minus_background':
            summary['success_rate'] - summary['background_success_rate']}


def paired_rows(reference: str, per_seed: Dict[str, Dict[int, Dict[str, Any]]]
                ) -> List[Dict[str, Any]]:
    """
    Rows of the reference mode minus each other mode, seed by seed (`PAIRED_METRICS`).

    `per_seed`: mode -> seed -> summary. Only seeds both modes ran count; per metric the
    mean difference and its Student-t 95 % interval over those seeds, and on how many seeds
    the reference was strictly better (ties are not).
    """
    rows = []
    for mode, other in per_seed.items():
        if mode == reference:
            continue
        seeds = sorted(set(other) & set(per_seed[reference]))
        for metric, higher_better in PAIRED_METRICS.items():
            pairs = [(per_seed[reference][s].get(metric, math.nan),
                      other[s].get(metric, math.nan)) for s in seeds]
            pairs = [(a, b) for a, b in pairs if math.isfinite(a) and math.isfinite(b)]
            mean, low, high, n = mean_interval([a - b for a, b in pairs])
            better = sum((a > b) if higher_better else (a < b) for a, b in pairs)
            rows.append({'mode': mode, 'reference': reference, 'metric': metric,
                         'mean': mean, 'ci_low': low, 'ci_high': high, 'seeds': n,
                         'reference_better': better})
    return rows


def write_csv(path: Path, rows: Sequence[Dict[str, Any]],
              columns: Sequence[str] = CSV_COLUMNS) -> None:
    """Write the rows (floats with 6 significant digits; keys beyond columns left out)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'w', newline='', encoding='utf-8') as stream:
        writer = csv.DictWriter(stream, fieldnames=columns, extrasaction='ignore')
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f'{v:.6g}' if isinstance(v, float) else v)
                             for k, v in row.items()})


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags."""
    parser = argparse.ArgumentParser(prog='call_driving_eval', description=__doc__.strip()
                                     .splitlines()[0])
    parser.add_argument('--scenario', default='four_lane_demo')
    parser.add_argument('--checkpoint', default=None,
                        help='world model + actor-critic (default: the shipped '
                        f'{SHIPPED_CHECKPOINT})')
    parser.add_argument('--modes', nargs='+', default=['lsi', 'local'], choices=MODES)
    parser.add_argument('--seeds', nargs='+', type=int, default=list(DEFAULT_SEEDS))
    parser.add_argument('--steps', type=int, default=1500,
                        help='simulator steps per seed (0.1 s each)')
    parser.add_argument('--c', type=float, nargs='+', default=[DEFAULT_C],
                        help='threshold c of the range gate; several: a sweep (paper Fig. '
                        '19/20), written to driving_<scenario>_c_sweep.csv and its figures')
    parser.add_argument('--trip-timeout', type=float, default=60.0,
                        help='[s] a trip still driving this long ends as a time out')
    parser.add_argument('--set', dest='sets', action='append', default=[],
                        metavar='PARAM=VALUE', help='override a planner.yaml parameter')
    parser.add_argument('--sim-set', dest='sim_sets', action='append', default=[],
                        metavar='KEY=VALUE', help='override a scenario key of call_sim '
                        '(sim.yaml; dotted for nested keys, e.g. '
                        'background.yield_to_controlled=true)')
    parser.add_argument('--quick', action='store_true',
                        help='one seed, 300 steps (a smoke run; not the held-out figure)')
    parser.add_argument('--combine', action='store_true',
                        help='run nothing: build the CSV from the per-seed summaries in '
                        'OUT/driving_runs (seeds run as separate processes)')
    parser.add_argument('--save-every', type=int, default=100,
                        help='write the per-seed summary so far every this many steps (0: '
                        'only at the end)')
    parser.add_argument('--out', default='results')
    parser.add_argument('--threads', type=int, default=1)
    return parser


def shipped_checkpoint() -> str:
    """Path of call_world_model's shipped default checkpoint in this source tree."""
    here = Path(__file__).resolve()
    for root in here.parents:
        candidate = root / 'src' / 'call_world_model' / 'checkpoints' / SHIPPED_CHECKPOINT
        if candidate.is_file():
            return str(candidate)
    from ament_index_python.packages import get_package_share_directory
    return os.path.join(get_package_share_directory('call_world_model'), 'checkpoints',
                        SHIPPED_CHECKPOINT)


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point: run every mode and seed, write results/driving_<scenario>.csv."""
    args = build_parser().parse_args(argv)
    if args.quick:
        args.seeds, args.steps = args.seeds[:1], min(args.steps, 300)
    torch.set_num_threads(args.threads)
    try:
        planner = planner_params(dict(item.split('=', 1) for item in args.sets))
        sim_overrides = parse_sets(args.sim_sets)
        scenario_with(args.scenario, sim_overrides)         # unknown keys fail here
        checkpoint_path = args.checkpoint or shipped_checkpoint()
        loaded = None if args.combine else load_policy_models(checkpoint_path)
    except (ValueError, FileNotFoundError, checkpoint.CheckpointError) as exc:
        print(f'call_driving_eval: error: {exc}', file=sys.stderr)
        return 2

    def log(line: str) -> None:
        print(f'call_driving_eval: {line}', flush=True)

    runs = Path(args.out) / ('driving_runs_quick' if args.quick else 'driving_runs')
    # which model drove: a summary must name it, since each mode may have its own (Table 6)
    model = None if args.combine else {
        'checkpoint': os.path.basename(checkpoint_path),
        'sha256': manifest.sha256(checkpoint_path)}
    sweep = len(args.c) > 1
    rows = []
    by_mode: Dict[str, Dict[int, Dict[str, Any]]] = {}
    for c, mode in ((c, mode) for c in args.c for mode in args.modes):
        per_seed = []
        for seed in args.seeds:
            path = runs / run_name(args.scenario, mode, seed, c)
            if args.combine:
                if not path.is_file():
                    log(f'no summary {path}: seed {seed} left out')
                    continue
                record = json.loads(path.read_text())
                per_seed.append(with_fault_counts(record['summary'], record['trips']))
                by_mode.setdefault(mode, {})[seed] = per_seed[-1]
                continue
            runs.mkdir(parents=True, exist_ok=True)

            def save(done: int, result: SeedResult, path=path, mode=mode, seed=seed) -> None:
                # open trips are left out of a partial summary: it counts ended trips only
                path.write_text(json.dumps({
                    'scenario': args.scenario, 'mode': mode, 'seed': seed, 'steps': done,
                    'steps_asked': args.steps, 'c': c, 'model': model,
                    'planner_overrides': args.sets, 'sim_overrides': args.sim_sets,
                    'wall_s': result.wall_s or time.time() - started,
                    'summary': result.summary(), 'trips': result.trips,
                    'override_causes': result.override_causes,
                    'conflicts': conflict_records(result.steps, told=result.told),
                    'path_conflicts': conflict_records(result.steps, path=True,
                                                       told=result.told),
                    'waiting_steps': result.waiting_steps,
                    'background_by_approach': result.background_by_approach}, indent=1,
                    default=float))
            started = time.time()
            result = drive_seed(loaded, mode, args.scenario, seed, args.steps, planner,
                                c, args.trip_timeout, overrides=sim_overrides, log=log,
                                progress_every=args.save_every, on_progress=save)
            per_seed.append(result.summary())
            save(args.steps, result)
        if per_seed:
            rows += [dict(row, c=c) for row in rows_for(mode, per_seed)]
    name = (f'driving_{args.scenario}{"_c_sweep" if sweep else ""}'
            f'{"_quick" if args.quick else ""}.csv')
    write_csv(Path(args.out) / name, rows, CSV_COLUMNS + (('c',) if sweep else ()))
    if not sweep and len(by_mode) > 1 and 'lsi' in by_mode:
        paired = Path(args.out) / name.replace('.csv', '_paired.csv')
        write_csv(paired, paired_rows('lsi', by_mode), PAIRED_COLUMNS)
        log(f'wrote {paired}')
    if sweep:
        from call_experiments.plots import threshold_figures    # matplotlib: only here
        threshold_figures(Path(args.out), sweep_points(rows))
    log(f'wrote {Path(args.out) / name}')
    return 0


def conflict_records(steps: Sequence[driving_metrics.VehicleStep], path: bool = False,
                     told: Optional[Dict[tuple, frozenset]] = None) -> List[Dict[str, Any]]:
    """
    Per conflict (`call_sim.driving_metrics`; `path`: per path conflict): when, with whom, how.

    `first_told_s`: the first step of the look-back at which the ego's monitor held the
    partner only through sharing (`told_ids`), relative to the start (None: never).

    `last_unseen_s` (None: the ego's sensors saw the partner throughout the look-back) lets
    the occluded figures be read for any occlusion window.
    """
    def finite(value: float, digits: int) -> Optional[float]:
        return round(value, digits) if math.isfinite(value) else None
    by_trip: Dict[Any, List[tuple]] = {}
    for (trip, t), ids in sorted((told or {}).items(), key=lambda item: item[0][1]):
        by_trip.setdefault(trip, []).append((t, ids))
    return [{'trip': list(c.trip) if isinstance(c.trip, tuple) else c.trip,
             'start_s': round(c.start, 2), 'partner': c.partner,
             'min_ttc_s': round(c.min_ttc, 3), 'collided': c.collided,
             'first_deceleration_s': finite(c.first_deceleration, 2),
             'last_unseen_s': finite(c.last_unseen, 2), 'occluded': c.occluded,
             'first_told_s': first_told(by_trip.get(c.trip, ()), c)}
            for c in (driving_metrics.path_conflicts if path
                      else driving_metrics.conflicts)(steps, CONVENTIONS)]


def first_told(told: Sequence[tuple], conflict: Any) -> Optional[float]:
    """
    First look-back step at which sharing alone held the conflict's partner, or None.

    `told`: the trip's (time, `told_ids`) in time order.
    """
    start = conflict.start - CONVENTIONS.decel_lookback
    for t, ids in told:
        if t > conflict.start + 1e-6:
            break
        if t >= start - 1e-6 and conflict.partner in ids:
            return round(t - conflict.start, 2)
    return None


def c_tag(c: float) -> str:
    """Return the part of a results file name that names c: empty at the default, else `_c<c>`."""
    return '' if c == DEFAULT_C else f'_c{c:g}'


def run_name(scenario: str, mode: str, seed: int, c: float) -> str:
    """File name of one run's summary; c is named only when it is not the default."""
    return f'{scenario}_{mode}{c_tag(c)}_{seed}.json'


def sweep_points(rows: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per c of CALL (lsi) the mean trip return and bytes per ego-step, for Fig. 19/20."""
    points: Dict[float, Dict[str, Any]] = {}
    for row in rows:
        if row['mode'] == 'lsi' and row['metric'] in ('mean_trip_return',
                                                      'call_bytes_per_ego_step'):
            key = 'mean_return' if row['metric'] == 'mean_trip_return' else row['metric']
            points.setdefault(row['c'], {'threshold': row['c']}).update(
                {key: row['mean'], f'{key}_low': row['ci_low'], f'{key}_high': row['ci_high']})
    return list(points.values())


if __name__ == '__main__':
    sys.exit(main())

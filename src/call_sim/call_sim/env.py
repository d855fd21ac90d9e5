"""
MultiVehicleEnv: PettingZoo-style parallel env over SUMO with CALL vehicles as agents.

CALL vehicles (`hero0..heroN-1`) move by the kinematic bicycle model driven by CARLA-style
controls and are placed in SUMO with `moveToXY(keepRoute=2)`; background vehicles use SUMO's
car-following and lane-change models and react to them where SUMO's lanes let them see them
(with `background.yield_to_controlled` also wherever a CALL vehicle's box is in their path:
`call_sim.background_yield`). Measures (collision, off-road, TTC,
jerk, arrival) and the App. E.1 reward are computed here per step.

libsumo runs ONE simulation per process (a second `start` silently replaces the first), so
only one MultiVehicleEnv may be open per process: creating another before `close()` raises.
Run parallel rollouts in separate processes.
"""
from dataclasses import dataclass, field
import math
from pathlib import Path
from typing import Any, Mapping

from call_sim.background_yield import yield_speeds
from call_sim.config import load_yaml
from call_sim.measures import collision_lists, jerk, ttc_partners
from call_sim.reward import reward_terms, RewardInputs, total_reward, validate_reward_config
from call_sim.road_network import RoadNetwork
from call_sim.routes import point_on_lane, Route, RoutePlanner
from call_sim.scenario import load_scenario
from call_sim.types import AgentObservation, Lane, VehicleState
from call_vehicle.actions import ActionSet
from call_vehicle.vehicle_control import ControlModel, sanitize, VehicleControl
from call_vehicle.vehicle_model import BicycleModel, BicycleState
import libsumo
import numpy as np

_OPEN_ENV: 'MultiVehicleEnv | None' = None
HERO_TYPE, BACKGROUND_TYPE, PARKED_TYPE, HELD_TYPE = 'call_hero', 'background', 'parked', 'held'
BACKGROUND_PREFIX = 'bg'        # SUMO ids of the background vehicles (not parked or held)
#: [m] where a CALL vehicle that waits for a free start is kept: far outside every map, so
#: no sensor, message range or measure reaches it (one slot per actor id along x)
GARAGE = (-1.0e5, -1.0e5)


@dataclass
class _Hero:
    """Mutable per-CALL-vehicle bookkeeping."""

    actor_id: int
    state: BicycleState
    route: Route
    control: VehicleControl = field(default_factory=VehicleControl)
    accel: float = 0.0
    previous_accel: float = 0.0
    progress: float = 0.0
    waypoints: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    started: float = 0.0        # [s] simulation time the current trip began
    waiting: bool = False       # no free start yet: parked in the GARAGE, out of SUMO


class MultiVehicleEnv:
    """Parallel multi-agent env: `reset(seed)`, `step({role: VehicleControl})`, `agents`."""

    metadata = {'name': 'call_multi_vehicle_v0'}

    def __init__(self, scenario: Mapping[str, Any],
                 vehicle_config: Mapping[str, Any] | None = None,
                 reward_config: Mapping[str, Any] | None = None):
        global _OPEN_ENV
        if _OPEN_ENV is not None:
            raise RuntimeError(
                'a MultiVehicleEnv is already open in this process; libsumo runs one '
                'simulation per process: close() it first or use another process')
        self.scenario = dict(scenario)
        vehicle_config = vehicle_config or load_yaml('vehicle.yaml')
        self.bicycle = BicycleModel.from_config({**vehicle_config['bicycle'],
                                                 'dt': float(self.scenario['dt'])})
        self.control_model = ControlModel.from_config(vehicle_config['control'])
        self.action_set = ActionSet.from_config(vehicle_config['actions'])
        self.vehicle_length = float(vehicle_config['vehicle']['length'])
        self.vehicle_width = float(vehicle_config['vehicle']['width'])
        self.reward_config = reward_config or load_yaml('reward.yaml')
        validate_reward_config(self.reward_config)
        self.road = RoadNetwork(self.scenario['map'])
        self.planner = RoutePlanner(self.road, self.scenario['route'])
        self.dt = float(self.scenario['dt'])
        self.possible_agents = [f'hero{i}' for i in range(int(self.scenario['num_controlled']))]
        self.agents: list[str] = []
        self.step_count = 0
        self.command_issues = {'rejected': 0, 'clamped': 0}
        self._paths = self._background_paths()
        self._started = False
        self._closed = False
        _OPEN_ENV = self

    @classmethod
    def from_scenario(cls, path_or_dict: str | Path | Mapping[str, Any],
                      **kwargs: Any) -> 'MultiVehicleEnv':
        """Create from a scenario name, YAML path or dict (see config/sim.yaml)."""
        return cls(load_scenario(path_or_dict), **kwargs)

    # -- map -------------------------------------------------------------------------------
    def lanes(self) -> list[Lane]:
        """Every lane (incl. junction-internal ones) as a centreline polyline with width."""
        return list(self.road.lanes)

    def opendrive(self) -> str:
        """Return the map as OpenDRIVE text (as published on /carla/world_info)."""
        return self.road.opendrive()

    @property
    def time(self) -> float:
        """Return the simulation time in seconds since reset."""
        return self.step_count * self.dt

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Stop SUMO and free this process's simulation slot."""
        global _OPEN_ENV
        if self._started:
            self._consume_pending_moves()
            libsumo.close()
            self._started = False
        if _OPEN_ENV is self:
            _OPEN_ENV = None
        self._closed = True

    @staticmethod
    def _consume_pending_moves() -> None:
        """
        Let the running simulation take its pending moveToXY calls before it ends.

        moveToXY (a respawn after the last step) leaves a pending remote-control move for
        which libsumo keeps a raw vehicle pointer beyond its simulation; load() or close()
        would free the vehicle and the next simulation's first step would segfault.
        """
        libsumo.simulationStep()

    def __enter__(self) -> 'MultiVehicleEnv':
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reset(self, seed: int | None = None, options: Mapping[str, Any] | None = None
              ) -> tuple[dict[str, AgentObservation], dict[str, dict[str, Any]]]:
        """
        Start a new episode; the same seed gives the same episode.

        `options['starts'][role] = {'edge', 'lane', 'pos', 'speed'}` fixes where a CALL
        vehicle starts (SUMO edge id, lane index, metres along the edge, m/s); an optional
        `'next'` fixes the edge its route takes after the start edge, an optional
        `'lane_changes'` = {edge: [(pos, lane), ...]} its lane changes (`RoutePlanner.sample`).

        `options['parked'] = [{'edge', 'lane', 'pos', 'length', 'width'}, ...]` places
        stationary vehicles (a parked truck: `pos` is its front, metres along the edge, as
        SUMO counts), held at speed 0 for the whole episode. `options['held']` = [{'route',
        'lane', 'pos', 'length', 'width', 'speed'}, ...] places vehicles held at a fixed speed
        [m/s] along a route (SUMO edge ids, starting on the first, lane index on it; a moving
        truck of a scripted encounter): they follow their lanes, never change lane, and do
        not slow for anything (a scripted motion, like the parked ones'), so a script keeps
        them clear of the end of their route. Both are vehicles like the background's for
        every observation, measure and sensor (they occlude); the initial background does not
        keep clear of them (use them with little or no background).
        """
        if self._closed:
            raise RuntimeError('reset() on a closed MultiVehicleEnv')
        seed = int(self.scenario['seed'] if seed is None else seed)
        self._rng = np.random.default_rng(seed)
        args = ['-n', str(self.road.net_path), '--step-length', str(self.dt),
                '--seed', str(seed), '--no-step-log', 'true', '--no-warnings', 'true',
                '--collision.action', 'none', '--time-to-teleport', '-1',
                '--default.speeddev', '0.1', '--eager-insert', 'true']
        if self._started:
            self._consume_pending_moves()
            libsumo.load(args)
        else:
            libsumo.start(['sumo'] + args)
            self._started = True
        self.step_count = 0
        self._bg_counter = 0
        self._yielding: set[str] = set()     # background vehicles under a speed cap
        self._route_counter = 0
        self._actor_ids: dict[str, int] = {}
        self._dims: dict[str, tuple[float, float]] = {}
        self._previous_speed: dict[str, float] = {}
        self._add_types_and_paths()
        self.heroes: dict[str, _Hero] = {}
        self.agents = list(self.possible_agents)
        starts = dict((options or {}).get('starts', {}))
        unknown = set(starts) - set(self.agents)
        if unknown:
            raise ValueError(f'options.starts names unknown roles {sorted(unknown)}')
        for i, role in enumerate(self.agents):
            self._actor_ids[role] = i + 1
            self.heroes[role] = self._spawn_hero(role, i + 1, start=starts.get(role))
        self._add_held(PARKED_TYPE, [dict(spec, route=[spec['edge']], speed=0.0)
                                     for spec in (options or {}).get('parked', [])])
        self._add_held(HELD_TYPE, list((options or {}).get('held', [])))
        self._add_initial_background()
        libsumo.simulationStep()
        self._read_world()
        for hero in self.heroes.values():
            self._replan(hero)
        obs = {role: self.observe(role) for role in self.agents}
        infos = {role: self._measure(role, None, [])[0] for role in self.agents}
        return obs, infos

    # -- stepping --------------------------------------------------------------------------
    def step(self, actions: Mapping[str, VehicleControl | int]):
        """
        Advance 0.1 s. Missing roles keep their last command (as CARLA does).

        An `int` action is an index into the ActionSet (converted with the control model).
        Returns (obs, rewards, terminations, truncations, infos) for the agents alive
        before the step; finished agents leave `agents` unless the scenario respawns them.
        """
        if not self._started:
            raise RuntimeError('step() before reset()')
        issues: dict[str, list[str]] = {}
        entered = self._retry_waiting()
        for role in self.agents:
            hero = self.heroes[role]
            issues[role] = []
            if hero.waiting:
                continue
            issues[role] = self._apply_command(hero, actions.get(role))
            accel, steer = self.control_model.to_accel(hero.control, hero.state.speed)
            new_state = self.bicycle.step(hero.state, accel, steer)
            hero.previous_accel = hero.accel
            hero.accel = (new_state.speed - hero.state.speed) / self.dt
            hero.state = new_state
            self._place_hero(role, hero)
        self._yield_background()
        libsumo.simulationStep()
        self.step_count += 1
        self._respawn_arrived_background()
        self._read_world()
        if self.step_count % int(self.scenario['K']) == 0:
            for role in self.agents:
                self._replan(self.heroes[role])
        obs, rewards, terminations, truncations, infos = {}, {}, {}, {}, {}
        truncate = self.step_count >= int(self.scenario['episode_steps'])
        term_cfg = self.scenario['termination']
        limit = float(self.scenario.get('trip_time_limit', 0.0))
        for role in self.agents:
            infos[role], rewards[role] = self._measure(role, actions.get(role), issues[role])
            info = infos[role]
            info['respawned'] = role in entered
            info['waiting'] = self.heroes[role].waiting
            info['timeout'] = bool(limit > 0.0 and not info['reached']
                                   and self.time - self.heroes[role].started >= limit - 1e-9)
            terminations[role] = not info['waiting'] and bool(
                info['reached'] or (term_cfg['on_collision'] and info['collision'])
                or (term_cfg['on_off_road'] and info['off_road']) or info['timeout'])
            truncations[role] = truncate
            obs[role] = self.observe(role)
        for role in list(self.agents):
            if not (terminations[role] or truncations[role]):
                continue
            if self.scenario['respawn_done'] and not truncations[role]:
                hero = self._spawn_hero(role, self.heroes[role].actor_id, in_traffic=True)
                if hero is None:        # no free start: wait in the garage, retry each step
                    hero = self._park(role, self.heroes[role])
                hero.started = self.time
                self.heroes[role] = hero
                self._replan(hero)
                infos[role]['respawned'] = not hero.waiting
            else:
                self.agents.remove(role)
                if not self.heroes[role].waiting:
                    libsumo.vehicle.remove(role)
        if any(terminations.values()) or truncate or entered:
            self._compose()  # respawned / removed CALL vehicles, for observe() and states
        return obs, rewards, terminations, truncations, infos

    def _yield_background(self) -> None:
        """
        Cap the speed of background drivers with a CALL vehicle in their path (`yield_speeds`).

        With the scenario's `background.yield_to_controlled`; a cap holds (SUMO `setSpeed`)
        while the CALL vehicle stays in the corridor, and is released when it has gone. Read
        on the last snapshot's background and the CALL vehicles' poses for the coming step.
        """
        cfg = self.scenario['background']
        if not cfg.get('yield_to_controlled', False):
            return
        heroes = np.array([self._hero_row(h) for h in self.heroes.values()
                           if not h.waiting]).reshape(-1, 6)
        caps = yield_speeds(self._bg_rows, heroes, float(cfg['yield_headway']),
                            float(cfg['yield_standstill']), float(cfg['yield_decel']),
                            float(cfg['yield_margin']))
        capped = set()
        for vid, cap in zip(self._bg_ids, caps):
            # held while the CALL vehicle is there, also once it stands: released, SUMO
            # would creep on towards a vehicle it does not see
            if vid.startswith(BACKGROUND_PREFIX) and np.isfinite(cap):
                libsumo.vehicle.setSpeed(vid, float(cap))
                capped.add(vid)
        for vid in (self._yielding - capped) & set(self._bg_ids):
            libsumo.vehicle.setSpeed(vid, -1.0)        # SUMO's own driving again
        self._yielding = capped

    def _park(self, role: str, hero: _Hero) -> _Hero:
        """
        Take a CALL vehicle that found no free start out of the world until one frees up.

        It leaves SUMO (the background drives on) and stands in the GARAGE, where it meets
        nothing; `step` reports it with `info['waiting']`, never terminates it, and retries
        its respawn every step (`_retry_waiting`).
        """
        libsumo.vehicle.remove(role)
        state = BicycleState(GARAGE[0] + 50.0 * hero.actor_id, GARAGE[1], 0.0, 0.0)
        return _Hero(hero.actor_id, state, hero.route, waiting=True,
                     waypoints=np.zeros((0, 2)))

    def _retry_waiting(self) -> set[str]:
        """Respawn the waiting CALL vehicles whose start is free now; return their roles."""
        entered = set()
        for role in self.agents:
            hero = self.heroes[role]
            if not hero.waiting:
                continue
            new = self._spawn_hero(role, hero.actor_id, in_traffic=True, into_sumo=True)
            if new is not None:
                new.started = self.time
                self.heroes[role] = new
                self._replan(new)
                entered.add(role)
        return entered

    def _apply_command(self, hero: _Hero, command: VehicleControl | int | None) -> list[str]:
        if command is None:
            return []
        if isinstance(command, (int, np.integer)):
            accel, steer = self.action_set.action(int(command))
            command = self.control_model.to_control(accel, steer, hero.state.speed)
        clean, reasons = sanitize(command)
        if clean is None:
            self.command_issues['rejected'] += 1
        else:
            hero.control = clean
            if reasons:
                self.command_issues['clamped'] += 1
        return reasons

    def _place_hero(self, role: str, hero: _Hero) -> None:
        s = hero.state
        half = 0.5 * self.vehicle_length
        front_x, front_y = s.x + half * math.cos(s.yaw), s.y + half * math.sin(s.yaw)
        libsumo.vehicle.moveToXY(role, '', -1, front_x, front_y,
                                 90.0 - math.degrees(s.yaw), keepRoute=2)
        libsumo.vehicle.setSpeed(role, s.speed)

    # -- world state -----------------------------------------------------------------------
    def _read_world(self) -> None:
        """
        Snapshot every vehicle: self.states (list) and self.rows (N, 6) arrays.

        Background accelerations are finite differences of SUMO speeds (one getter less).
        """
        getter = libsumo.vehicle
        ids = [vid for vid in getter.getIDList() if vid not in self.heroes]
        for vid in ids:
            if vid not in self._dims:
                self._dims[vid] = (getter.getLength(vid), getter.getWidth(vid))
                self._actor_ids[vid] = len(self.possible_agents) + 1 + len(self._actor_ids)
        raw = np.array([(*getter.getPosition(vid), getter.getAngle(vid), getter.getSpeed(vid),
                         *self._dims[vid]) for vid in ids], dtype=np.float64).reshape(-1, 6)
        yaw = np.radians(90.0 - raw[:, 2])
        half = 0.5 * raw[:, 4]
        bg = np.column_stack([raw[:, 0] - half * np.cos(yaw), raw[:, 1] - half * np.sin(yaw),
                              yaw, raw[:, 3], raw[:, 4], raw[:, 5]])
        previous = self._previous_speed
        speeds = raw[:, 3].tolist()
        accel = [(v - previous.get(vid, v)) / self.dt for vid, v in zip(ids, speeds)]
        self._previous_speed = dict(zip(ids, speeds))
        actor_ids = self._actor_ids
        self._bg_states = [VehicleState(actor_ids[vid], '', *row[:4], row[4], row[5], a)
                           for vid, row, a in zip(ids, bg.tolist(), accel)]
        self._bg_rows = bg
        self._bg_ids = ids
        self._compose()

    def _compose(self) -> None:
        """Join CALL vehicles (in `agents` order) and background; recompute the pair measures."""
        states, hero_rows = [], []
        for role in self.agents:
            h = self.heroes[role]
            s = h.state
            states.append(VehicleState(h.actor_id, role, s.x, s.y, s.yaw, s.speed,
                                       self.vehicle_length, self.vehicle_width, h.accel))
            hero_rows.append(self._hero_row(h))
        self.states = states + self._bg_states
        self.rows = np.vstack([np.asarray(hero_rows, dtype=np.float64).reshape(-1, 6),
                               self._bg_rows])
        heroes = np.arange(len(self.agents))
        self._hits = collision_lists(self.rows[heroes], self.rows, heroes)
        self._ttc, self._leader_gap, self._ttc_partner = ttc_partners(
            self.rows[heroes], self.rows, heroes, self.scenario['measures']['ttc_lateral_margin'])

    def _hero_row(self, hero: _Hero) -> tuple:
        """Return a CALL vehicle as a `call_sim.measures` row (x, y, yaw, speed, length, width)."""
        s = hero.state
        return (s.x, s.y, s.yaw, s.speed, self.vehicle_length, self.vehicle_width)

    def vehicle_states(self) -> list[VehicleState]:
        """Every vehicle of the current step (CALL vehicles first)."""
        return list(self.states)

    def _index_of(self, role: str) -> int:
        return self.agents.index(role)

    def observe(self, role: str) -> AgentObservation:
        """Return the observation of a live CALL vehicle at the current step."""
        i = self._index_of(role)
        hero = self.heroes[role]
        return AgentObservation(self.time, self.states[i], self.states[:i] + self.states[i + 1:],
                                hero.waypoints.copy())

    def _measure(self, role: str, command: Any, issues: list[str]
                 ) -> tuple[dict[str, Any], float]:
        i = self._index_of(role)
        hero = self.heroes[role]
        hit = self._hits[i]
        ttc, leader_gap = float(self._ttc[i]), float(self._leader_gap[i])
        partner = int(self._ttc_partner[i])
        where = self.road.locate(hero.state.x, hero.state.y)
        hero.progress, route_distance, _ = hero.route.project(
            hero.state.x, hero.state.y, hero.progress - 10.0)
        reached = (hero.progress >= hero.route.length
                   - float(self.scenario['route']['reach_tolerance'])
                   and route_distance < 3.5)
        info = {
            'collision': bool(len(hit)),
            'collided_with': [self.states[j].actor_id for j in hit],
            'off_road': where.edge_excess > float(self.scenario['measures']['off_road_margin']),
            'lane_id': where.lane_id,
            'ttc': ttc,
            # actor id of the vehicle the TTC is with (None when the TTC is inf)
            'ttc_partner': self.states[partner].actor_id if partner >= 0 else None,
            'leader_gap': leader_gap,
            'jerk': jerk(hero.accel, hero.previous_accel, self.dt),
            'accel': hero.accel,
            'speed': hero.state.speed,
            'reached': bool(reached),
            'progress': hero.progress,
            'route_length': hero.route.length,
            'route_distance': route_distance,
            'command_issues': list(issues),
            'respawned': False,
        }
        terms = reward_terms(RewardInputs(
            ttc=ttc, collision=info['collision'], jerk=info['jerk'], accel=hero.accel,
            reached=info['reached'], speed=hero.state.speed, leader_gap=leader_gap,
            yaw=hero.state.yaw, lane_yaw=where.lane_yaw, route_distance=route_distance),
            self.reward_config['terms'])
        info['reward_terms'] = terms
        return info, total_reward(terms, self.reward_config['weights'])

    def _replan(self, hero: _Hero) -> None:
        hero.progress = hero.route.project(hero.state.x, hero.state.y, hero.progress - 10.0)[0]
        hero.waypoints = hero.route.window(hero.progress,
                                           float(self.scenario['route']['horizon']))

    # -- spawning --------------------------------------------------------------------------
    def _background_paths(self) -> list[tuple[str, ...]]:
        """Every edge path from any normal edge to a sink (small maps: enumerated)."""
        net = self.road.net
        paths: list[tuple[str, ...]] = []

        def walk(path: tuple[str, ...]) -> None:
            nxt = sorted(e.getID() for e in net.getEdge(path[-1]).getOutgoing()
                         if e.getFunction() != 'internal' and e.getID() not in path)
            if not nxt:
                paths.append(path)
            for e in nxt:
                walk(path + (e,))
        for edge in sorted(e.getID() for e in net.getEdges(withInternal=False)):
            walk((edge,))
        return paths

    def _add_types_and_paths(self) -> None:
        libsumo.vehicletype.copy('DEFAULT_VEHTYPE', HERO_TYPE)
        libsumo.vehicletype.setLength(HERO_TYPE, self.vehicle_length)
        libsumo.vehicletype.setWidth(HERO_TYPE, self.vehicle_width)
        libsumo.vehicletype.setMaxSpeed(HERO_TYPE, self.bicycle.max_speed)
        bg = self.scenario['background']
        libsumo.vehicletype.copy('DEFAULT_VEHTYPE', BACKGROUND_TYPE)
        libsumo.vehicletype.setLength(BACKGROUND_TYPE, float(bg['length']))
        libsumo.vehicletype.setWidth(BACKGROUND_TYPE, float(bg['width']))
        libsumo.vehicletype.setMaxSpeed(BACKGROUND_TYPE,
                                        float(self.scenario['speeds']['background_max']))
        self._bg_types = [(BACKGROUND_TYPE, 1.0)]
        for entry in bg['types']:
            # long vehicles (trucks, buses) with their own size: SUMO's own lengths are what
            # every observation and the BEV read back, so they are drawn as long as they are
            type_id = f"{BACKGROUND_TYPE}_{entry['name']}"
            libsumo.vehicletype.copy('DEFAULT_VEHTYPE', type_id)
            libsumo.vehicletype.setLength(type_id, float(entry['length']))
            libsumo.vehicletype.setWidth(type_id, float(entry['width']))
            libsumo.vehicletype.setMaxSpeed(type_id, float(entry['max_speed']))
            self._bg_types.append((type_id, float(entry['share'])))
        self._bg_types[0] = (BACKGROUND_TYPE, 1.0 - sum(s for _, s in self._bg_types[1:]))
        for k, path in enumerate(self._paths):
            libsumo.route.add(f'path{k}', list(path))

    def _spawn_hero(self, role: str, actor_id: int, in_traffic: bool = False,
                    start: Mapping[str, Any] | None = None,
                    into_sumo: bool = False) -> _Hero | None:
        """
        Draw a route whose start is clear of every placed vehicle, add/move the vehicle.

        In traffic (a respawn) the vehicle is moved, or added to SUMO when `into_sumo` (it
        waited outside); None when no start is free there, so that it waits. At reset no free
        start is a scenario with more vehicles than its map holds: that fails fast.
        """
        clearance = float(self.scenario['route']['spawn_clearance'])
        # distances are between centres, less how much longer than a car the other is: a
        # truck's centre 8 m away is as near as a car's 4.4 m (its rear reaches that far)
        occupied = [(h.state.x, h.state.y, 0.0) for r, h in getattr(self, 'heroes', {}).items()
                    if r != role]
        if in_traffic:
            occupied += [(s.x, s.y, max(0.5 * (s.length - self.vehicle_length), 0.0))
                         for s in self.states if s.role_name != role]
        occupied = np.asarray(occupied, dtype=np.float64).reshape(-1, 3)
        occupied_xy, longer = occupied[:, :2], occupied[:, 2]
        need = self.vehicle_length + 3.0
        if start is not None:
            route = self.planner.sample(self._rng, (str(start['edge']), int(start['lane']),
                                                    float(start['pos'])),
                                        next_edge=start.get('next'),
                                        lane_changes=start.get('lane_changes'))
            speed = float(start['speed'])
        else:
            best, best_free = None, -1.0
            # a respawn whose start window is full of traffic (dense merges) starts anywhere
            # on a source edge rather than end the run
            windows = (True, False) if in_traffic else (True,)
            for draw in range(100 * len(windows)):
                if draw >= 100 and best_free >= need:
                    break
                candidate = self.planner.sample(self._rng, in_window=windows[draw // 100])
                xy = candidate.points[0]
                free = ((np.hypot(*(occupied_xy - xy).T) - longer).min() if len(occupied_xy)
                        else math.inf)
                if free > best_free:
                    best, best_free = candidate, free
                if free >= clearance:
                    break
            if in_traffic and best_free < need and len(occupied_xy):
                # the draws missed: the freest of every start a draw could make
                sources, points = self._starts()
                free = (np.hypot(points[:, None, 0] - occupied_xy[None, :, 0],
                                 points[:, None, 1] - occupied_xy[None, :, 1])
                        - longer[None, :]).min(1)
                j = int(free.argmax())
                if free[j] > best_free:
                    best, best_free = self.planner.sample(self._rng, sources[j]), free[j]
            if best_free < need:
                if in_traffic:
                    return None
                raise RuntimeError(f'no free start found for {role} in {draw + 1} draws: too '
                                   f'many vehicles for map {self.road.name}')
            route = best
            low, high = self.scenario['speeds']['controlled_initial']
            speed = float(self._rng.uniform(low, high))
        xy = route.points[0]
        state = BicycleState(float(xy[0]), float(xy[1]), route.start_yaw(), speed)
        hero = _Hero(actor_id, state, route)
        if in_traffic and not into_sumo:
            self._place_hero(role, hero)
        else:
            self._route_counter += 1
            route_id = f'{role}_route{self._route_counter}'
            libsumo.route.add(route_id, list(route.edges))
            edge_length = self.road.net.getEdge(route.edges[0]).getLength()
            depart = min(route.start_pos + 0.5 * self.vehicle_length, edge_length)
            libsumo.vehicle.add(role, route_id, typeID=HERO_TYPE, departPos=f'{depart:.3f}',
                                departLane=str(route.start_lane),
                                departSpeed=f'{state.speed:.3f}')
            libsumo.vehicle.setSpeedMode(role, 0)
            libsumo.vehicle.setLaneChangeMode(role, 0)
            if into_sumo:
                self._place_hero(role, hero)
        return hero

    def _add_held(self, kind: str, held: list[Mapping[str, Any]]) -> None:
        """
        Add the vehicles of `reset`'s `options['parked']` or `['held']` (`kind`).

        Each keeps its speed for the whole episode: SUMO's speed checks and lane changes
        are off for it, so nothing but the script decides how it moves.
        """
        for k, spec in enumerate(held):
            length, width = float(spec['length']), float(spec['width'])
            speed = float(spec['speed'])
            if not (length > 0.0 and width > 0.0):
                raise ValueError(f'{kind} vehicle {k}: length and width must be > 0')
            if not (math.isfinite(speed) and speed >= 0.0):
                raise ValueError(f'{kind} vehicle {k}: speed must be finite and >= 0')
            type_id, vid = f'{kind}{k}', f'{kind}{k}'
            libsumo.vehicletype.copy('DEFAULT_VEHTYPE', type_id)
            libsumo.vehicletype.setLength(type_id, length)
            libsumo.vehicletype.setWidth(type_id, width)
            libsumo.route.add(f'{vid}_route', [str(edge) for edge in spec['route']])
            libsumo.vehicle.add(vid, f'{vid}_route', typeID=type_id,
                                departPos=f"{float(spec['pos']):.3f}",
                                departLane=str(int(spec['lane'])), departSpeed=f'{speed:g}')
            libsumo.vehicle.setSpeedMode(vid, 0)
            libsumo.vehicle.setLaneChangeMode(vid, 0)
            libsumo.vehicle.setSpeed(vid, speed)

    def _starts(self) -> tuple[list[tuple[str, int, float]], np.ndarray]:
        """Every start a respawn may take, 1 m apart (computed once per map)."""
        if getattr(self, '_start_grid', None) is None:
            self._start_grid = self.planner.start_positions(1.0)
        return self._start_grid

    def _add_background(self, path_index: int, lane: int, pos: float | str,
                        speed: str) -> None:
        vid = f'{BACKGROUND_PREFIX}{self._bg_counter}'
        self._bg_counter += 1
        type_id = BACKGROUND_TYPE
        if len(self._bg_types) > 1:  # no draw without types: their episodes stay as they were
            shares = np.array([max(share, 0.0) for _, share in self._bg_types])
            drawn = int(self._rng.choice(len(shares), p=shares / shares.sum()))
            type_id = self._bg_types[drawn][0]
        libsumo.vehicle.add(vid, f'path{path_index}', typeID=type_id,
                            departPos=str(pos), departLane=str(lane), departSpeed=speed)

    def _paths_from(self, edge: str) -> list[int]:
        return [k for k, p in enumerate(self._paths) if p[0] == edge]

    def _add_initial_background(self) -> None:
        """Spread background vehicles over free slots of every lane, clear of CALL vehicles."""
        spacing = float(self.scenario['background']['slot_spacing'])
        clearance = float(self.scenario['route']['spawn_clearance'])
        heroes = np.array([(h.state.x, h.state.y) for h in self.heroes.values()])
        slots = []
        for edge in sorted(self.road.net.getEdges(withInternal=False), key=lambda e: e.getID()):
            for lane in edge.getLanes():
                shape = np.asarray(lane.getShape())[:, :2]
                for pos in np.arange(spacing, edge.getLength() - 0.5 * spacing, spacing):
                    xy = point_on_lane(shape, lane.getLength(), np.array([pos]))[0]
                    if np.hypot(*(heroes - xy).T).min() >= clearance:
                        slots.append((edge.getID(), lane.getIndex(), float(pos)))
        order = self._rng.permutation(len(slots))
        count = int(self.scenario['num_background'])
        for k in order[:count]:
            edge, lane, pos = slots[k]
            choices = self._paths_from(edge)
            self._add_background(choices[self._rng.integers(len(choices))], lane,
                                 f'{pos:.2f}', 'max')
        for _ in range(max(0, count - len(slots))):
            self._add_background_at_source()

    def _add_background_at_source(self) -> None:
        sources = self.planner.source_edges
        edge = sources[self._rng.integers(len(sources))]
        choices = self._paths_from(edge)
        lanes = self.road.net.getEdge(edge).getLaneNumber()
        self._add_background(choices[self._rng.integers(len(choices))],
                             int(self._rng.integers(lanes)), 'base', 'max')

    def _respawn_arrived_background(self) -> None:
        """Keep the background count constant: every vehicle that left re-enters at a source."""
        for vid in libsumo.simulation.getArrivedIDList():
            self._dims.pop(vid, None)
            self._add_background_at_source()

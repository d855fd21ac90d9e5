"""
Fixed-seed evaluation episodes with every CALL vehicle driven by the world model + planner.

The pipeline is the one the ROS nodes run, through their ROS-free cores: the data collector
of ``call_world_model.collect`` (visibility, range gate, shared information, BEV raster,
``WorldModel.observe_step`` for the whole fleet), then per vehicle the planner core
(``call_planner.model_state.state_from_latent`` from the published z and h, and
``call_planner.replanning.ReplanningPolicy``, i.e. eq. 3 look-ahead) chooses the action.
A recording wrapper around the simulator keeps each vehicle's per-step measures and trips;
the collector subclass accounts the bytes its gate admits (``bandwidth``).
"""
from dataclasses import dataclass, field
import math
from typing import Any, Dict, List, Mapping, Optional

from call_experiments.bandwidth import image_message_size, latent_message_size, WireSettings
from call_planner.model_state import state_from_latent
from call_planner.occupancy_cost import OccupancyConfig, OccupancyCost
from call_planner.replanning import LookaheadConfig, ReplanningPolicy
from call_sim.config import merge
from call_sim.scenario import load_scenario
from call_world_model.collect import CollectConfig, Collector
import numpy as np
import torch


def scenario_with(name: str, overrides: Optional[Mapping[str, Any]] = None) -> dict:
    """Load a call_sim scenario (name or YAML) with experiment overrides (typos fail)."""
    return merge(load_scenario(name), dict(overrides or {}))


@dataclass
class Trip:
    """One CALL vehicle from its start (reset or respawn) to its end."""

    episode: int
    role: str
    outcome: str = ''
    steps: int = 0
    reward: float = 0.0
    progress: float = 0.0  # fraction of the route driven when the trip ended
    number: int = 0        # serial of the trip within the run (its steps carry it)


@dataclass
class StepRecord:
    """One CALL vehicle's measures after one simulator step."""

    episode: int
    role: str
    collision: bool
    off_road: bool
    ttc: float
    reward: float
    time: float = float('nan')    # [s] simulation time since the episode's reset
    accel: float = float('nan')   # [m/s^2] the vehicle's realised acceleration
    trip: int = -1                # Trip.number


class RecordingEnv:
    """Delegating simulator wrapper that records per-vehicle measures and trip outcomes."""

    def __init__(self, env: Any):
        """Wrap ``env`` (anything with the MultiVehicleEnv reset/step API)."""
        self.env = env
        self.steps: List[StepRecord] = []
        self.trips: List[Trip] = []
        self.episodes_started = 0
        self.episodes_done = 0
        self._open: Dict[str, Trip] = {}
        self._trip_count = 0

    def _new_trip(self, episode: int, role: str) -> Trip:
        self._trip_count += 1
        return Trip(episode, role, number=self._trip_count)

    def __getattr__(self, name: str) -> Any:
        """Everything else (lanes, action_set, control_model, ...) is the simulator's."""
        return getattr(self.env, name)

    def reset(self, seed: Optional[int] = None, options: Optional[Mapping] = None):
        """Close unfinished trips as cut short, then start a new episode."""
        self.close_trips()
        obs, infos = self.env.reset(seed=seed, options=options)
        self.episodes_started += 1
        self._open = {role: self._new_trip(self.episodes_started, role) for role in obs}
        return obs, infos

    def close_trips(self) -> None:
        """Mark every open trip as cut short (the fleet's episode ended for someone else)."""
        for trip in self._open.values():
            trip.outcome = 'cut_short'
            self.trips.append(trip)
        self._open = {}

    def step(self, actions: Mapping[str, Any]):
        """Step the simulator and record every vehicle's measures and finished trips."""
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        episode = self.episodes_started
        for role, info in infos.items():
            reward = float(rewards.get(role, 0.0))
            trip = self._open.get(role)
            self.steps.append(StepRecord(
                episode, role, bool(info['collision']), bool(info['off_road']),
                float(info['ttc']), reward, float(getattr(self.env, 'time', float('nan'))),
                float(info.get('accel', float('nan'))), trip.number if trip else -1))
            if trip is None:
                continue
            trip.steps += 1
            trip.reward += reward
            length = float(info.get('route_length', 0.0))
            trip.progress = min(float(info.get('progress', 0.0)) / length, 1.0) if length else 0
            outcome = _outcome(info, terminations.get(role, False), truncations.get(role, False))
            if outcome:
                trip.outcome = outcome
                self.trips.append(trip)
                del self._open[role]
                if info.get('respawned'):
                    self._open[role] = self._new_trip(episode, role)
        if any(terminations.get(r, False) or truncations.get(r, False) for r in infos):
            self.episodes_done += 1
        return obs, rewards, terminations, truncations, infos


def _outcome(info: Mapping[str, Any], terminated: bool, truncated: bool) -> str:
    if terminated:
        if info['collision']:
            return 'collision'
        if info['off_road']:
            return 'off_road'
        if info['reached']:
            return 'reached'
        return 'collision'
    return 'timeout' if truncated else ''


@dataclass
class BandwidthRecord:
    """Bytes one ego receives in one step under CALL and under raw-BEV sharing."""

    role: str
    neighbours: int
    call_bytes: int
    raw_bev_same_bytes: int   # raw BEVs from the same admitted neighbours
    raw_bev_all_bytes: int    # raw BEVs from every other CALL vehicle (share everything)
    senders: tuple = ()       # the admitted neighbours (role names)


class EvaluationCollector(Collector):
    """The training collector with the planner core acting and the gate's bytes accounted."""

    def __init__(self, env: Any, loaded: Any, settings: CollectConfig,
                 lookahead: LookaheadConfig, wire: WireSettings, seed: int = 0,
                 occupancy: Optional[OccupancyConfig] = None):
        """
        Bind the checkpoint's models; ``loaded`` is a ``checkpoint.load`` result.

        ``occupancy``: the look-ahead's occupancy cost (None or weight 0: without it).
        """
        super().__init__(env, loaded.world_model.eval(), settings,
                         actor_critic=loaded.actor_critic.eval(), seed=seed)
        self.lookahead = lookahead
        self.occupancy = (OccupancyCost(self.wm, occupancy)
                          if occupancy is not None and occupancy.weight > 0
                          and OccupancyCost.supports(self.wm) else None)
        self.wire = wire
        self.bandwidth: List[BandwidthRecord] = []
        channels = self.cfg.bev_channels
        self.bev_bytes = image_message_size(channels, self.bev_config.size)
        self._sizes: Dict[str, int] = {}
        self._post: Optional[Dict[str, torch.Tensor]] = None

    def _begin_episode(self) -> None:
        super()._begin_episode()
        self._policies = {
            role: ReplanningPolicy(self.wm, self.actor_critic, len(self.action_set),
                                   self.lookahead,
                                   torch.Generator().manual_seed(self.seed + 7919 * i
                                                                 + 104729 * self.episodes),
                                   self.occupancy)
            for i, role in enumerate(self.roles)}
        self._sizes = {}

    def _neighbours(self, role: str, ego: Any) -> List[str]:
        names = super()._neighbours(role, ego)
        call_bytes = sum(self._message_size(name) for name in names)
        others = sum(1 for name in self._sent if name != role)
        self.bandwidth.append(BandwidthRecord(role, len(names), call_bytes,
                                              len(names) * self.bev_bytes,
                                              others * self.bev_bytes, tuple(names)))
        return names

    def _message_size(self, name: str) -> int:
        """Return sender `name`'s last LatentMessage size in bytes (cached per step)."""
        if name not in self._sizes:
            sent = self._sent[name]
            self._sizes[name] = latent_message_size(
                sent.x, sent.y, sent.yaw, sent.z_indices, sent.h, sent.waypoints,
                self.settings.mode, self.wire)
        return self._sizes[name]

    def _remember_sent(self, post, waypoints) -> None:
        self._post = post
        self._sizes = {}
        super()._remember_sent(post, waypoints)

    def _actions(self, policy: str, features: torch.Tensor) -> np.ndarray:
        if policy != 'actor':
            return super()._actions(policy, features)
        z_indices = self._post['stoch'].argmax(-1).cpu().numpy()
        deter = self._post['deter'].cpu().numpy()
        actions = np.zeros(len(self.roles), dtype=np.int64)
        with torch.no_grad():
            for i, role in enumerate(self.roles):
                state = state_from_latent(z_indices[i], deter[i], self.cfg.stoch,
                                          self.cfg.classes)
                actions[i] = self._policies[role].step(state, {'sample': False}).action
        return actions


@dataclass
class DrivingResult:
    """Everything one evaluation run recorded."""

    steps: List[StepRecord] = field(default_factory=list)
    trips: List[Trip] = field(default_factory=list)
    bandwidth: List[BandwidthRecord] = field(default_factory=list)
    episodes: int = 0
    env_steps: int = 0
    bev_bytes: int = 0


def run_driving(env: Any, loaded: Any, settings: CollectConfig, episodes: int, seed: int,
                lookahead: LookaheadConfig, wire: WireSettings,
                max_env_steps: Optional[int] = None,
                occupancy: Optional[OccupancyConfig] = None) -> DrivingResult:
    """
    Drive ``episodes`` fleet episodes (seeds seed, seed + 1, ...), recording them.

    ``max_env_steps`` bounds the work: the run stops after that many simulator steps even if
    fewer episodes finished (their vehicles' trips count as cut short).
    """
    if episodes < 1:
        raise ValueError(f'episodes must be >= 1, got {episodes}')
    recorder = RecordingEnv(env)
    collector = EvaluationCollector(recorder, loaded, settings, lookahead, wire, seed=seed,
                                    occupancy=occupancy)
    collector.start()
    limit = max_env_steps if max_env_steps is not None else math.inf
    while recorder.episodes_done < episodes and collector.env_steps < limit:
        collector.step('actor')
    recorder.close_trips()
    return DrivingResult(recorder.steps, recorder.trips, collector.bandwidth,
                         recorder.episodes_done, collector.env_steps, collector.bev_bytes)

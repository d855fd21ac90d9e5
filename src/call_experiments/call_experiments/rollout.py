"""
Fixed-seed evaluation episodes with every CALL vehicle driven by the world model + planner.

The pipeline is the one the ROS nodes run, through their ROS-free stages
(``call_learning.pipeline.VehiclePipeline``: perception, world model, range gate, driver),
with the planner node's own planning stage choosing every valid vehicle's action
(``call_planner.plan_stage.FleetLookahead``: one ``PlanStage`` per vehicle, the look-ahead of
eq. 3 with the planner.yaml numbers, as the node plans). A recording wrapper around the
simulator keeps each vehicle's per-step measures and trips; ``EvaluationCollector`` accounts
the bytes each ego's gate admits (``bandwidth``).
"""
from dataclasses import dataclass, field
import math
from typing import Any, Dict, List, Mapping, Optional

from call_experiments.bandwidth import image_message_size, latent_message_size, WireSettings
from call_learning.collect import Collector
from call_learning.pipeline import PipelineConfig
from call_planner.plan_stage import FleetLookahead
from call_sim.config import merge
from call_sim.scenario import load_scenario


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


class EvaluationCollector:
    """The fleet pipeline with the planner's look-ahead acting and the gate's bytes accounted."""

    def __init__(self, env: Any, loaded: Any, settings: PipelineConfig,
                 planner: Mapping[str, Any], wire: WireSettings, seed: int = 0,
                 batched: bool = True):
        """
        Bind the checkpoint's models; ``loaded`` is a ``checkpoint.load`` result.

        ``planner``: the planner node's parameters (``plan_stage.planner_params``). Vehicle
        i's look-ahead in episode e is seeded seed + 7919 i + 104729 e, so every vehicle and
        episode samples its own actor actions and a run repeats from its seed.
        """
        world_model = loaded.world_model.eval()
        self.collector = Collector(env, world_model, settings,
                                   actor_critic=loaded.actor_critic.eval(), seed=seed,
                                   batched=batched)
        self.pipeline = self.collector.pipeline
        self.policy = FleetLookahead(
            world_model, self.collector.actor_critic, planner,
            seed_of=lambda index, episode: seed + 7919 * index + 104729 * episode)
        self.settings = settings
        self.wire = wire
        self.bandwidth: List[BandwidthRecord] = []
        self.bev_bytes = image_message_size(world_model.cfg.bev_channels,
                                            self.pipeline.bev_config.size)

    @property
    def roles(self) -> List[str]:
        """Return the CALL vehicles of the current episode."""
        return self.collector.roles

    @property
    def env_steps(self) -> int:
        """Return the simulator steps so far."""
        return self.collector.env_steps

    def start(self) -> None:
        """Reset the simulator for the first episode."""
        self.collector.start()

    def step(self) -> Dict[str, float]:
        """One fleet step with the look-ahead; records the bytes each ego received."""
        if self.collector.begins_episode:
            self.policy.restart(self.collector.episodes + 1)
        sent = {} if self.collector.begins_episode else dict(self.pipeline.heard)
        stats = self.collector.step(self.policy)
        received = received_bytes(self.pipeline, sent, self.wire)
        for role, step, call_bytes in zip(self.roles, self.pipeline.steps, received):
            others = sum(1 for name in sent if name != role)
            self.bandwidth.append(BandwidthRecord(
                role, len(step.neighbours), call_bytes,
                len(step.neighbours) * self.bev_bytes, others * self.bev_bytes,
                step.neighbours))
        return stats


def received_bytes(pipeline: Any, sent: Mapping[str, Any], wire: WireSettings) -> List[int]:
    """
    Bytes of LatentMessages each vehicle of ``pipeline`` used at its last step.

    ``sent``: the pipeline's ``heard`` messages taken before that step, by sender. Each
    accepted sender's message is sized as the comm node encodes it (signature included).
    """
    sizes: Dict[str, int] = {}
    out = []
    for step in pipeline.steps:
        for name in step.neighbours:
            if name not in sizes:
                m = sent[name]
                sizes[name] = latent_message_size(m.x, m.y, m.yaw, m.z_indices, m.h,
                                                  m.waypoints, pipeline.settings.mode, wire,
                                                  layout=pipeline.z_layout)
        out.append(sum(sizes[name] for name in step.neighbours))
    return out


@dataclass
class DrivingResult:
    """Everything one evaluation run recorded."""

    steps: List[StepRecord] = field(default_factory=list)
    trips: List[Trip] = field(default_factory=list)
    bandwidth: List[BandwidthRecord] = field(default_factory=list)
    episodes: int = 0
    env_steps: int = 0
    bev_bytes: int = 0


def run_driving(env: Any, loaded: Any, settings: PipelineConfig, episodes: int, seed: int,
                planner: Mapping[str, Any], wire: WireSettings,
                max_env_steps: Optional[int] = None) -> DrivingResult:
    """
    Drive ``episodes`` fleet episodes (seeds seed, seed + 1, ...), recording them.

    ``max_env_steps`` bounds the work: the run stops after that many simulator steps even if
    fewer episodes finished (their vehicles' trips count as cut short).
    """
    if episodes < 1:
        raise ValueError(f'episodes must be >= 1, got {episodes}')
    recorder = RecordingEnv(env)
    collector = EvaluationCollector(recorder, loaded, settings, planner, wire, seed=seed)
    collector.start()
    limit = max_env_steps if max_env_steps is not None else math.inf
    while recorder.episodes_done < episodes and collector.env_steps < limit:
        collector.step()
    recorder.close_trips()
    return DrivingResult(recorder.steps, recorder.trips, collector.bandwidth,
                         recorder.episodes_done, collector.env_steps, collector.bev_bytes)

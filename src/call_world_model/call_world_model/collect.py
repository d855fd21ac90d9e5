"""
Multi-agent experience collection from the embedded simulator (ROS-free).

All CALL vehicles of one ``call_sim.env.MultiVehicleEnv`` are stepped at once. Per agent and
step the collector reproduces what the ROS graph does: the ego's own sensors see a subset of
the traffic (``call_perception.visibility``), the prediction-error-driven range gate
(``call_comm.range_gate``) selects CALL neighbours, their previous-step world-model states
{z_j, h_j} and planned waypoints w_j become the ego's shared information, the fused BEV is
rasterised (``call_perception.bev_raster``) and the shared world model observes it.
Homogeneous agents share one model, so the whole fleet is one batch of ``observe_step``.

Sharing modes (paper Fig. 2, Table 6): ``local`` (own sensors only), ``lss`` (latent state
sharing: z_j, h_j and the neighbours' boxes), ``lsi`` (CALL: lss plus intention w_j),
``full`` (every vehicle observed, nothing shared).

``h_transport`` decides which h_j a receiver holds: ``full`` (the sender's own h, as when h is
on the wire) or ``replica`` (issue 11: h rebuilt from the (z_j, a_j) stream with the shared
sequence model, restarted from a keyframe quantised like call_comm's (``keyframe_encoding``)
every ``keyframe_period`` steps and at episode start, as call_comm.replica does on a loss-free
link; defaults = call_comm config/comm.yaml). Comparing the two measures
what rebuilding h costs in prediction accuracy.
"""
from dataclasses import dataclass, fields
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence

from call_comm.neighbours import in_range
from call_comm.range_gate import RangeGate
from call_comm.wire_codec import dequantise_h, H_ENCODINGS, quantise_h
from call_perception.bev_raster import BevConfig, BevRasterizer
from call_perception.road_map import RoadMap
from call_perception.visibility import visible
from call_sim.actions import ActionSet
from call_sim.vehicle_control import ControlModel
from call_world_model.intention import fit_waypoints, map_to_ego, relative_pose
from call_world_model.prediction import PredictionErrorTracker
from call_world_model.replay import SequenceReplay, SharedStep, Step
from call_world_model.shared_pooling import SharedBatch
from call_world_model.world_model import WorldModel
import numpy as np
import torch

MODES = ('local', 'lss', 'lsi', 'full')
H_TRANSPORTS = ('full', 'replica')
POLICIES = ('actor', 'heuristic', 'random')


@dataclass(frozen=True)
class CollectConfig:
    """Sharing, sensing and prefill-policy settings (numbers from config/train.yaml)."""

    mode: str = 'lsi'
    c: float = 50.0                 # the paper's prediction-error threshold (range gate)
    initial_range: float = 20.0
    range_step: float = 5.0
    max_range: float = 100.0
    sensor_range: float = 32.0
    occlusion: bool = True
    ego_length: float = 4.6
    ego_width: float = 2.0
    route_lookahead: int = 2
    heuristic_lookahead: float = 12.0
    heuristic_speed: float = 8.0
    heuristic_steer_gain: float = 1.0
    h_transport: str = 'full'
    keyframe_period: int = 100
    keyframe_encoding: str = 'int8'

    def __post_init__(self):
        """Fail fast on an unknown mode or a negative distance."""
        if self.mode not in MODES:
            raise ValueError(f'unknown sharing mode {self.mode!r}; choose one of {MODES}')
        if self.h_transport not in H_TRANSPORTS:
            raise ValueError(f'unknown h_transport {self.h_transport!r}; choose one of '
                             f'{H_TRANSPORTS}')
        if self.keyframe_encoding not in ('fp16', 'int8'):
            raise ValueError(f"keyframe_encoding must be 'fp16' or 'int8', got "
                             f'{self.keyframe_encoding!r}')
        if self.keyframe_period < 1:
            raise ValueError(f'keyframe_period must be >= 1, got {self.keyframe_period}')
        if math.isnan(self.c) or self.c < 0:
            raise ValueError(f'threshold c must be >= 0 (inf allowed), got {self.c}')
        for name in ('sensor_range', 'heuristic_lookahead', 'heuristic_speed'):
            if not getattr(self, name) > 0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)}')

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> 'CollectConfig':
        """Pick this class's keys out of a larger mapping (e.g. all of train.yaml)."""
        names = {f.name: f.type for f in fields(cls)}
        picked = {k: v for k, v in values.items() if k in names}
        for key, value in list(picked.items()):
            if key in ('mode', 'h_transport', 'keyframe_encoding'):
                picked[key] = str(value)
            elif key == 'occlusion':
                picked[key] = bool(value)
            elif key in ('route_lookahead', 'keyframe_period'):
                picked[key] = int(value)
            else:
                picked[key] = float(value)
        return cls(**picked)


@dataclass
class _Box:
    """Box with the attributes the rasteriser and visibility test read."""

    x: float
    y: float
    yaw: float
    length: float
    width: float


@dataclass
class _Sent:
    """What agent j made available at the previous step (its would-be LatentMessage)."""

    x: float
    y: float
    yaw: float
    length: float
    width: float
    z_indices: np.ndarray  # (stoch,)
    h: np.ndarray  # (deter,)
    waypoints: np.ndarray  # (P, 2) map frame


class Collector:
    """Steps every CALL vehicle, builds their BEVs and shared information, fills the replay."""

    def __init__(self, env: Any, world_model: WorldModel, settings: CollectConfig,
                 actor_critic: Any = None, replay: Optional[SequenceReplay] = None,
                 bev_config: Optional[BevConfig] = None, seed: int = 0,
                 action_set: Optional[ActionSet] = None,
                 control_model: Optional[ControlModel] = None):
        """Wire the simulator, the shared model and (optionally) the replay it fills."""
        self.env = env
        self.wm = world_model
        self.cfg = world_model.cfg
        self.settings = settings
        if settings.h_transport == 'replica' and self.cfg.condition_sequence_model:
            raise ValueError('h_transport replica needs a world model with '
                             'condition_sequence_model: false (h must depend on (z, a) only)')
        self.actor_critic = actor_critic
        self.replay = replay
        self.bev_config = bev_config or BevConfig.from_yaml()
        if self.bev_config.size != self.cfg.bev_size:
            self.bev_config = _resized(self.bev_config, self.cfg.bev_size)
        self.rasterizer = BevRasterizer(self.bev_config, RoadMap.from_lanes(env.lanes()))
        self.action_set = action_set or getattr(env, 'action_set', None) or ActionSet()
        if len(self.action_set) != self.cfg.num_actions:
            raise ValueError(f'the action set has {len(self.action_set)} actions, the world '
                             f'model {self.cfg.num_actions}')
        self.control_model = control_model or getattr(env, 'control_model', None) \
            or ControlModel()
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.episodes = 0
        self.env_steps = 0
        self._obs: Optional[Dict[str, Any]] = None
        self._final_stored = False

    # ------------------------------------------------------------------ episode bookkeeping
    def start(self) -> None:
        """Reset the simulator for the first episode (``roles`` is known afterwards)."""
        if self._obs is None:
            self._begin_episode()

    def _begin_episode(self) -> None:
        obs, _ = self.env.reset(seed=int(self.seed + self.episodes))
        self.episodes += 1
        self._obs = obs
        self.roles: List[str] = sorted(obs)
        n = len(self.roles)
        self._state = self.wm.initial_state(n)
        self._prev_action = np.zeros(n, dtype=np.int64)
        self._reward = np.zeros(n, dtype=np.float32)
        self._cont = np.ones(n, dtype=np.float32)
        self._is_first = True
        self._over = False
        self._final_stored = False
        self._sent: Dict[str, _Sent] = {}
        self._replica_age = 0
        self._gates = {r: RangeGate(self.settings.initial_range, self.settings.range_step,
                                    self.settings.max_range, self.settings.c)
                       for r in self.roles}
        self._errors = {r: PredictionErrorTracker(self.cfg.error_horizon, self.wm)
                        for r in self.roles}
        self.episode_return = np.zeros(n)

    # ------------------------------------------------------------------ perception
    def _box(self, vehicle: Any) -> _Box:
        length = vehicle.length if vehicle.length > 0 else self.settings.ego_length
        width = vehicle.width if vehicle.width > 0 else self.settings.ego_width
        return _Box(vehicle.x, vehicle.y, vehicle.yaw, length, width)

    def _route_waypoints(self, observation: Any) -> np.ndarray:
        """Own planned waypoints (P, 2) map frame: the route ahead of the ego."""
        route = np.asarray(observation.route, dtype=np.float64).reshape(-1, 2)
        start = min(self.settings.route_lookahead, max(len(route) - 1, 0))
        return fit_waypoints(route[start:], self.cfg.intention_points).astype(np.float64)

    def _perceive(self, role: str, observation: Any, waypoints: np.ndarray):
        """-> (bev uint8 (C, S, S), ego-frame intention (P, 2), SharedStep or None)."""
        ego = observation.ego
        ego_box = self._box(ego)
        others = list(observation.others)
        boxes = [self._box(v) for v in others]
        mode = self.settings.mode
        seen_mask = visible(ego_box, boxes, self.settings.sensor_range,
                            occlusion=self.settings.occlusion,
                            full_observation=(mode == 'full'))
        seen = [b for b, s in zip(boxes, seen_mask) if s]
        seen_ids = {v.role_name for v, s in zip(others, seen_mask) if s}
        neighbours = self._neighbours(role, ego) if mode in ('lss', 'lsi') else []
        shared_boxes, shared_lines = [], []
        for name in neighbours:
            sent = self._sent[name]
            if name not in seen_ids:
                shared_boxes.append(_Box(sent.x, sent.y, sent.yaw, sent.length, sent.width))
            if mode == 'lsi':
                shared_lines.append(sent.waypoints)
        bev = self.rasterizer.render(ego_box, seen, shared_boxes, waypoints, shared_lines)
        intention = map_to_ego(waypoints, ego.x, ego.y, ego.yaw).astype(np.float32)
        shared = self._shared_step(ego, neighbours) if mode in ('lss', 'lsi') else None
        return bev, intention, shared

    def _neighbours(self, role: str, ego: Any) -> List[str]:
        """CALL vehicles inside the ego's current gate range that sent last step, nearest first."""
        radius = self._gates[role].comm_range
        senders = [(name, s.x, s.y) for name, s in self._sent.items() if name != role]
        chosen = in_range((ego.x, ego.y), senders, radius)
        return [name for name, _ in chosen[:self.cfg.max_neighbours]]

    def _shared_step(self, ego: Any, neighbours: Sequence[str]) -> SharedStep:
        cfg = self.cfg
        n, p = cfg.max_neighbours, cfg.intention_points
        step = SharedStep(
            z_indices=np.zeros((n, cfg.stoch), np.int64),
            h=np.zeros((n, cfg.deter), np.float32),
            intention=np.zeros((n, p, 2), np.float32),
            rel_pose=np.zeros((n, 3), np.float32),
            mask=np.zeros(n, bool))
        for slot, name in enumerate(neighbours):
            sent = self._sent[name]
            step.z_indices[slot] = sent.z_indices
            step.h[slot] = sent.h
            if self.settings.mode == 'lsi':
                step.intention[slot] = map_to_ego(sent.waypoints, ego.x, ego.y, ego.yaw)
            step.rel_pose[slot] = relative_pose(ego.x, ego.y, ego.yaw, sent.x, sent.y, sent.yaw)
            step.mask[slot] = True
        return step

    # ------------------------------------------------------------------ policies
    def heuristic_action(self, observation: Any) -> int:
        """Pure pursuit on the route at a cruise speed (prefill / exploration policy)."""
        ego = observation.ego
        route = np.asarray(observation.route, dtype=np.float64).reshape(-1, 2)
        accel = 0.0
        if ego.speed < self.settings.heuristic_speed - 1.0:
            accel = max(self.action_set.accels)
        elif ego.speed > self.settings.heuristic_speed + 1.0:
            accel = min(self.action_set.accels)
        if len(route) == 0:
            return self.action_set.index(accel, 0.0)
        local = map_to_ego(route, ego.x, ego.y, ego.yaw)
        dist = np.hypot(local[:, 0], local[:, 1])
        ahead = np.flatnonzero((dist >= self.settings.heuristic_lookahead) & (local[:, 0] > 0))
        target = local[ahead[0]] if len(ahead) else local[-1]
        heading_error = math.atan2(target[1], max(target[0], 1e-3))
        steer = float(np.clip(self.settings.heuristic_steer_gain * heading_error, -1.0, 1.0))
        return self.action_set.index(accel, steer)

    def _actions(self, policy: str, features: torch.Tensor) -> np.ndarray:
        if policy == 'random':
            return self.rng.integers(0, len(self.action_set), size=len(self.roles))
        if policy == 'heuristic':
            return np.array([self.heuristic_action(self._obs[r]) for r in self.roles])
        if self.actor_critic is None:
            raise ValueError("policy 'actor' needs an actor_critic")
        with torch.no_grad():
            action = self.actor_critic.act(features, sample=True)
        return np.asarray(action.reshape(len(self.roles)).cpu().numpy(), dtype=np.int64)

    # ------------------------------------------------------------------ one step
    def step(self, policy: str = 'actor', heuristic_prob: float = 0.0) -> Dict[str, float]:
        """
        Observe every agent's current frame, store it, act, and advance the simulator.

        The final frame of an episode is stored (cont = 0 where terminated) without acting,
        then the simulator resets; the next call observes the first frame (is_first).
        Returns a few statistics of this step for logging.
        """
        if policy not in POLICIES:
            raise ValueError(f'unknown policy {policy!r}; choose one of {POLICIES}')
        if self._obs is None or self._final_stored:
            self._begin_episode()
        roles, n = self.roles, len(self.roles)
        waypoints = {r: self._route_waypoints(self._obs[r]) for r in roles}
        perceived = [self._perceive(r, self._obs[r], waypoints[r]) for r in roles]
        bev = torch.from_numpy(np.stack([p[0] for p in perceived]))
        intention = torch.from_numpy(np.stack([p[1] for p in perceived]))
        shared = _stack_shared([p[2] for p in perceived])
        is_first = torch.full((n,), self._is_first, dtype=torch.bool)
        with torch.no_grad():
            post, _ = self.wm.observe_step(
                self._state, torch.from_numpy(self._prev_action), bev, is_first,
                shared, intention if self.settings.mode == 'lsi' else None)
        if self.settings.mode in ('lss', 'lsi'):
            self._update_gates(post, waypoints)
        if self.replay is not None:
            for i, role in enumerate(roles):
                self.replay.add(role, Step(
                    bev=perceived[i][0], prev_action=int(self._prev_action[i]),
                    reward=float(self._reward[i]), cont=float(self._cont[i]),
                    is_first=self._is_first,
                    intention=perceived[i][1] if self.settings.mode == 'lsi' else None,
                    shared=perceived[i][2]))
        stats = {'neighbours': float(np.mean([p[2].mask.sum() if p[2] is not None else 0
                                              for p in perceived])),
                 'comm_range': float(np.mean([g.comm_range for g in self._gates.values()]))}
        if self._over:
            # the final frame (cont = 0 where terminated) is stored; reset on the next call
            self._final_stored = True
            stats['episode_return'] = float(np.mean(self.episode_return))
            return stats
        self._remember_sent(post, waypoints)
        actions = self._actions(policy, self.wm.features(post))
        if policy == 'actor' and heuristic_prob > 0:
            override = self.rng.random(n) < heuristic_prob
            for i in np.flatnonzero(override):
                actions[i] = self.heuristic_action(self._obs[roles[i]])
        controls = {}
        for i, role in enumerate(roles):
            accel, steer = self.action_set.action(int(actions[i]))
            controls[role] = self.control_model.to_control(accel, steer, self._obs[role].ego.speed)
        obs, rewards, terminations, truncations, _ = self.env.step(controls)
        self.env_steps += 1
        self._state = post
        self._prev_action = np.asarray(actions, dtype=np.int64)
        self._reward = np.array([float(rewards.get(r, 0.0)) for r in roles], np.float32)
        self._cont = np.array([0.0 if terminations.get(r, False) else 1.0 for r in roles],
                              np.float32)
        self.episode_return += self._reward
        self._is_first = False
        self._over = any(terminations.get(r, False) or truncations.get(r, False)
                         for r in roles) or any(r not in obs for r in roles)
        if self._over:
            # agents missing from obs (PettingZoo removes finished ones) keep their last frame
            obs = {r: obs.get(r, self._obs[r]) for r in roles}
        self._obs = obs
        stats['reward'] = float(np.mean(self._reward))
        return stats

    def _remember_sent(self, post: Dict[str, torch.Tensor], waypoints: Dict[str, np.ndarray]):
        """Publish (for the next step) each agent's pose, z, h and planned waypoints."""
        z_indices = post['stoch'].argmax(-1).cpu().numpy()
        deter = self._received_h(post).cpu().numpy()
        self._sent = {}
        for i, role in enumerate(self.roles):
            box = self._box(self._obs[role].ego)
            self._sent[role] = _Sent(box.x, box.y, box.yaw, box.length, box.width,
                                     z_indices[i], deter[i], waypoints[role])

    @torch.no_grad()
    def _received_h(self, post: Dict[str, torch.Tensor]) -> torch.Tensor:
        """Give the h_j that receivers hold for this step: the sender's own or its replica."""
        if self.settings.h_transport == 'full':
            return post['deter']
        previous = [self._sent.get(role) for role in self.roles]
        if self._replica_age % self.settings.keyframe_period == 0 or None in previous:
            self._replica_age = 1
            encoding = H_ENCODINGS[self.settings.keyframe_encoding]
            keyframes = [dequantise_h(encoding, quantise_h(h, encoding))
                         for h in post['deter'].cpu().numpy()]
            return torch.from_numpy(np.stack(keyframes)).to(post['deter'])
        self._replica_age += 1
        device = post['deter'].device
        h = torch.from_numpy(np.stack([sent.h for sent in previous])).to(device)
        z = torch.from_numpy(np.stack([sent.z_indices for sent in previous])).to(device)
        return self.wm.rssm.advance(h, z, torch.from_numpy(self._prev_action).to(device))

    def _update_gates(self, post, waypoints: Dict[str, np.ndarray]) -> None:
        """E_i over the last K steps (``prediction.PredictionErrorTracker``) drives gate i."""
        for i, role in enumerate(self.roles):
            own = {k: v[i:i + 1] for k, v in post.items()}
            error, ready = self._errors[role].update(own, int(self._prev_action[i]),
                                                     waypoints[role])
            self._gates[role].update(error if ready else float('nan'))

    def prediction_errors(self) -> Dict[str, float]:
        """Return the current E per agent (nan until K predictions exist)."""
        return {r: t.last_error if t.ready else float('nan') for r, t in self._errors.items()}


def _stack_shared(steps: Sequence[Optional[SharedStep]]) -> Optional[SharedBatch]:
    if any(s is None for s in steps):
        return None
    return SharedBatch(
        z_indices=torch.from_numpy(np.stack([s.z_indices for s in steps])),
        h=torch.from_numpy(np.stack([s.h for s in steps])),
        intention=torch.from_numpy(np.stack([s.intention for s in steps])),
        rel_pose=torch.from_numpy(np.stack([s.rel_pose for s in steps])),
        mask=torch.from_numpy(np.stack([s.mask for s in steps])))


def _resized(config: BevConfig, size: int) -> BevConfig:
    """Keep the field of view at another pixel size (tiny test models use 32 px BEVs)."""
    factor = config.size / size
    return BevConfig(size=size, metres_per_pixel=config.metres_per_pixel * factor,
                     ego_row=config.ego_row / factor, ego_col=config.ego_col / factor,
                     marking_thickness=config.marking_thickness,
                     waypoint_thickness=max(1, round(config.waypoint_thickness / factor)))

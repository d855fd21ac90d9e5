"""
Multi-agent experience collection from the embedded simulator (ROS-free).

All CALL vehicles of one ``call_sim.env.MultiVehicleEnv`` are stepped at once through the
``pipeline.VehiclePipeline``, i.e. through the very stages the ROS nodes run (perception,
world model with its prediction error and validity, range gate, driver), so the replay holds
what the nodes would feed the model. Homogeneous agents share one model, so the whole fleet is
one batch of ``observe_step``.

Sharing modes (paper Fig. 2, Table 6): ``local`` (own sensors only), ``lss`` (latent state
sharing: z_j, h_j and the neighbours' boxes), ``lsi`` (CALL: lss plus intention w_j),
``full`` (every vehicle observed, nothing shared).

Prefill / exploration policies (``POLICIES``): ``heuristic`` (pure pursuit on the route),
``random`` and ``actor`` (the actor-critic's sample). They choose one action per step and
declare it held for K steps as their plan, which the driver rolls out into the intention.
"""
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

from call_learning.pipeline import padded_shared, PipelineConfig, VehiclePipeline
from call_learning.replay import SequenceReplay, SharedStep, Step
from call_vehicle.actions import ActionSet
from call_vehicle.driver import Driver
from call_vehicle.vehicle_control import ControlModel
from call_world_model.intention import map_to_ego
from call_world_model.model_stage import ModelOutput
from call_world_model.world_model import WorldModel
import numpy as np
import torch

POLICIES = ('actor', 'heuristic', 'random')


class CollectorPolicy:
    """The collector's heuristic, random and actor policies (a ``pipeline.FleetPolicy``)."""

    def __init__(self, kind: str, settings: PipelineConfig, action_set: ActionSet,
                 horizon: int, rng: np.random.Generator, actor_critic: Any = None,
                 world_model: Optional[WorldModel] = None, heuristic_prob: float = 0.0):
        """``heuristic_prob``: chance that the actor's action is replaced by the heuristic's."""
        if kind not in POLICIES:
            raise ValueError(f'unknown policy {kind!r}; choose one of {POLICIES}')
        if kind == 'actor' and actor_critic is None:
            raise ValueError("policy 'actor' needs an actor_critic")
        self.kind = kind
        self.settings = settings
        self.action_set = action_set
        self.horizon = horizon
        self.rng = rng
        self.actor_critic = actor_critic
        self.world_model = world_model
        self.heuristic_prob = heuristic_prob

    def choose(self, indices: Sequence[int], outputs: Sequence[ModelOutput],
               observations: Sequence[Any]) -> List[Tuple[int, Optional[Sequence[int]]]]:
        """One action per listed vehicle, declared held for K steps."""
        if self.kind == 'random':
            actions = self.rng.integers(0, len(self.action_set), size=len(indices))
        elif self.kind == 'heuristic':
            actions = [heuristic_action(self.settings, self.action_set, o) for o in observations]
        else:
            features = self.world_model.features(
                {key: torch.cat([o.post[key] for o in outputs]) for key in outputs[0].post})
            with torch.no_grad():
                sampled = self.actor_critic.act(features, sample=True)
            actions = np.asarray(sampled.reshape(len(indices)).cpu().numpy(), dtype=np.int64)
            if self.heuristic_prob > 0:
                override = self.rng.random(len(indices)) < self.heuristic_prob
                for k in np.flatnonzero(override):
                    actions[k] = heuristic_action(self.settings, self.action_set,
                                                  observations[k])
        return [(int(a), [int(a)] * self.horizon) for a in actions]

    def forget(self, index: int) -> None:
        """Keep nothing: these policies plan one step at a time."""


def heuristic_action(settings: PipelineConfig, action_set: ActionSet, observation: Any) -> int:
    """Pure pursuit on the route at a cruise speed (prefill / exploration policy)."""
    ego = observation.ego
    route = np.asarray(observation.route, dtype=np.float64).reshape(-1, 2)
    accel = 0.0
    if ego.speed < settings.heuristic_speed - 1.0:
        accel = max(action_set.accels)
    elif ego.speed > settings.heuristic_speed + 1.0:
        accel = min(action_set.accels)
    if len(route) == 0:
        return action_set.index(accel, 0.0)
    local = map_to_ego(route, ego.x, ego.y, ego.yaw)
    dist = np.hypot(local[:, 0], local[:, 1])
    ahead = np.flatnonzero((dist >= settings.heuristic_lookahead) & (local[:, 0] > 0))
    target = local[ahead[0]] if len(ahead) else local[-1]
    heading_error = math.atan2(target[1], max(target[0], 1e-3))
    steer = float(np.clip(settings.heuristic_steer_gain * heading_error, -1.0, 1.0))
    return action_set.index(accel, steer)


class Collector:
    """Steps every CALL vehicle through the vehicle pipeline and fills the replay."""

    def __init__(self, env: Any, world_model: WorldModel, settings: PipelineConfig,
                 actor_critic: Any = None, replay: Optional[SequenceReplay] = None,
                 bev_config: Any = None, seed: int = 0,
                 action_set: Optional[ActionSet] = None,
                 control_model: Optional[ControlModel] = None, batched: bool = True):
        """Wire the simulator, the shared model and (optionally) the replay it fills."""
        self.env = env
        self.wm = world_model
        self.cfg = world_model.cfg
        self.settings = settings
        self.actor_critic = actor_critic
        self.replay = replay
        self.action_set = action_set or getattr(env, 'action_set', None) or ActionSet()
        control_model = control_model or getattr(env, 'control_model', None) or ControlModel()
        bicycle = getattr(env, 'bicycle', None)
        driver = Driver(self.action_set, control_model=control_model,
                        **({'bicycle': bicycle} if bicycle is not None else {}))
        # the road as the nodes get it: perception parses the simulator's OpenDRIVE
        opendrive = env.opendrive() if hasattr(env, 'opendrive') else None
        self.pipeline = VehiclePipeline(world_model, settings, env.lanes(), driver, bev_config,
                                        batched=batched, opendrive=opendrive)
        self.bev_config = self.pipeline.bev_config
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
        self.pipeline.reset(self.roles)
        self._reward = np.zeros(n, dtype=np.float32)
        self._cont = np.ones(n, dtype=np.float32)
        self._is_first = True
        self._over = False
        self._final_stored = False
        self.episode_return = np.zeros(n)

    @property
    def begins_episode(self) -> bool:
        """Tell whether the next ``step`` starts an episode (first step, or after the last)."""
        return self._obs is None or self._final_stored

    def policy(self, kind: str, heuristic_prob: float = 0.0) -> Any:
        """Return the fleet policy of ``kind`` (``POLICIES``) for this step."""
        return CollectorPolicy(kind, self.settings, self.action_set, self.pipeline.driver.horizon,
                               self.rng, self.actor_critic, self.wm, heuristic_prob)

    # ------------------------------------------------------------------ one step
    def step(self, policy: str = 'actor', heuristic_prob: float = 0.0) -> Dict[str, float]:
        """
        Observe every agent's current frame, store it, act, and advance the simulator.

        The final frame of an episode is stored (cont = 0 where terminated) without acting,
        then the simulator resets; the next call observes the first frame (is_first).
        Returns a few statistics of this step for logging.
        """
        fleet_policy = self.policy(policy, heuristic_prob) if isinstance(policy, str) \
            else policy       # a FleetPolicy object (e.g. the experiments' look-ahead)
        if self.begins_episode:
            self._begin_episode()
        roles = self.roles
        steps = self.pipeline.observe(self._obs)
        if self.replay is not None:
            self._store(steps)
        stats = {'neighbours': float(np.mean([len(s.neighbours) for s in steps])),
                 'comm_range': float(np.mean([s.comm_range for s in steps])),
                 'view_vehicles': float(np.mean([s.view_vehicles for s in steps]))}
        if self._over:
            # the final frame (cont = 0 where terminated) is stored; reset on the next call
            self._final_stored = True
            stats['episode_return'] = float(np.mean(self.episode_return))
            return stats
        controls = self.pipeline.act(self._obs, fleet_policy)
        obs, rewards, terminations, truncations, _ = self.env.step(controls)
        self.env_steps += 1
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

    def _store(self, steps) -> None:
        shares = self.settings.shares
        for i, (role, step) in enumerate(zip(self.roles, steps)):
            shared = SharedStep(**padded_shared(self.cfg, step.shared)) if shares else None
            self.replay.add(role, Step(
                bev=step.bev, prev_action=int(step.prev_action),
                reward=float(self._reward[i]), cont=float(self._cont[i]),
                is_first=self._is_first, intention=step.intention, shared=shared))

    def prediction_errors(self) -> Dict[str, float]:
        """Return the current E per agent (nan until K predictions exist)."""
        return self.pipeline.prediction_errors()

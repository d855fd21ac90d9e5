"""
One evaluation protocol for k-step BEV prediction with and without sharing (paper Table 1).

Every mode is scored against ONE ground truth: the ego's unoccluded BEV over its own window
at step t0 + k, rendered from privileged simulator state (every vehicle, nothing shared;
``prediction_metrics`` says which classes count). Modes:

* ``model_local``: the world model filters the ego's own BEVs (no shared information);
* ``model_shared``: it filters the fused BEVs and is conditioned on the neighbours' latents;
  both predict through ``bev_prediction.predict_k_steps``: the imagined (z_k, h_k) decoded
  (DreamerV3), or, if the checkpoint carries a motion head (``bev_motion``), the head applied
  to the mode's observed BEVs (own / fused); the decoder's predictions are then reported as
  ``decoder_local`` / ``decoder_shared`` (``--decoder-only`` ignores the head);
* ``copy_last_own`` / ``copy_last_fused``: the own / fused BEV of t0 copied forward;
* ``const_velocity_fused``: every vehicle of the fused BEV at t0 moved on at its velocity
  (t0 - 1 -> t0), drawn at t0 + k (oracle association: box identities from the simulator, an
  upper bound for a tracker).

The fused BEV is the updated BEV of the paper (Fig. 4c): own sensors, the neighbours' boxes and
intentions (``call_perception.fusion``) and the vehicles only the neighbours see, decoded from
their latents and warped into the ego frame (``call_world_model.neighbour_decoding`` +
``call_perception.neighbour_views``). Without a checkpoint the neighbours' views are rendered
from what they really see (a perfect decoder; modes then end in ``_oracle``).

Sampling: per seed one episode of ``steps`` steps (CALL vehicles respawn on a new route when
done, so every step has every ego), driven by pure pursuit of the route in the discrete action
set; ``windows`` (ego, t0) pairs drawn uniformly over the episode, none spanning a respawn.
The model filters every ego from the episode start (as a vehicle does), predictions roll the
posterior at t0 forward open loop with the actions actually taken. Neighbours are the CALL
vehicles within a fixed ``comm_range`` (the gate's range would depend on the model's E, so
modes would differ in more than what is shared); their message is that of step t0 - 1.

    python -m call_learning.prediction_protocol \
        --checkpoint src/call_world_model/checkpoints/call_small64g8c.pt --per-seed \
        --out results/prediction_sharing.csv          # --quick: a subset in under a minute
"""
import argparse
from dataclasses import dataclass, field, replace
import math
import sys
import time
from typing import Dict, List, Optional, Sequence, Set, Tuple

from call_perception.bev_raster import BevConfig, BevRasterizer, CHANNEL_INDEX, map_to_pixel
from call_perception.fusion import fuse_shared, SharedNeighbour
from call_perception.neighbour_views import add_neighbour_views, NeighbourView, VIEW_CHANNELS
from call_perception.road_map import RoadMap
from call_perception.visibility import visible
from call_sim.env import MultiVehicleEnv
from call_sim.types import VehicleState
from call_vehicle.actions import ActionSet
from call_vehicle.vehicle_control import ControlModel
from call_vehicle.vehicle_model import BicycleModel, BicycleState
from call_world_model.bev_motion import BevMotionHead, load_head
from call_world_model.bev_prediction import Observed, predict_k_steps
from call_world_model.intention import fit_waypoints, map_to_ego, relative_pose
from call_world_model.neighbour_decoding import decode_neighbour_vehicles
from call_world_model.prediction_metrics import (aggregate, classes_of, combine_seeds,
                                                 frame_scores, read_csv, write_csv)
from call_world_model.rssm import State
from call_world_model.shared_pooling import SharedBatch
from call_world_model.world_model import WorldModel
import numpy as np
import torch

HORIZONS = (1, 5, 10, 30, 60)
ROUTE_LOOKAHEAD = 2  # route points skipped before the intention (as the collector)


@dataclass(frozen=True)
class ProtocolConfig:
    """What the protocol samples (defaults: the full protocol; see ``quick``)."""

    scenario: str = 'four_lane_platoon'
    seeds: Tuple[int, ...] = (0, 1, 2)
    steps: int = 300
    windows: int = 128
    horizons: Tuple[int, ...] = HORIZONS
    context: int = 5  # hidden vehicles: missed by the ego's sensors in these last frames
    warmup: int = 5  # filtered frames before a window may start
    comm_range: float = 50.0
    sensor_range: float = 32.0
    speed: float = 8.0  # [m/s] cruise speed of the pure-pursuit driver
    lookahead: float = 12.0  # [m] pure-pursuit target distance

    def __post_init__(self):
        """Fail fast on a protocol that cannot hold one window."""
        if min(self.horizons) < 0 or self.steps < self.warmup + max(self.horizons) + 2:
            raise ValueError(f'{self.steps} steps cannot hold warm-up {self.warmup} and '
                             f'k up to {max(self.horizons)} (k >= 0)')
        if self.windows < 1 or not self.seeds or self.context < 1:
            raise ValueError('need >= 1 window, seed and context frame')


# k = 0 scores the posterior's reconstruction (the ceiling of every k > 0)
QUICK = ProtocolConfig(seeds=(0,), steps=100, windows=24, horizons=(0, 1, 5, 10))


@dataclass
class Frame:
    """One recorded step: privileged states and what each CALL vehicle saw and did."""

    states: Dict[int, VehicleState]  # actor id -> state (every vehicle)
    egos: Dict[str, VehicleState]
    routes: Dict[str, np.ndarray]  # role -> route ahead (M, 2) map frame
    seen: Dict[str, Set[int]]  # role -> actor ids its own sensors see
    actions: Dict[str, int] = field(default_factory=dict)  # taken after this frame
    first: Dict[str, bool] = field(default_factory=dict)  # ego (re)started at this frame


def pursuit_action(observation, action_set: ActionSet, speed: float, lookahead: float) -> int:
    """Discrete action that follows the route at ``speed`` (pure pursuit)."""
    ego = observation.ego
    accel = 0.0
    if ego.speed < speed - 1.0:
        accel = max(action_set.accels)
    elif ego.speed > speed + 1.0:
        accel = min(action_set.accels)
    route = np.asarray(observation.route, dtype=np.float64).reshape(-1, 2)
    if len(route) == 0:
        return action_set.index(accel, 0.0)
    local = map_to_ego(route, ego.x, ego.y, ego.yaw)
    ahead = np.flatnonzero((np.hypot(local[:, 0], local[:, 1]) >= lookahead)
                           & (local[:, 0] > 0))
    target = local[ahead[0]] if len(ahead) else local[-1]
    steer = float(np.clip(math.atan2(target[1], max(target[0], 1e-3)), -1.0, 1.0))
    return action_set.index(accel, steer)


def record_episode(scenario: str, seed: int, config: ProtocolConfig
                   ) -> Tuple[List[Frame], list]:
    """Drive one episode -> (frames, lanes); every ego respawns when done."""
    from call_sim.scenario import load_scenario
    setting = load_scenario(scenario)
    setting['respawn_done'] = True
    setting['episode_steps'] = config.steps + 1
    # the protocol scores prediction, not driving: a collision or leaving the road does not
    # end an ego's stream, and routes are long enough not to end within the episode on
    # long maps (a respawn needs a free start, which a dense cluster may not have)
    setting['termination'] = {'on_collision': False, 'on_off_road': False}
    travel = config.speed * setting['dt'] * config.steps + 50.0
    setting['route']['length'] = max(float(setting['route']['length']), travel)
    with MultiVehicleEnv(setting) as env:
        action_set = env.action_set
        control = env.control_model or ControlModel()
        lanes = env.lanes()
        obs, _ = env.reset(seed=seed)
        frames: List[Frame] = []
        first = dict.fromkeys(obs, True)
        for _ in range(config.steps):
            states = env.vehicle_states()
            frame = Frame({s.actor_id: s for s in states},
                          {r: o.ego for r, o in obs.items()},
                          {r: np.asarray(o.route, dtype=np.float64).reshape(-1, 2)
                           for r, o in obs.items()}, {}, first=dict(first))
            for role, o in obs.items():
                mask = visible(o.ego, o.others, config.sensor_range)
                frame.seen[role] = {v.actor_id for v, m in zip(o.others, mask) if m}
            controls = {}
            for role, o in obs.items():
                action = pursuit_action(o, action_set, config.speed, config.lookahead)
                frame.actions[role] = action
                accel, steer = action_set.action(action)
                controls[role] = control.to_control(accel, steer, o.ego.speed)
            frames.append(frame)
            try:
                obs, _, _, _, infos = env.step(controls)
            except RuntimeError as error:  # no free start for a respawn: the episode ends
                print(f'episode of seed {seed} ends after {len(frames)} steps: {error}',
                      file=sys.stderr)
                break
            first = {role: bool(infos.get(role, {}).get('respawned', False)) for role in obs}
            if set(obs) != set(frame.egos):
                break
    return frames, lanes


class EpisodeViews:
    """Renders the own, fused and true BEVs of one recorded episode."""

    def __init__(self, frames: List[Frame], lanes, bev_config: BevConfig,
                 config: ProtocolConfig, intention_points: int):
        """Keep the episode and build the rasteriser for its map."""
        self.frames = frames
        self.bev = bev_config
        self.config = config
        self.points = intention_points
        self.rasterizer = BevRasterizer(bev_config, RoadMap.from_lanes(lanes))
        self.roles = sorted(frames[0].egos)

    def waypoints(self, role: str, t: int) -> np.ndarray:
        """Return the planned route points (P, 2) of the role, map frame, at step t."""
        route = self.frames[t].routes[role]
        start = min(ROUTE_LOOKAHEAD, max(len(route) - 1, 0))
        return fit_waypoints(route[start:], self.points).astype(np.float64)

    def own(self, role: str, t: int) -> np.ndarray:
        """Render the ego's BEV from its own sensors."""
        frame = self.frames[t]
        seen = [frame.states[i] for i in sorted(frame.seen[role])]
        return self.rasterizer.render(frame.egos[role], seen, (), self.waypoints(role, t))

    def truth(self, role: str, t: int) -> np.ndarray:
        """Render the ego's unoccluded BEV: every other vehicle, nothing shared."""
        frame = self.frames[t]
        ego = frame.egos[role]
        others = [s for i, s in sorted(frame.states.items()) if i != ego.actor_id]
        return self.rasterizer.render(ego, others, (), self.waypoints(role, t))

    def boxes_mask(self, role: str, t: int, ids: Set[int]) -> np.ndarray:
        """(S, S) bool of the vehicles ``ids`` at step t in the ego's frame at t."""
        frame = self.frames[t]
        boxes = [frame.states[i] for i in sorted(ids) if i in frame.states]
        bev = self.rasterizer.render(frame.egos[role], boxes)
        return bev[CHANNEL_INDEX['seen_vehicles']] > 0

    def neighbours(self, role: str, t: int) -> List[str]:
        """CALL vehicles whose step t - 1 message the ego holds at t, nearest first."""
        if t == 0 or self.frames[t].first.get(role, False):
            return []
        ego = self.frames[t].egos[role]
        sent = self.frames[t - 1].egos
        near = sorted((math.hypot(s.x - ego.x, s.y - ego.y), r) for r, s in sent.items()
                      if r != role)
        return [r for d, r in near if d <= self.config.comm_range]

    def oracle_view(self, sender: str, t: int) -> NeighbourView:
        """Give what a perfect decoder makes of the sender's step-t latent: its vehicles."""
        bev = self.own(sender, t)
        mask = np.maximum(bev[CHANNEL_INDEX['ego']], bev[CHANNEL_INDEX['seen_vehicles']])
        return NeighbourView(sender, self.frames[t].egos[sender], mask)

    def fused(self, role: str, t: int, views: Sequence[NeighbourView]) -> np.ndarray:
        """Render the updated BEV: own sensors + neighbours' boxes, intentions and views."""
        frame = self.frames[t]
        ego = frame.egos[role]
        senders = self.neighbours(role, t)
        previous = self.frames[t - 1] if senders else None
        shared = [SharedNeighbour(r, previous.egos[r].x, previous.egos[r].y, previous.egos[r].yaw,
                                  self.waypoints(r, t - 1), previous.egos[r].length,
                                  previous.egos[r].width) for r in senders]
        seen = [frame.states[i] for i in sorted(frame.seen[role])]
        layer = fuse_shared(shared, seen, ego)
        bev = self.rasterizer.render(ego, seen, layer.vehicles, self.waypoints(role, t),
                                     layer.waypoints)
        add_neighbour_views(bev, ego, views, self.bev)
        return bev

    def const_velocity(self, role: str, t0: int, k: int) -> np.ndarray:
        """Render the fused vehicles of t0 moved on at their (t0 - 1 -> t0) velocity at t0 + k."""
        now, before, then = self.frames[t0], self.frames[t0 - 1], self.frames[t0 + k]
        ids = set(now.seen[role])
        for sender in self.neighbours(role, t0):
            ids |= {now.egos[sender].actor_id} | self.frames[t0 - 1].seen[sender]
        ids.discard(now.egos[role].actor_id)
        moved = []
        for i in sorted(ids):
            if i not in now.states:
                continue
            s = now.states[i]
            p = before.states.get(i, s)
            dx, dy = s.x - p.x, s.y - p.y
            if math.hypot(dx, dy) > 5.0:  # a respawn, not a motion
                dx = dy = 0.0
            moved.append(replace(s, x=s.x + k * dx, y=s.y + k * dy))
        return self.rasterizer.render(then.egos[role], moved, (), self.waypoints(role, t0 + k))


def _shared_batch(model: WorldModel, views: EpisodeViews, t: int,
                  previous: Optional[State]) -> Optional[SharedBatch]:
    """Every ego's neighbours' step t - 1 latents (nearest first) as one SharedBatch."""
    cfg = model.cfg
    roles = views.roles
    batch = SharedBatch.empty((len(roles),), cfg)
    if previous is None:
        return batch
    z = previous['stoch'].argmax(-1)
    for i, role in enumerate(roles):
        ego = views.frames[t].egos[role]
        for slot, sender in enumerate(views.neighbours(role, t)[:cfg.max_neighbours]):
            j = roles.index(sender)
            pose = views.frames[t - 1].egos[sender]
            batch.z_indices[i, slot] = z[j]
            batch.h[i, slot] = previous['deter'][j]
            batch.intention[i, slot] = torch.from_numpy(
                map_to_ego(views.waypoints(sender, t - 1), ego.x, ego.y, ego.yaw)).float()
            batch.rel_pose[i, slot] = torch.from_numpy(relative_pose(
                ego.x, ego.y, ego.yaw, pose.x, pose.y, pose.yaw)).float()
            batch.mask[i, slot] = True
    return batch


@torch.no_grad()
def filter_episode(model: Optional[WorldModel], views: EpisodeViews, shared: bool
                   ) -> Tuple[List[Dict[str, np.ndarray]], List[State]]:
    """
    Every ego's BEV input per step, and (with a model) its posterior per step.

    shared=False: own BEVs, no neighbours. shared=True: fused BEVs whose neighbour views are
    decoded from the neighbours' previous posteriors (oracle views without a model).
    """
    roles = views.roles
    inputs, posts = [], []
    state: Optional[State] = None
    for t, frame in enumerate(views.frames):
        bevs = {}
        masks: Dict[str, np.ndarray] = {}
        if shared and model is not None and state is not None:
            # every vehicle's step t - 1 latent once, as one decoder batch (as the pipeline)
            decoded = decode_neighbour_vehicles(model, [
                (state['stoch'][j].argmax(-1).numpy(), state['deter'][j].numpy())
                for j in range(len(roles))], VIEW_CHANNELS)
            masks = {roles[j]: mask for j, mask in zip(decoded.kept, decoded.masks)}
        for role in roles:
            if not shared:
                bevs[role] = views.own(role, t)
                continue
            senders = views.neighbours(role, t)
            if model is None:
                bev_views = [views.oracle_view(s, t - 1) for s in senders]
            else:
                bev_views = [NeighbourView(s, views.frames[t - 1].egos[s], masks[s])
                             for s in senders if s in masks]
            bevs[role] = views.fused(role, t, bev_views)
        inputs.append(bevs)
        if model is None:
            continue
        bev = torch.from_numpy(np.stack([bevs[r] for r in roles]))
        first = torch.tensor([t == 0 or frame.first.get(r, False) for r in roles])
        prev_action = torch.tensor([views.frames[t - 1].actions[r] if t else 0 for r in roles])
        intention = torch.from_numpy(np.stack([
            map_to_ego(views.waypoints(r, t), frame.egos[r].x, frame.egos[r].y,
                       frame.egos[r].yaw) for r in roles])).float()
        neighbours = _shared_batch(model, views, t, state) if shared else None
        state, _ = model.observe_step(state, prev_action, bev, first, neighbours, intention,
                                      sample=False, with_prior=False)
        posts.append(state)
    return inputs, posts


def draw_windows(views: EpisodeViews, config: ProtocolConfig, seed: int
                 ) -> List[Tuple[str, int]]:
    """``windows`` (ego, t0) pairs with no (re)start in (t0 - context, t0 + max k]."""
    kmax = max(config.horizons)
    candidates = []
    for role in views.roles:
        for t0 in range(max(config.warmup, config.context), len(views.frames) - kmax):
            span = range(t0 - config.context + 1, t0 + kmax + 1)
            if not any(views.frames[t].first.get(role, False) for t in span):
                candidates.append((role, t0))
    if not candidates:
        raise ValueError('the episode holds no window: more steps or fewer respawns needed')
    rng = np.random.default_rng(seed)
    count = min(config.windows, len(candidates))
    return [candidates[i] for i in sorted(rng.choice(len(candidates), count, replace=False))]


def pixel_affine(bev: BevConfig, pose_from: VehicleState, pose_to: VehicleState) -> np.ndarray:
    """Return the (2, 3) affine of a BEV pixel (col, row) from ``pose_from`` to ``pose_to``."""
    def full(pose):
        return np.vstack([map_to_pixel(bev, pose), [0.0, 0.0, 1.0]])
    return (full(pose_to) @ np.linalg.inv(full(pose_from)))[:2]


@dataclass(frozen=True)
class EgoKinematics:
    """The CALL vehicle's own model: discrete actions -> control -> kinematic bicycle step."""

    action_set: ActionSet
    control: ControlModel
    bicycle: BicycleModel

    @classmethod
    def load(cls, scenario: str) -> 'EgoKinematics':
        """Read the simulator's vehicle config with the scenario's step (as the env does)."""
        from call_sim.config import load_yaml
        from call_sim.scenario import load_scenario
        vehicle = load_yaml('vehicle.yaml')
        return cls(ActionSet.from_config(vehicle['actions']),
                   ControlModel.from_config(vehicle['control']),
                   BicycleModel.from_config({**vehicle['bicycle'],
                                             'dt': float(load_scenario(scenario)['dt'])}))

    def rollout(self, ego: VehicleState, actions: Sequence[int]) -> List[VehicleState]:
        """Return the ego's poses after each action (what it expects from its own plan)."""
        state = BicycleState(ego.x, ego.y, ego.yaw, ego.speed)
        poses = []
        for action in actions:
            accel, steer = self.action_set.action(int(action))
            command = self.control.to_control(accel, steer, state.speed)
            state = self.bicycle.step(state, *self.control.to_accel(command, state.speed))
            poses.append(replace(ego, x=state.x, y=state.y, yaw=state.yaw, speed=state.speed))
        return poses


def observed_context(views: EpisodeViews, inputs: List[Dict[str, np.ndarray]],
                     windows: List[Tuple[str, int]], horizons: Sequence[int], context: int,
                     kinematics: EgoKinematics) -> Observed:
    """
    Build the motion head's inputs per window (``bev_prediction.Observed``).

    The last ``context`` input BEVs (frames before the ego's last (re)start repeat its first
    one). The reference frame of step t is the ego's pose at t0 moved on by (t - t0) steps at
    its t0 speed and heading, so that a vehicle driving like the ego stands still in it and
    the flow that remains is small: ``align`` takes each context frame into its step's
    reference frame (the ego's odometry), ``future`` the reference frame of t0 + k into the
    ego's own frame at t0 + k under the actions taken (its kinematic model).
    """
    frames = views.frames
    dt = kinematics.bicycle.dt
    bevs, aligns, futures = [], [], []
    kmax = max(horizons)
    for role, t0 in windows:
        start = max(t for t in range(t0 + 1) if t == 0 or frames[t].first.get(role, False))
        steps = [max(t, start) for t in range(t0 - context + 1, t0 + 1)]
        now = frames[t0].egos[role]

        def reference(offset: int) -> VehicleState:
            travel = offset * now.speed * dt
            return replace(now, x=now.x + travel * math.cos(now.yaw),
                           y=now.y + travel * math.sin(now.yaw))
        bevs.append(np.stack([inputs[t][role] for t in steps]))
        aligns.append(np.stack([pixel_affine(views.bev, frames[t].egos[role], reference(t - t0))
                                for t in steps]))
        poses = [now] + kinematics.rollout(now, [frames[t0 + j].actions[role]
                                                 for j in range(kmax)])
        futures.append(np.stack([pixel_affine(views.bev, reference(k), poses[k])
                                 for k in horizons]))
    return Observed(torch.from_numpy(np.stack(bevs)), torch.from_numpy(np.stack(aligns)),
                    torch.from_numpy(np.stack(futures)))


@torch.no_grad()
def model_predictions(model: WorldModel, views: EpisodeViews, posts: List[State],
                      windows: List[Tuple[str, int]], horizons: Sequence[int],
                      head: Optional[BevMotionHead] = None,
                      inputs: Optional[List[Dict[str, np.ndarray]]] = None) -> np.ndarray:
    """
    Open-loop predictions (W, len(horizons), C, S, S) probabilities from the t0 posteriors.

    ``bev_prediction.predict_k_steps`` with the actions actually taken; with a motion ``head``
    it reads the observed ``inputs`` (per step, role -> BEV) of the window's context and the
    ego's motion. k = 0 decodes the t0 posterior itself (with a head: the t0 input).
    """
    kmax = max(horizons)
    roles = views.roles
    start = {key: torch.stack([posts[t0][key][roles.index(r)] for r, t0 in windows])
             for key in posts[0]}
    actions = torch.tensor([[views.frames[t0 + k].actions[r] for k in range(kmax)]
                            for r, t0 in windows], dtype=torch.long).reshape(len(windows), kmax)
    observed = None
    if head is not None:
        observed = observed_context(views, inputs, windows, horizons, head.cfg.context,
                                    EgoKinematics.load(views.config.scenario))
    return predict_k_steps(model, start, actions, horizons, head, observed).numpy()


def evaluate_seed(model: Optional[WorldModel], config: ProtocolConfig, seed: int,
                  bev_config: BevConfig, head: Optional[BevMotionHead] = None
                  ) -> List[Tuple[str, int, int, Dict[str, float]]]:
    """
    Every mode's scores on one seed's windows: (mode, k, seed, scores) records.

    With a motion ``head``, ``model_*`` are the head's predictions and ``decoder_*`` the
    DreamerV3 decoder's of the same model (without a head ``model_*`` are the decoder's).
    """
    frames, lanes = record_episode(config.scenario, seed, config)
    points = model.cfg.intention_points if model is not None else 8
    views = EpisodeViews(frames, lanes, bev_config, config, points)
    windows = draw_windows(views, config, seed)
    own_inputs, own_posts = filter_episode(model, views, shared=False)
    fused_inputs, fused_posts = filter_episode(model, views, shared=True)
    suffix = '' if model is not None else '_oracle'
    predicted: Dict[str, np.ndarray] = {}
    if model is not None:
        decoder = 'decoder' if head is not None else 'model'
        predicted[f'{decoder}_local'] = model_predictions(model, views, own_posts, windows,
                                                          config.horizons)
        predicted[f'{decoder}_shared'] = model_predictions(model, views, fused_posts, windows,
                                                           config.horizons)
    if head is not None:
        predicted['model_local'] = model_predictions(model, views, own_posts, windows,
                                                     config.horizons, head, own_inputs)
        predicted['model_shared'] = model_predictions(model, views, fused_posts, windows,
                                                      config.horizons, head, fused_inputs)
    records = []
    for w, (role, t0) in enumerate(windows):
        missed = set(frames[t0].states) - {frames[t0].egos[role].actor_id}
        for t in range(t0 - config.context + 1, t0 + 1):
            missed -= frames[t].seen[role]
        fused = fused_inputs[t0][role]
        shared_only = (fused[CHANNEL_INDEX['shared_vehicles']] > 0) \
            & (fused[CHANNEL_INDEX['seen_vehicles']] == 0)
        for h, k in enumerate(config.horizons):
            truth = classes_of(views.truth(role, t0 + k), CHANNEL_INDEX)
            hidden = views.boxes_mask(role, t0 + k, missed) & truth[2]
            # k = 0: the true vehicle pixels only the updated BEV's shared channel holds
            shared = shared_only & truth[2] if k == 0 else None
            candidates = {
                'copy_last_own': own_inputs[t0][role],
                f'copy_last_fused{suffix}': fused_inputs[t0][role],
                f'const_velocity_fused{suffix}': views.const_velocity(role, t0, k),
            }
            for mode, probs in predicted.items():
                candidates[mode] = probs[w, h]
            for mode, bev in candidates.items():
                records.append((mode, k, seed, frame_scores(classes_of(bev, CHANNEL_INDEX),
                                                            truth, hidden, shared)))
    return records


def run(model: Optional[WorldModel], config: ProtocolConfig,
        bev_config: Optional[BevConfig] = None,
        per_seed: Optional[Dict[int, List[Dict]]] = None,
        head: Optional[BevMotionHead] = None) -> List[Dict]:
    """
    Run the protocol over every seed -> CSV rows (``prediction_metrics.aggregate``).

    ``per_seed``, if given, receives each seed's own rows: the pooled interval is over windows,
    which are not independent within an episode, so the seeds are reported one by one too.
    """
    bev_config = bev_config or BevConfig.from_yaml()
    if model is not None and bev_config.size != model.cfg.bev_size:
        bev_config = bev_config.resized(model.cfg.bev_size)
    records = []
    for seed in config.seeds:
        seed_records = evaluate_seed(model, config, seed, bev_config, head)
        if per_seed is not None:
            per_seed[seed] = aggregate(seed_records)
        records += seed_records
    return aggregate(records)


def build_parser() -> argparse.ArgumentParser:
    """Command line of the protocol."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--checkpoint', default='', help='world model; none = baselines only')
    parser.add_argument('--scenario', default=ProtocolConfig.scenario)
    parser.add_argument('--seeds', type=int, nargs='+', default=list(ProtocolConfig.seeds))
    parser.add_argument('--steps', type=int, default=ProtocolConfig.steps)
    parser.add_argument('--windows', type=int, default=ProtocolConfig.windows)
    parser.add_argument('--horizons', type=int, nargs='+', default=list(HORIZONS))
    parser.add_argument('--comm-range', type=float, default=ProtocolConfig.comm_range)
    parser.add_argument('--bev-size', type=int, default=0,
                        help='px without a checkpoint (default: config/bev.yaml)')
    parser.add_argument('--quick', action='store_true',
                        help=f'1 seed, {QUICK.steps} steps, {QUICK.windows} windows, '
                             f'k in {QUICK.horizons}')
    parser.add_argument('--decoder-only', action='store_true',
                        help="ignore the checkpoint's motion head: model_* decode (z_k, h_k) "
                             'alone (DreamerV3)')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--out', default='results/prediction_sharing.csv')
    parser.add_argument('--combine', nargs='+', default=[], metavar='CSV',
                        help='no evaluation: combine one-seed CSVs (runs with one --seeds '
                             'each, e.g. in parallel) into OUT, mean over seeds')
    parser.add_argument('--per-seed', action='store_true',
                        help="also write each seed's rows to OUT_seedN.csv and print the mean "
                             'over seeds with its interval')
    return parser


def print_rows(title: str, rows: Sequence[Dict], count: str = 'windows') -> None:
    """Print the vehicle rows of a table, one line each."""
    print(f'--- {title}')
    for row in rows:
        if row['metric'] in ('vehicle_iou', 'hidden_recall', 'shared_recall') \
                and math.isfinite(row['mean']):
            print(f"{row['mode']:28s} k={row['k']:2d} {row['metric']:14s} {row['mean']:.4f} "
                  f"[{row['ci_low']:.4f}, {row['ci_high']:.4f}] {count}={row[count]}")


def main(argv: Optional[List[str]] = None) -> int:
    """Run the protocol and write the CSV."""
    args = build_parser().parse_args(argv)
    if args.combine:
        rows = combine_seeds([read_csv(path) for path in args.combine])
        write_csv(rows, args.out)
        print_rows("mean of the seeds' means, 95 % interval over seeds", rows, 'seeds')
        return 0
    torch.set_num_threads(args.threads)
    if args.quick:
        config = replace(QUICK, scenario=args.scenario, comm_range=args.comm_range)
    else:
        config = ProtocolConfig(args.scenario, tuple(args.seeds), args.steps, args.windows,
                                tuple(args.horizons), comm_range=args.comm_range)
    model = None
    head = None
    if args.checkpoint:
        from call_world_model.checkpoint import load
        model = load(args.checkpoint, load_optimizers=False).world_model.eval()
        if not args.decoder_only:
            head = load_head(args.checkpoint, model.cfg, missing_ok=True)
    bev_config = BevConfig.from_yaml()
    if args.bev_size and model is None:
        bev_config = bev_config.resized(args.bev_size)
    start = time.monotonic()
    per_seed: Optional[Dict[int, List[Dict]]] = {} if args.per_seed else None
    rows = run(model, config, bev_config, per_seed, head)
    write_csv(rows, args.out)
    print_rows('all seeds (interval over windows)', rows)
    if per_seed is not None:
        stem = args.out[:-4] if args.out.endswith('.csv') else args.out
        for seed, seed_rows in per_seed.items():
            write_csv(seed_rows, f'{stem}_seed{seed}.csv')
            print_rows(f'seed {seed}', seed_rows)
        if len(per_seed) > 1:
            print_rows("mean of the seeds' means, 95 % interval over seeds",
                       combine_seeds(list(per_seed.values())), 'seeds')
    print(f'wrote {args.out} ({len(rows)} rows, {time.monotonic() - start:.1f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""
The CALL vehicle pipeline for a whole fleet, without ROS: the stages the nodes run, in order.

Every step of every vehicle runs the node packages' own ROS-free stages, so what a model is
trained and evaluated on is what the nodes feed it:
perception (``call_perception.perception_stage``) -> world model
(``call_world_model.model_stage``) -> communication (``call_comm.comm_stage``) -> policy and
driver (``call_vehicle.driver``). The fleet's observe steps run as one batch (``batched``), as
a container's world-model nodes do; ``batched=False`` observes each vehicle alone, as separate
node processes do (a batch equals the single steps to float rounding only).

Step semantics (which information of which step a vehicle uses; the nodes honour the same):

1. step t renders the ego's BEV from its observation at t, the neighbours it accepted at step
   t - 1 (their step t - 1 messages: pose, z, h, declared waypoints), and its own declared plan
   (before the first plan: its route); the vehicles only a neighbour sees come from its
   latent, decoded with the shared decoder (``call_world_model.neighbour_decoding``: every
   accepted sender of the fleet once, in ONE decoder batch per step) and warped into the ego
   frame by the perception stage (paper Fig. 4c); a malformed or non-finite latent is dropped
   with its neighbour and counted (``latents_dropped``), as the comm inbox drops it;
2. the world model observes BEV_t with a_{t-1}, those neighbours and the own plan, and updates
   E (valid once E over K steps exists);
3. the range gate takes E (NaN while not valid); a valid state is sent as the step t message,
   carrying the pose at t and the plan declared before step t's planning;
4. a valid state is planned from (the pluggable ``FleetPolicy``), an invalid one gives the
   controlled stop; the driver renews the declared plan when the plan is renewed;
5. each vehicle accepts the step t - 1 messages of the other vehicles inside its range (after
   step t's E) at its pose at t, nearest first; they enter its step t + 1. This is a one-step
   V2V latency: a message waits one step before a receiver takes it, because a receiver's
   step t may start before or after another vehicle's step t message arrives (DDS delivery
   order), while every step t - 1 message is in by then; so the ROS graph accepts exactly
   what this pipeline accepts (``call_comm.inbox.Inbox.collect``'s ``before``).

What crosses a message is what the nodes' messages carry (the parity test with the ROS graph
checks it bit for bit): a vehicle reads its pose, speed and the other vehicles' boxes as the
CARLA bridge sends them (``call_vehicle.carla_wire``: headings through a quaternion, the
status speed as float32) and commands the simulator with float32 controls; a neighbour's
message is encoded and decoded with ``call_comm.wire_codec`` (float32 pose, packed intention,
h in ``h_encoding``) and rounded as SharedInformation carries it (``comm_stage.received``);
an LSS message carries no intention (the paper's latent state sharing, and the size
``call_experiments.bandwidth`` counts for it), so no LSS receiver reads a declared plan;
the range gate takes E as the float32 LatentState field. The posterior is its mode
(``sample_posterior`` false, as config/world_model.yaml), see ``call_world_model.model_stage``.

``h_transport`` decides which h_j a receiver holds: ``full`` (the sender's own h, as when h is
on the wire) or ``replica`` (h rebuilt from the (z_j, a_j) stream with the shared sequence
model, restarted from a keyframe quantised like call_comm's (``keyframe_encoding``) every
``keyframe_period`` steps and at episode start, as call_comm.replica does on a loss-free link).
"""
from dataclasses import dataclass, fields, replace
import math
from typing import Any, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple

from call_comm.comm_stage import CommStage, received
from call_comm.range_gate import RangeGate
from call_comm.wire_codec import dequantise_h, H_ENCODINGS, quantise_h, ZLayout
from call_perception.bev_raster import BevConfig
from call_perception.fusion import FusionConfig, SharedNeighbour
from call_perception.neighbour_views import NeighbourView, VIEW_CHANNELS
from call_perception.perception_stage import Box, PerceptionStage
from call_perception.road_map import RoadMap
from call_vehicle.carla_wire import float32, received_yaw, sent_control
from call_vehicle.driver import Command, Driver
from call_vehicle.vehicle_control import VehicleControl
from call_world_model.model_stage import (ModelOutput, ModelStage, observe_fleet,
                                          SharedLatent)
from call_world_model.neighbour_decoding import decode_neighbour_vehicles, latent_problem
from call_world_model.observe_batch import ObserveBatcher
from call_world_model.world_model import WorldModel
import numpy as np
import torch

MODES = ('local', 'lss', 'lsi', 'full')
SHARING_MODES = ('lss', 'lsi')      # the modes whose vehicles exchange latents
H_TRANSPORTS = ('full', 'replica')


@dataclass(frozen=True)
class PipelineConfig:
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
    heuristic_lookahead: float = 12.0
    heuristic_speed: float = 8.0
    heuristic_steer_gain: float = 1.0
    h_transport: str = 'full'
    keyframe_period: int = 100
    keyframe_encoding: str = 'int8'
    h_encoding: str = 'fp16'        # full h on the wire (call_comm's h_encoding)
    max_waypoints: int = 5          # intention points on the wire (call_comm's max_waypoints)
    sample_posterior: bool = False  # the vehicles' filtering posterior: mode (see module doc)
    neighbour_views: bool = True    # decoded neighbour latents join the BEV (paper Fig. 4c)

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
        if self.h_encoding not in H_ENCODINGS:
            raise ValueError(f'h_encoding must be one of {sorted(H_ENCODINGS)}, got '
                             f'{self.h_encoding!r}')
        if self.keyframe_period < 1:
            raise ValueError(f'keyframe_period must be >= 1, got {self.keyframe_period}')
        if math.isnan(self.c) or self.c < 0:
            raise ValueError(f'threshold c must be >= 0 (inf allowed), got {self.c}')
        for name in ('sensor_range', 'heuristic_lookahead', 'heuristic_speed'):
            if not getattr(self, name) > 0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)}')

    @property
    def shares(self) -> bool:
        """Tell whether vehicles exchange latents (lss, lsi)."""
        return self.mode in SHARING_MODES

    @property
    def shares_intention(self) -> bool:
        """Tell whether messages carry the declared plan (lsi; LSS shares the latent only)."""
        return self.mode == 'lsi'

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> 'PipelineConfig':
        """Pick this class's keys out of a larger mapping (e.g. all of train.yaml)."""
        names = {f.name: f.type for f in fields(cls)}
        picked = {k: v for k, v in values.items() if k in names}
        for key, value in list(picked.items()):
            if key in ('mode', 'h_transport', 'keyframe_encoding', 'h_encoding'):
                picked[key] = str(value)
            elif key in ('occlusion', 'sample_posterior', 'neighbour_views'):
                picked[key] = bool(value)
            elif key in ('keyframe_period', 'max_waypoints'):
                picked[key] = int(value)
            else:
                picked[key] = float(value)
        return cls(**picked)


@dataclass(frozen=True)
class Message:
    """What a vehicle sent at a step (its LatentMessage, decoded as receivers hold it)."""

    x: float
    y: float
    yaw: float
    z_indices: np.ndarray      # (stoch,)
    h: np.ndarray              # (deter,) as receivers hold it (own or rebuilt)
    waypoints: np.ndarray      # (K, 2) declared plan, map frame; (0, 2) before the first
    speed: float = 0.0         # [m/s] as on the wire (the comm node's odometry speed)
    stamp: float = 0.0         # [s] simulation time of the sender's state


@dataclass(frozen=True)
class VehicleStep:
    """One vehicle's step: what went in and what came out (for replay, records, parity)."""

    bev: np.ndarray                    # uint8 (C, S, S)
    prev_action: int                   # a_{t-1}
    intention: Optional[np.ndarray]    # (P, 2) own intention fed to the model (lsi)
    shared: Optional[Any]              # (1,)-SharedBatch fed to the model, or None
    neighbours: Tuple[str, ...]        # the accepted senders used at this step, nearest first
    error: float                       # E (partial while warming up)
    valid: bool
    comm_range: float                  # the gate's range after this step's E [m]
    action: Optional[int] = None       # chosen at this step (None until ``act``)
    view_vehicles: int = 0             # vehicles added from the neighbours' decoded latents
    senders: Tuple[Message, ...] = ()  # the accepted senders' messages, as ``neighbours``


class FleetPolicy(Protocol):
    """Chooses the actions of the valid vehicles (a heuristic, the actor, the look-ahead)."""

    def choose(self, indices: Sequence[int], outputs: Sequence[ModelOutput],
               observations: Sequence[Any]) -> List[Tuple[int, Optional[Sequence[int]]]]:
        """Return (action, planned actions of a renewed plan or None) per listed vehicle."""

    def forget(self, index: int) -> None:
        """Drop vehicle ``index``'s kept plan (it stopped or a new episode started)."""


class VehiclePipeline:
    """Every CALL vehicle of a simulator stepped through the node stages (module doc)."""

    def __init__(self, world_model: WorldModel, settings: PipelineConfig, lanes: Sequence[Any],
                 driver: Driver, bev_config: Optional[BevConfig] = None,
                 error_horizon: Optional[int] = None, batched: bool = True,
                 fusion: FusionConfig = FusionConfig(),
                 opendrive: Optional[str] = None) -> None:
        """
        Bind the shared model, the sharing settings, the road and the vehicles' driver.

        ``opendrive``: the map as the simulator sends it to the nodes (CarlaWorldInfo); when
        given, the road is drawn from it, as perception does, rather than from ``lanes``.
        """
        self.wm = world_model
        self.cfg = world_model.cfg
        self.settings = settings
        if settings.h_transport == 'replica' and self.cfg.condition_sequence_model:
            raise ValueError('h_transport replica needs a world model with '
                             'condition_sequence_model: false (h must depend on (z, a) only)')
        if len(driver.actions) != self.cfg.num_actions:
            raise ValueError(f'the action set has {len(driver.actions)} actions, the world '
                             f'model {self.cfg.num_actions}')
        self.driver = driver
        self.z_layout = ZLayout.of(self.cfg)     # the wire form of its z (CodecError: none)
        self.bev_config = bev_config or BevConfig.from_yaml()
        if self.bev_config.size != self.cfg.bev_size:
            self.bev_config = resized(self.bev_config, self.cfg.bev_size)
        self.road_map = (RoadMap.from_opendrive(opendrive) if opendrive is not None
                         else RoadMap.from_lanes(lanes))
        self.fusion = fusion
        self.error_horizon = int(error_horizon or self.cfg.error_horizon)
        self.batched = batched
        self.batcher = ObserveBatcher(world_model, sample=settings.sample_posterior)
        self.roles: List[str] = []

    # ------------------------------------------------------------------ episode
    def reset(self, roles: Sequence[str]) -> None:
        """Start an episode: fresh model states, gates, plans and no messages."""
        s = self.settings
        self.roles = list(roles)
        self.perception = PerceptionStage(
            self.bev_config, self.road_map, s.sensor_range, s.occlusion, s.mode == 'full',
            self.fusion, share_intention=s.shares_intention)
        self.models = [ModelStage(self.wm, self.error_horizon, s.shares_intention)
                       for _ in self.roles]
        self.comms = [CommStage(RangeGate(s.initial_range, s.range_step, s.max_range, s.c))
                      for _ in self.roles]
        self.plans: List[np.ndarray] = [np.zeros((0, 2)) for _ in self.roles]
        self.messages: Dict[str, Message] = {}     # sent at the current step
        self.heard: Dict[str, Message] = {}        # those of the step before (accepted from)
        self.accepted: List[Tuple[str, ...]] = [() for _ in self.roles]
        self.outputs: List[Optional[ModelOutput]] = [None] * len(self.roles)
        self.steps: List[VehicleStep] = []
        self._replica_h: Optional[torch.Tensor] = None
        self._replica_age = 0
        self.latents_dropped = 0  # malformed or non-finite neighbour latents, never decoded
        self.views_decoded = 0  # neighbour latents decoded into vehicle masks

    def restart(self, role: str) -> None:
        """
        Start one vehicle afresh (it respawned on a new route): new model state, gate, plan.

        The others keep theirs; its last message is withdrawn, so nobody renders it where it
        was, and it warms up again as a vehicle that has just joined.
        """
        i = self.roles.index(role)
        s = self.settings
        self.models[i] = ModelStage(self.wm, self.error_horizon, s.shares_intention)
        self.comms[i] = CommStage(RangeGate(s.initial_range, s.range_step, s.max_range, s.c))
        self.plans[i] = np.zeros((0, 2))
        self.accepted[i] = ()
        self.messages.pop(role, None)
        self.heard.pop(role, None)
        self.accepted = [tuple(n for n in names if n != role) for names in self.accepted]

    def box(self, vehicle: Any) -> Box:
        """Return another vehicle's box as its object message gives it (ego sizes if unknown)."""
        length = vehicle.length if vehicle.length > 0 else self.settings.ego_length
        width = vehicle.width if vehicle.width > 0 else self.settings.ego_width
        return Box(vehicle.x, vehicle.y, received_yaw(vehicle.yaw), length, width)

    def ego_box(self, vehicle: Any) -> Box:
        """Return the ego's box as its nodes know it: odometry pose, configured size."""
        return Box(vehicle.x, vehicle.y, received_yaw(vehicle.yaw), self.settings.ego_length,
                   self.settings.ego_width)

    # ------------------------------------------------------------------ stages 1-3
    def observe(self, observations: Mapping[str, Any]) -> List[VehicleStep]:
        """Perceive, observe and gate every vehicle's step (semantics 1-3 of the module doc)."""
        requests, neighbour_lists, perceived_list, sent_lists = [], [], [], []
        fleet_masks = self._neighbour_views()
        for i, role in enumerate(self.roles):
            masks = fleet_masks[i]
            obs = observations[role]
            ego = self.ego_box(obs.ego)
            names = tuple(name for name in self.accepted[i] if name in masks)
            sent = [self.heard[name] for name in names]
            shared_boxes = [SharedNeighbour(name, m.x, m.y, m.yaw, m.waypoints,
                                            self.fusion.default_length,
                                            self.fusion.default_width)
                            for name, m in zip(names, sent)]
            views = [NeighbourView(name, m, masks[name]) for name, m in zip(names, sent)
                     if masks[name] is not None]
            route = np.asarray(obs.route, dtype=np.float64).reshape(-1, 2)
            perceived = self.perception.render(ego, [self.box(v) for v in obs.others],
                                               shared_boxes, self.plans[i], route, views)
            perceived_list.append(perceived)
            latents = [SharedLatent(m.x, m.y, m.yaw, m.z_indices, m.h, m.waypoints)
                       for m in sent]
            bev = torch.from_numpy(perceived.bev)[None]
            plan = self.plans[i] if len(self.plans[i]) else None
            requests.append(self.models[i].request(bev, (ego.x, ego.y, ego.yaw), latents, plan))
            neighbour_lists.append(names)
            sent_lists.append(tuple(sent))
        outputs = self._observe(requests)
        self.steps = []
        for i, (request, output) in enumerate(zip(requests, outputs)):
            # E crosses LatentState as float32 before the gate takes it
            comm_range = self.comms[i].step(output.valid, float32(output.error))
            intention = (request.intention[0].numpy()
                         if request.intention is not None else None)
            self.steps.append(VehicleStep(
                request.bev[0].numpy(), request.prev_action, intention, request.shared,
                neighbour_lists[i], output.error, output.valid, comm_range,
                view_vehicles=perceived_list[i].view_vehicles, senders=sent_lists[i]))
        self.outputs = outputs
        self._send(observations, outputs)
        return self.steps

    def _neighbour_views(self) -> List[Dict[str, Optional[np.ndarray]]]:
        """
        Per vehicle: each accepted sender with a decodable latent -> its decoded vehicle mask.

        ``batched``: every sender accepted by some vehicle of the fleet is decoded once, in ONE
        decoder batch for the step (as the comm nodes of a container, which remember each
        other's decodes); otherwise each vehicle decodes its own neighbours as one batch, as a
        comm node in a process of its own does (a batch equals single rows to float rounding
        only). A sender whose latent is malformed or non-finite is left out (dropped with its
        neighbour and counted); without ``neighbour_views`` the masks are None.
        """
        cfg = self.cfg
        bad = set()
        for name in dict.fromkeys(n for names in self.accepted for n in names):
            m = self.heard[name]
            if latent_problem(m.z_indices, m.h, cfg.stoch, cfg.classes, cfg.deter):
                self.latents_dropped += 1
                bad.add(name)
        wanted = [tuple(n for n in names if n not in bad) for names in self.accepted]
        if not self.settings.neighbour_views:
            return [dict.fromkeys(names) for names in wanted]
        groups = [list(dict.fromkeys(n for names in wanted for n in names))] if self.batched \
            else [list(names) for names in wanted]
        decoded: List[Dict[str, np.ndarray]] = []
        for group in groups:
            if not group:
                decoded.append({})
                continue
            out = decode_neighbour_vehicles(
                self.wm, [(self.heard[n].z_indices, self.heard[n].h) for n in group],
                VIEW_CHANNELS)
            self.views_decoded += len(out.kept)
            decoded.append({group[k]: mask for k, mask in zip(out.kept, out.masks)})
        return [{n: decoded[0 if self.batched else i][n] for n in names}
                for i, names in enumerate(wanted)]

    def _observe(self, requests) -> List[ModelOutput]:
        with torch.no_grad():
            if self.batched:
                return observe_fleet(self.batcher, self.models, requests)
            return [observe_fleet(self.batcher, [stage], [request])[0]
                    for stage, request in zip(self.models, requests)]

    def _send(self, observations: Mapping[str, Any], outputs: Sequence[ModelOutput]) -> None:
        """Step t's messages of the valid vehicles (stage 3)."""
        held = self._received_h(outputs)
        self.heard, self.messages = self.messages, {}
        encoding = H_ENCODINGS[self.settings.h_encoding]
        full = self.settings.h_transport == 'full'
        for i, (role, output) in enumerate(zip(self.roles, outputs)):
            if not CommStage.sends(output.valid):
                continue
            ego = observations[role].ego
            plan = self.plans[i] if self.settings.shares_intention else np.zeros((0, 2))
            got = received(ego.x, ego.y, received_yaw(ego.yaw), output.z_indices(),
                           output.h() if full else np.zeros(0, np.float32), plan,
                           encoding if full else H_ENCODINGS['none'],
                           self.settings.max_waypoints, abs(float(ego.speed)),
                           self.z_layout)
            self.messages[role] = Message(got.x, got.y, got.yaw, got.z_indices,
                                          got.h if full else held[i], got.intention_xy,
                                          got.speed, float(observations[role].time))

    @torch.no_grad()
    def _received_h(self, outputs: Sequence[ModelOutput]) -> List[np.ndarray]:
        """Return the h_j receivers hold for this step: the sender's own or its replica."""
        deter = torch.cat([o.post['deter'] if o.post is not None
                           else torch.zeros(1, self.cfg.deter) for o in outputs])
        if self.settings.h_transport == 'full':
            return list(deter.numpy())
        if self._replica_h is None or self._replica_age % self.settings.keyframe_period == 0:
            self._replica_age = 1
            encoding = H_ENCODINGS[self.settings.keyframe_encoding]
            h = torch.from_numpy(np.stack([dequantise_h(encoding, quantise_h(row, encoding))
                                           for row in deter.numpy()]))
        else:
            self._replica_age += 1
            z = torch.from_numpy(np.stack([self._replica_z[i] for i in range(len(outputs))]))
            actions = torch.tensor([self._replica_action[i] for i in range(len(outputs))])
            h = self.wm.rssm.advance(self._replica_h, z, actions)
        self._replica_h = h
        self._replica_z = [o.z_indices().astype(np.int64) if o.post is not None
                           else np.zeros(self.cfg.stoch, np.int64) for o in outputs]
        self._replica_action = [0] * len(outputs)
        return list(h.numpy())

    # ------------------------------------------------------------------ stages 4-5
    def act(self, observations: Mapping[str, Any], policy: FleetPolicy
            ) -> Dict[str, VehicleControl]:
        """Plan (or stop) every vehicle, declare plans, accept the step's neighbours."""
        valid = [i for i, o in enumerate(self.outputs) if o.valid]
        chosen = dict(zip(valid, policy.choose(
            valid, [self.outputs[i] for i in valid],
            [observations[self.roles[i]] for i in valid]))) if valid else {}
        controls = {}
        for i, role in enumerate(self.roles):
            ego = observations[role].ego
            # the planner node's pose (odometry) and speed (vehicle_status, float32)
            pose, speed = (ego.x, ego.y, received_yaw(ego.yaw)), abs(float32(ego.speed))
            if i in chosen:
                action, planned = chosen[i]
                command = self.driver.drive(action, planned, pose, speed)
            else:
                policy.forget(i)
                command = self.driver.stop(pose, speed)
            self._apply(i, command)
            controls[role] = sent_control(command.control)
        if self.settings.h_transport == 'replica':
            self._replica_action = [stage.action for stage in self.models]
        self._accept(observations)
        return controls

    def _apply(self, index: int, command: Command) -> None:
        self.models[index].action = command.action
        if command.waypoints is not None:
            self.plans[index] = command.waypoints
        self.steps[index] = replace(self.steps[index], action=command.action)

    def _accept(self, observations: Mapping[str, Any]) -> None:
        """Each vehicle's neighbours for the next step (stage 5); none without sharing."""
        if not self.settings.shares:
            self.accepted = [() for _ in self.roles]
            return
        for i, role in enumerate(self.roles):
            ego = observations[role].ego
            senders = [(name, m.x, m.y) for name, m in self.heard.items() if name != role]
            self.accepted[i] = tuple(name for name, _ in
                                     self.comms[i].accept((ego.x, ego.y), senders))

    def prediction_errors(self) -> Dict[str, float]:
        """Return the current E per vehicle (NaN while warming up)."""
        return {role: (o.error if o is not None and o.valid else float('nan'))
                for role, o in zip(self.roles, self.outputs)}


def padded_shared(cfg: Any, shared: Optional[Any]) -> Dict[str, np.ndarray]:
    """Pad a (1, n)-SharedBatch (or None) to max_neighbours-slot arrays for the replay."""
    n = cfg.max_neighbours
    out = {'z_indices': np.zeros((n, cfg.stoch), np.int64),
           'h': np.zeros((n, cfg.deter), np.float32),
           'intention': np.zeros((n, cfg.intention_points, 2), np.float32),
           'rel_pose': np.zeros((n, 3), np.float32), 'mask': np.zeros(n, bool)}
    if shared is not None:
        count = shared.mask.shape[-1]
        for key in out:
            out[key][:count] = getattr(shared, key)[0].numpy()
    return out


def resized(config: BevConfig, size: int) -> BevConfig:
    """Keep the field of view at another pixel size (tiny test models use 32 px BEVs)."""
    factor = config.size / size
    return BevConfig(size=size, metres_per_pixel=config.metres_per_pixel * factor,
                     ego_row=config.ego_row / factor, ego_col=config.ego_col / factor,
                     marking_thickness=config.marking_thickness,
                     waypoint_thickness=max(1, round(config.waypoint_thickness / factor)))

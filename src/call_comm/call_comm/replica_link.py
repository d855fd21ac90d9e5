"""
Both ends of the V2V link, ROS-free: what the comm node runs per step.

Tests and bench/ drive the same code without DDS.

`LinkSender` turns the ego's LatentState into a signed WireMessage: full h (`full` transport)
or z + action with keyframes chosen by `keyframes.KeyframeSender` (`replica` transport).
`LinkReceiver` wraps the `Inbox`: every verified message advances the sender's replica (in
arrival order, before range gating; a lazy bank only queues the step), the delivered
neighbours carry the rebuilt h (computed at delivery, for those inside the range) or none
(`synchronised` False), and senders it cannot rebuild get a signed keyframe request.
"""
import dataclasses
import enum
import math
from typing import Dict, Hashable, List, Optional, Tuple

from call_comm import wire_codec
from call_comm.auth import Fleet, Signer
from call_comm.budget import TokenBuckets
from call_comm.inbox import Inbox, InboxConfig, Neighbour, StepDelivery
from call_comm.keyframes import (KeyframeRequester, KeyframeRequestWire, KeyframeSender,
                                 request_payload, RequestGuard)
from call_comm.neighbours import distance
from call_comm.replica import ReplicaBank
import numpy as np


class LinkSender:
    """Builds the ego's signed messages; `keyframes` None = full h every step."""

    def __init__(self, role: str, signer: Signer, h_encoding: int, max_waypoints: int,
                 keyframes: Optional[KeyframeSender] = None, max_speed: float = 40.0,
                 plausibility_slack: float = 2.0,
                 layout: wire_codec.ZLayout = wire_codec.DEFAULT_LAYOUT) -> None:
        """
        `h_encoding` is the full-h encoding (ignored in replica mode).

        `layout` is the fleet model's z layout.

        A jump of the ego farther than `max_speed` allows (the receivers' plausibility rule)
        is a respawn: the message says so with a new episode epoch.
        """
        self.role = role
        self.signer = signer
        self.h_encoding = h_encoding
        self.max_waypoints = max_waypoints
        self.keyframes = keyframes
        self.layout = layout
        self.keyframe_reason: Optional[str] = None
        self.epoch = 0
        self.max_speed = max_speed
        self.plausibility_slack = plausibility_slack
        self._last: Optional[Tuple[float, float, float]] = None     # stamp, x, y

    def _note_pose(self, stamp: float, x: float, y: float) -> None:
        """Start a new episode epoch when the ego moved faster than any vehicle can (respawn)."""
        last, self._last = self._last, (stamp, x, y)
        if last is None:
            return
        reachable = self.max_speed * max(0.0, stamp - last[0]) + self.plausibility_slack
        if stamp < last[0] or distance(last[1:], (x, y)) > reachable:
            self.epoch = (self.epoch + 1) % wire_codec.EPOCH_MODULO

    def message(self, sequence: int, stamp: Tuple[int, int],
                pose: Tuple[float, float, float, float], z_indices: np.ndarray,
                h: np.ndarray, action: int, plan_xy: np.ndarray) -> wire_codec.WireMessage:
        """Encode and sign one message; CodecError if the state is not encodable."""
        replica = self.keyframes is not None
        self._note_pose(stamp[0] + stamp[1] * 1e-9, float(pose[0]), float(pose[1]))
        wire = wire_codec.encode(
            self.signer.key_id, sequence, stamp[0], stamp[1], pose, z_indices,
            [] if replica else h, action, plan_xy,
            wire_codec.H_NONE if replica else self.h_encoding, self.max_waypoints,
            self.layout)
        self.keyframe_reason = None
        if replica:
            out = self.keyframes.outgoing(wire.sequence, z_indices, action, h)
            wire = dataclasses.replace(wire, h_encoding=out.h_encoding, h_data=out.h_data)
            self.keyframe_reason = out.reason
        wire.epoch = self.epoch
        wire.signature = self.signer.sign(wire_codec.signed_payload(wire))
        return wire


class RequestOutcome(enum.Enum):
    """Where a received keyframe request ended (each one in exactly one)."""

    ACCEPTED = 'accepted'
    NOT_FOR_US = 'not_for_us'           # addressed to another vehicle
    OWN = 'own'                         # the ego's own request (DDS echoes local samples)
    UNKNOWN_REQUESTER = 'unknown_requester'
    RATE_LIMITED = 'rate_limited'       # the requester's token bucket is empty
    BAD_SIGNATURE = 'bad_signature'
    REPLAY = 'replay'                   # stale, or not newer than the requester's last one
    MALFORMED = 'malformed'


@dataclasses.dataclass
class ReplicaCounters:
    """Replica-mode statistics of one receiver."""

    keyframes_received: int = 0
    requests_sent: int = 0
    requests_received: int = 0
    drift_max_step: float = 0.0       # reset by `LinkReceiver.collect`
    drift_l2: List[float] = dataclasses.field(default_factory=list)
    requests: Dict[RequestOutcome, int] = dataclasses.field(
        default_factory=lambda: dict.fromkeys(RequestOutcome, 0))


class LinkReceiver:
    """Inbox + replica bank + keyframe requests of one ego."""

    def __init__(self, config: InboxConfig, fleet: Fleet, signer: Optional[Signer] = None,
                 bank: Optional[ReplicaBank] = None,
                 requester: Optional[KeyframeRequester] = None,
                 request_max_age: float = 0.5,
                 request_budget: Tuple[float, float] = (2.0, 0.05)) -> None:
        """
        `bank` None = full-h mode (h is passed through as received).

        `request_budget` = (burst, refill per step) of each requester's token bucket: how many
        keyframes one receiver can make the ego send.
        """
        self.fleet = fleet
        self.signer = signer
        self.bank = bank
        self.requester = requester
        self.inbox = Inbox(config, fleet, self._rebuild if bank is not None else None)
        self.guard = RequestGuard(config.own_id, request_max_age)
        self.counters = ReplicaCounters()
        self.request_budget = TokenBuckets(*request_budget)
        self.step = 0
        self._request_counter = 0
        self._wanted: List[Tuple[str, int]] = []

    def receive(self, wire: wire_codec.WireMessage, wire_bytes: int, now: Optional[float],
                writer: Hashable = None) -> Optional[enum.Enum]:
        """One decoded LatentMessage off the air (see `Inbox.receive`)."""
        return self.inbox.receive(wire, wire_bytes, now, writer)

    def receive_raw(self, raw: bytes, now: Optional[float],
                    writer: Hashable = None) -> Optional[enum.Enum]:
        """One serialized LatentMessage off the air (see `Inbox.receive_raw`)."""
        return self.inbox.receive_raw(raw, now, writer)

    def _rebuild(self, neighbour: Neighbour) -> None:
        update = self.bank.observe(neighbour.sender_id, neighbour.sequence,
                                   neighbour.z_indices, neighbour.action, neighbour.keyframe)
        if update.keyframe_completed:
            self.counters.keyframes_received += 1
            if update.drift_l2 is not None:
                self.counters.drift_l2.append(update.drift_l2)
                self.counters.drift_max_step = max(self.counters.drift_max_step,
                                                   update.drift_l2)
        neighbour.synchronised = update.synchronised
        neighbour.h = update.h if update.h is not None else np.zeros(0, dtype=np.float32)
        if self.requester is not None and neighbour.keyframe is None and \
                self.requester.should_request(neighbour.sender_id, update,
                                              neighbour.synchronised, self.step):
            self._wanted.append((neighbour.sender_id, neighbour.sequence))

    def collect(self, ego_xy: Tuple[float, float], comm_range: float,
                now: Optional[float], before: Optional[Tuple[int, int]] = None
                ) -> StepDelivery:
        """Deliver the step's neighbours inside the range and start a new step (`Inbox`)."""
        delivery = self.inbox.collect(ego_xy, comm_range, now, before)
        if self.bank is not None:
            for neighbour in delivery.neighbours:
                if neighbour.synchronised and neighbour.h.size == 0:    # queued (lazy bank)
                    h = self.bank.current_h(neighbour.sender_id)
                    neighbour.synchronised = h is not None
                    neighbour.h = h if h is not None else neighbour.h
        self.step += 1
        self.request_budget.step()
        return delivery

    def take_drift(self) -> float:
        """Largest keyframe drift (L2) since the last call."""
        value, self.counters.drift_max_step = self.counters.drift_max_step, 0.0
        return value

    def take_requests(self, stamp: Tuple[int, int]) -> List[KeyframeRequestWire]:
        """Signed keyframe requests to publish now (none without a signer)."""
        wanted, self._wanted = self._wanted, []
        out = []
        if self.signer is None:
            return out
        for target, last in dict(wanted).items():
            self._request_counter = (self._request_counter + 1) & 0xFFFFFFFF
            req = KeyframeRequestWire(self.inbox.config.own_id, target, self._request_counter,
                                      last, int(stamp[0]), int(stamp[1]))
            req.signature = self.signer.sign(request_payload(req))
            out.append(req)
        self.counters.requests_sent += len(out)
        return out

    def accept_request(self, req: KeyframeRequestWire, now: Optional[float],
                       writer: Hashable = None) -> bool:
        """Check a keyframe request; True if it is a fresh, authentic request for the ego."""
        outcome = self._check_request(req, now, writer)
        self.counters.requests[outcome] += 1
        if outcome is RequestOutcome.ACCEPTED:
            self.counters.requests_received += 1
        return outcome is RequestOutcome.ACCEPTED

    def _check_request(self, req: KeyframeRequestWire, now: Optional[float],
                       writer: Hashable) -> RequestOutcome:
        """Cheap checks first: the requester's bucket is spent before any verification."""
        own_id = self.inbox.config.own_id
        try:
            if req.requester_id == own_id:
                return RequestOutcome.OWN
            if req.target_id != own_id:
                return RequestOutcome.NOT_FOR_US
            if not self.fleet.knows(req.requester_id):
                return RequestOutcome.UNKNOWN_REQUESTER
            if not math.isfinite(req.stamp) or len(req.signature) != 64:
                return RequestOutcome.MALFORMED
            if now is not None and abs(now - req.stamp) > self.guard.max_age:
                return RequestOutcome.REPLAY
            if not self.request_budget.take((writer, req.requester_id)):
                return RequestOutcome.RATE_LIMITED
            if not self.fleet.verify(req.requester_id, request_payload(req),
                                     bytes(req.signature)):
                return RequestOutcome.BAD_SIGNATURE
            if not self.guard.accept(req, now):
                return RequestOutcome.REPLAY
        except Exception:  # noqa: B902 - hostile input must never escape as an exception
            return RequestOutcome.MALFORMED
        return RequestOutcome.ACCEPTED

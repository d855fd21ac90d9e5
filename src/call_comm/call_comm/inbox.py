"""
Validation, replay/plausibility tracking and range gating of received latent messages.

Every message from another vehicle goes through `Inbox.receive` as soon as it arrives; the
cheapest checks run first and each rejection is counted under one reason. Survivors wait as
candidates (the newest per sender) until the ego's next step, when `Inbox.collect` keeps those
inside the ego's communication range. Nothing here raises on hostile input. Senders are named
on the wire by key id; the fleet resolves it to the role name every consumer sees.

Drop reasons, in the order they are checked:
unsigned -> unknown_sender -> bad_signature -> malformed (also a keyframe chunk with a bad
header) -> replay (sequence/stamp not newer,
or older than max_age) -> implausible (stamp in the future, or position unreachable from
where the sender was last accepted at max_speed) -> out_of_range (at collect time).
"""
from dataclasses import dataclass
import enum
import math
from typing import Callable, Dict, List, Optional, Tuple

from call_comm import wire_codec
from call_comm.auth import Fleet
from call_comm.neighbours import distance, within
import numpy as np


class DropReason(enum.Enum):
    """Why a message was not handed to the consumers."""

    UNSIGNED = 'unsigned'
    BAD_SIGNATURE = 'bad_signature'
    UNKNOWN_SENDER = 'unknown_sender'
    REPLAY = 'replay'
    MALFORMED = 'malformed'
    IMPLAUSIBLE = 'implausible'
    OUT_OF_RANGE = 'out_of_range'


@dataclass
class InboxConfig:
    """Receiver limits; numbers come from config/comm.yaml."""

    own_id: str
    max_age: float = 0.5                 # [s] sim time a message stays usable
    max_speed: float = 40.0              # [m/s] fastest plausible vehicle
    plausibility_slack: float = 2.0      # [m] pose noise allowance
    plausibility_memory: float = 2.0     # [s] forget last-seen poses older than this
    expected_h_dim: Optional[int] = None  # None: accept any h length
    num_actions: int = 15
    max_waypoints: int = 64


@dataclass
class Neighbour:
    """A verified, decoded neighbour latent (the consumers' float form)."""

    sender_id: str
    sequence: int
    stamp_sec: int
    stamp_nanosec: int
    x: float
    y: float
    yaw: float
    speed: float
    z_indices: np.ndarray
    h: np.ndarray
    action: int
    intention_xy: np.ndarray
    wire_bytes: int
    distance: float = math.nan
    keyframe: Optional[wire_codec.KeyframePart] = None  # h fields as a keyframe piece
    synchronised: bool = True   # False: h unknown (replica not yet synchronised), h is empty

    @property
    def stamp(self) -> float:
        """Stamp in seconds."""
        return self.stamp_sec + self.stamp_nanosec * 1e-9


@dataclass
class StepDelivery:
    """What one ego step received: the accepted neighbours and the step's counts."""

    neighbours: List[Neighbour]
    messages_received: int
    bytes_received: int


@dataclass
class _SenderHistory:
    stamp: float
    sequence: int
    x: float
    y: float


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


class Inbox:
    """Per-ego receive state: counters, per-sender history, candidates of the current step."""

    def __init__(self, config: InboxConfig, fleet: Fleet,
                 on_verified: Optional[Callable[[Neighbour], None]] = None) -> None:
        """
        Start counters at zero; `fleet` supplies the public keys.

        `on_verified` sees every message that passed all checks, in arrival order, before it
        becomes the sender's candidate (the replica bank rebuilds h there).
        """
        self.on_verified = on_verified
        self.config = config
        self.fleet = fleet
        self.own_key_id = fleet.key_id(config.own_id) if fleet.knows(config.own_id) else None
        self.dropped: Dict[DropReason, int] = dict.fromkeys(DropReason, 0)
        self._history: Dict[str, _SenderHistory] = {}
        self._pending: Dict[str, Neighbour] = {}
        self._received_this_step = 0
        self._latest_now: Optional[float] = None

    # ------------------------------------------------------------------------ receiving
    def receive(self, msg: wire_codec.WireMessage, wire_bytes: int,
                now: Optional[float]) -> Optional[DropReason]:
        """Check one message; None if it became a candidate (or is the ego's own)."""
        try:
            if self.own_key_id is not None and msg.sender_key_id == self.own_key_id:
                return None
            self._received_this_step += 1
            self._observe_time(now)
            reason, neighbour = self._check(msg, wire_bytes, now)
        except Exception:  # noqa: B902 - hostile input must never escape as an exception
            reason, neighbour = DropReason.MALFORMED, None
        if reason is not None:
            self.dropped[reason] += 1
            return reason
        self._history[neighbour.sender_id] = _SenderHistory(
            neighbour.stamp, neighbour.sequence, neighbour.x, neighbour.y)
        if self.on_verified is not None:
            self.on_verified(neighbour)
        self._pending[neighbour.sender_id] = neighbour
        return None

    def _check(self, msg: wire_codec.WireMessage, wire_bytes: int,
               now: Optional[float]) -> Tuple[Optional[DropReason], Optional[Neighbour]]:
        cfg = self.config
        if not isinstance(msg.sender_key_id, int) or not 0 <= msg.sender_key_id <= 0xFFFFFFFF:
            return DropReason.MALFORMED, None
        if not any(msg.signature):   # a fixed-size signature field left all zeros
            return DropReason.UNSIGNED, None
        sender = self.fleet.vehicle_for_key_id(msg.sender_key_id)
        if sender is None:
            return DropReason.UNKNOWN_SENDER, None
        if not self.fleet.verify(sender, wire_codec.signed_payload(msg), bytes(msg.signature)):
            return DropReason.BAD_SIGNATURE, None
        neighbour = self._decode(msg, sender, wire_bytes)
        if neighbour is None:
            return DropReason.MALFORMED, None
        stamp = neighbour.stamp
        last = self._history.get(sender)
        if last is not None and (stamp, msg.sequence) <= (last.stamp, last.sequence):
            return DropReason.REPLAY, None
        if now is not None and now - stamp > cfg.max_age:
            return DropReason.REPLAY, None
        if now is not None and stamp - now > cfg.max_age:
            return DropReason.IMPLAUSIBLE, None
        if last is not None and stamp - last.stamp <= cfg.plausibility_memory:
            reachable = cfg.max_speed * (stamp - last.stamp) + cfg.plausibility_slack
            if distance((last.x, last.y), (msg.x, msg.y)) > reachable:
                return DropReason.IMPLAUSIBLE, None
        return None, neighbour

    def _decode(self, msg: wire_codec.WireMessage, sender: str,
                wire_bytes: int) -> Optional[Neighbour]:
        cfg = self.config
        if not _finite(msg.x, msg.y, msg.yaw, msg.speed):
            return None
        if not 0 <= msg.action < cfg.num_actions:
            return None
        if msg.stamp_sec < 0 or not 0 <= msg.stamp_nanosec < 1_000_000_000:
            return None
        try:
            z_indices = wire_codec.unpack_z(msg.z_packed)
            keyframe = wire_codec.decode_keyframe_part(msg.h_encoding, msg.h_data)
            if keyframe is not None and keyframe.count == 1:
                h = wire_codec.dequantise_h(msg.h_encoding, msg.h_data, cfg.expected_h_dim)
            else:
                h = np.zeros(0, dtype=np.float32)
            if wire_codec.intention_points(len(msg.intention_packed)) > cfg.max_waypoints:
                return None
            intention = wire_codec.unpack_intention(msg.intention_packed, msg.x, msg.y, msg.yaw)
        except wire_codec.CodecError:
            return None
        return Neighbour(
            sender_id=sender, sequence=int(msg.sequence), stamp_sec=int(msg.stamp_sec),
            stamp_nanosec=int(msg.stamp_nanosec), x=float(msg.x), y=float(msg.y),
            yaw=float(msg.yaw), speed=float(msg.speed), z_indices=z_indices, h=h,
            action=int(msg.action), intention_xy=intention, wire_bytes=int(wire_bytes),
            keyframe=keyframe, synchronised=h.size > 0)

    def _observe_time(self, now: Optional[float]) -> None:
        """Forget every sender history when simulation time jumps back (new episode)."""
        if now is None:
            return
        if self._latest_now is not None and now < self._latest_now - self.config.max_age:
            self._history.clear()
            self._pending.clear()
        self._latest_now = now

    # ------------------------------------------------------------------------- the step
    def collect(self, ego_xy: Tuple[float, float], comm_range: float,
                now: Optional[float]) -> StepDelivery:
        """Hand over the candidates inside `comm_range`; count the rest; start a new step."""
        self._observe_time(now)
        accepted: List[Neighbour] = []
        for neighbour in self._pending.values():
            if now is not None and now - neighbour.stamp > self.config.max_age:
                self.dropped[DropReason.REPLAY] += 1
                continue
            neighbour.distance = distance(ego_xy, (neighbour.x, neighbour.y))
            if within(neighbour.distance, comm_range):
                accepted.append(neighbour)
            else:
                self.dropped[DropReason.OUT_OF_RANGE] += 1
        accepted.sort(key=lambda n: n.distance)
        delivery = StepDelivery(accepted, self._received_this_step,
                                sum(n.wire_bytes for n in accepted))
        self._pending.clear()
        self._received_this_step = 0
        return delivery

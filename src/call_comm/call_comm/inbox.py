"""
Validation, replay/plausibility tracking and range gating of received latent messages.

Every message from another vehicle goes through `Inbox.receive_raw` (serialized bytes, as DDS
delivered them) or `Inbox.receive` (already decoded) as soon as it arrives. Each message ends
in exactly one outcome (`Outcome`), so a receiver's outcome counters add up to the messages
it got off the air, and their bytes to the bytes on the air.

The checks run cheapest first, and everything a peer can send without a fleet key is
rejected before any cryptography or caching (a flood of forgeries then costs a receiver
little): size bound -> own key id -> unknown key id -> replay window (sequence and stamp
newer than the sender's last accepted message, not older than max_age) -> stamp in the
future -> the (DDS writer, claimed sender) token bucket (`budget`) -> CDR decoding ->
unsigned -> field bounds (malformed) -> signature -> plausibility (position reachable from the
sender's last accepted one at max_speed, unless the sender declares a new episode epoch).
Survivors wait as candidates until the ego's next step, when `Inbox.collect` delivers, per
sender, the newest one stamped before the step (an older one is superseded; a newer one waits
for the following step) if it lies inside the ego's communication range.
Nothing here raises on hostile input. Senders are named on the wire by key id; the fleet
resolves it to the role name every consumer sees.
"""
from collections import OrderedDict
from dataclasses import dataclass, field, replace
import enum
import math
from typing import Callable, Dict, Hashable, List, Optional, Tuple

from call_comm import wire_codec
from call_comm.auth import Fleet
from call_comm.budget import TokenBuckets
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
    OVERSIZE = 'oversize'               # larger than any well-formed message (before decoding)
    RATE_LIMITED = 'rate_limited'       # the writer's budget for this sender is spent


class Outcome(enum.Enum):
    """Where a received message ended besides a drop reason."""

    ACCEPTED = 'accepted'               # delivered to the consumers
    SUPERSEDED = 'superseded'           # a newer one of the same sender came before delivery
    OWN_ID = 'own_id'                   # claims the ego's own key id (its own echo, or a spoof)


@dataclass
class Tally:
    """Cumulative count and bytes per outcome (an Outcome or a DropReason)."""

    counts: Dict[enum.Enum, int] = field(default_factory=dict)
    sizes: Dict[enum.Enum, int] = field(default_factory=dict)     # bytes

    def add(self, outcome: enum.Enum, wire_bytes: int) -> None:
        """Count one message."""
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        self.sizes[outcome] = self.sizes.get(outcome, 0) + int(wire_bytes)

    def count(self, outcome: enum.Enum) -> int:
        """Messages that ended in `outcome`."""
        return self.counts.get(outcome, 0)

    @property
    def total(self) -> int:
        """Messages counted under any outcome."""
        return sum(self.counts.values())

    @property
    def total_bytes(self) -> int:
        """Bytes of every counted message."""
        return sum(self.sizes.values())


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
    max_h_bytes: int = 8192              # h_data bound (a keyframe chunk or a full h)
    max_keyframe_chunks: int = 16        # bounds what a sender's keyframe reassembly holds
    sender_budget_burst: float = 10.0    # [messages] per (writer, sender) bucket
    sender_budget_refill: float = 3.0    # [messages/step]: one honest message per step + jitter
    # the fleet model's z: a message whose z_packed has another length is malformed
    z_layout: wire_codec.ZLayout = wire_codec.DEFAULT_LAYOUT

    @property
    def max_message_bytes(self) -> int:
        """Largest serialized message worth decoding."""
        return wire_codec.max_serialized_size(self.max_h_bytes, self.max_waypoints,
                                              self.z_layout)


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
    epoch: int = 0
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
    messages_received: int      # every message received this step, whatever its outcome
    bytes_received: int         # bytes delivered: the accepted messages
    bytes_in_range: int = 0     # bytes on the air from senders in range (accepted + superseded)


@dataclass
class _SenderHistory:
    stamp: float
    sequence: int
    x: float
    y: float
    epoch: int


@dataclass
class _Candidate:
    neighbour: Neighbour
    superseded_bytes: int = 0       # of older candidates of the same sender this step


@dataclass
class _Parsed:
    """
    One decoded message and what any receiver derives from its bytes alone.

    In a container every comm node receives the same serialized sample: it is decoded once
    per process (`_parse_raw`), its signed payload built once, and its Neighbour fields
    unpacked once per (sender, size, receiver limits); each receiver then checks replay,
    budget, signature and plausibility on its own state and gets its own Neighbour copy.
    """

    msg: wire_codec.WireMessage
    payload: Optional[bytes] = None
    neighbours: Dict[tuple, Optional['Neighbour']] = field(default_factory=dict)


PARSED_MEMO = 512      # serialized messages remembered per process (a few fleet steps)
_parsed: 'OrderedDict[bytes, _Parsed]' = OrderedDict()


def _parse_raw(raw: bytes) -> _Parsed:
    """Decode a serialized LatentMessage once per process (CodecError: not remembered)."""
    key = bytes(raw)
    known = _parsed.get(key)
    if known is not None:
        _parsed.move_to_end(key)
        return known
    parsed = _Parsed(wire_codec.decode_cdr(key))
    _parsed[key] = parsed
    if len(_parsed) > PARSED_MEMO:
        _parsed.popitem(last=False)
    return parsed


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


class Inbox:
    """Per-ego receive state: outcome tally, per-sender history, candidates of the step."""

    def __init__(self, config: InboxConfig, fleet: Fleet,
                 on_verified: Optional[Callable[[Neighbour], None]] = None) -> None:
        """
        Start counters at zero; `fleet` supplies the public keys.

        `on_verified` sees every message that passed all checks, in stamp order, when a step
        takes it or a newer one of its sender (the replica bank rebuilds h there, so the h
        delivered is the one of the message delivered, not of a newer one still waiting).
        """
        self.on_verified = on_verified
        self.config = config
        self.fleet = fleet
        self.own_key_id = fleet.key_id(config.own_id) if fleet.knows(config.own_id) else None
        self.tally = Tally()
        self.budget = TokenBuckets(config.sender_budget_burst, config.sender_budget_refill)
        self._max_bytes = config.max_message_bytes
        self._history: Dict[str, _SenderHistory] = {}
        self._pending: Dict[str, List[_Candidate]] = {}
        self._received_this_step = 0
        self._latest_now: Optional[float] = None

    @property
    def dropped(self) -> Dict[DropReason, int]:
        """Cumulative drops by reason."""
        return {reason: self.tally.count(reason) for reason in DropReason}

    # ------------------------------------------------------------------------ receiving
    def receive_raw(self, raw: bytes, now: Optional[float],
                    writer: Hashable = None) -> Optional[enum.Enum]:
        """
        Check one serialized LatentMessage; return its outcome (None: now a candidate).

        `writer` names the DDS writer it came from (None if unknown): the rate budget is kept
        per (writer, claimed sender).
        """
        if len(raw) > self._max_bytes:
            return self._count(DropReason.OVERSIZE, len(raw), now)
        size = wire_codec.message_size(raw)

        def decode() -> _Parsed:
            return _parse_raw(raw)
        try:
            header = wire_codec.peek_header(raw)
        except wire_codec.CodecError:
            return self._count(DropReason.MALFORMED, size, now)
        return self._receive(header, decode, size, now, writer)

    def receive(self, msg: wire_codec.WireMessage, wire_bytes: int, now: Optional[float],
                writer: Hashable = None) -> Optional[enum.Enum]:
        """Check one decoded message of `wire_bytes` serialized bytes (see `receive_raw`)."""
        if wire_bytes > self._max_bytes:
            return self._count(DropReason.OVERSIZE, wire_bytes, now)
        return self._receive(msg, lambda: _Parsed(msg), wire_bytes, now, writer)

    def _count(self, outcome: enum.Enum, wire_bytes: int,
               now: Optional[float]) -> enum.Enum:
        self._received_this_step += 1
        self._observe_time(now)
        self.tally.add(outcome, wire_bytes)
        return outcome

    def _receive(self, header, decode: Callable[[], _Parsed], wire_bytes: int,
                 now: Optional[float], writer: Hashable) -> Optional[enum.Enum]:
        self._received_this_step += 1
        self._observe_time(now)
        try:
            outcome, neighbour = self._check(header, decode, wire_bytes, now, writer)
        except Exception:  # noqa: B902 - hostile input must never escape as an exception
            outcome, neighbour = DropReason.MALFORMED, None
        if outcome is not None:
            self.tally.add(outcome, wire_bytes)
            return outcome
        self._history[neighbour.sender_id] = _SenderHistory(
            neighbour.stamp, neighbour.sequence, neighbour.x, neighbour.y, neighbour.epoch)
        # kept in arrival order (= stamp order, the replay check): which one a step takes
        # depends on the step's stamp, so superseding waits for `collect`
        self._pending.setdefault(neighbour.sender_id, []).append(_Candidate(neighbour))
        return None

    def _check(self, header, decode: Callable[[], _Parsed], wire_bytes: int,
               now: Optional[float], writer: Hashable
               ) -> Tuple[Optional[enum.Enum], Optional[Neighbour]]:
        cfg = self.config
        kid = header.sender_key_id
        if not isinstance(kid, int) or not 0 <= kid <= 0xFFFFFFFF:
            return DropReason.MALFORMED, None
        if self.own_key_id is not None and kid == self.own_key_id:
            return Outcome.OWN_ID, None
        sender = self.fleet.vehicle_for_key_id(kid)
        if sender is None:
            return DropReason.UNKNOWN_SENDER, None
        stamp = header.stamp_sec + header.stamp_nanosec * 1e-9
        if not math.isfinite(stamp):
            return DropReason.MALFORMED, None
        last = self._history.get(sender)
        if last is not None and (stamp, header.sequence) <= (last.stamp, last.sequence):
            return DropReason.REPLAY, None
        if now is not None and now - stamp > cfg.max_age:
            return DropReason.REPLAY, None
        if now is not None and stamp - now > cfg.max_age:
            return DropReason.IMPLAUSIBLE, None
        if not self.budget.take((writer, kid)):
            return DropReason.RATE_LIMITED, None
        parsed = decode()
        msg = parsed.msg
        if not any(msg.signature):   # a fixed-size signature field left all zeros
            return DropReason.UNSIGNED, None
        neighbour = self._neighbour(parsed, sender, wire_bytes)
        if neighbour is None:
            return DropReason.MALFORMED, None
        if parsed.payload is None:
            parsed.payload = wire_codec.signed_payload(msg)
        if not self.fleet.verify(sender, parsed.payload, bytes(msg.signature)):
            return DropReason.BAD_SIGNATURE, None
        if last is not None and stamp - last.stamp <= cfg.plausibility_memory \
                and msg.epoch == last.epoch:   # a new epoch: the sender respawned, resync
            reachable = cfg.max_speed * (stamp - last.stamp) + cfg.plausibility_slack
            if distance((last.x, last.y), (msg.x, msg.y)) > reachable:
                return DropReason.IMPLAUSIBLE, None
        return None, neighbour

    def _neighbour(self, parsed: _Parsed, sender: str, wire_bytes: int) -> Optional[Neighbour]:
        """Return this receiver's Neighbour of a parsed message (None: malformed here)."""
        cfg = self.config
        key = (sender, wire_bytes, cfg.num_actions, cfg.max_h_bytes, cfg.max_waypoints,
               cfg.max_keyframe_chunks, cfg.expected_h_dim, cfg.z_layout)
        if key not in parsed.neighbours:
            parsed.neighbours[key] = self._decode(parsed.msg, sender, wire_bytes)
        template = parsed.neighbours[key]
        # a copy per receiver: each sets its own distance, h and synchronisation on it; the
        # arrays are shared and only read (the replica bank copies z)
        return None if template is None else replace(template)

    def _decode(self, msg: wire_codec.WireMessage, sender: str,
                wire_bytes: int) -> Optional[Neighbour]:
        cfg = self.config
        if not _finite(msg.x, msg.y, msg.yaw, msg.speed):
            return None
        if not 0 <= msg.action < cfg.num_actions:
            return None
        if msg.stamp_sec < 0 or not 0 <= msg.stamp_nanosec < 1_000_000_000:
            return None
        if len(msg.h_data) > cfg.max_h_bytes or len(msg.signature) != \
                wire_codec.SIGNATURE_BYTES:
            return None
        try:
            if wire_codec.intention_points(len(msg.intention_packed)) > cfg.max_waypoints:
                return None
            z_indices = wire_codec.unpack_z(msg.z_packed, cfg.z_layout)
            keyframe = wire_codec.decode_keyframe_part(msg.h_encoding, msg.h_data)
            if keyframe is not None and keyframe.count > cfg.max_keyframe_chunks:
                return None
            if keyframe is not None and keyframe.count == 1:
                h = wire_codec.dequantise_h(msg.h_encoding, msg.h_data, cfg.expected_h_dim)
            else:
                h = np.zeros(0, dtype=np.float32)
            intention = wire_codec.unpack_intention(msg.intention_packed, msg.x, msg.y, msg.yaw)
        except wire_codec.CodecError:
            return None
        return Neighbour(
            sender_id=sender, sequence=int(msg.sequence), stamp_sec=int(msg.stamp_sec),
            stamp_nanosec=int(msg.stamp_nanosec), x=float(msg.x), y=float(msg.y),
            yaw=float(msg.yaw), speed=float(msg.speed), z_indices=z_indices, h=h,
            action=int(msg.action), intention_xy=intention, wire_bytes=int(wire_bytes),
            keyframe=keyframe, synchronised=h.size > 0, epoch=int(msg.epoch))

    def _observe_time(self, now: Optional[float]) -> None:
        """Forget every sender history when simulation time jumps back (new episode)."""
        if now is None:
            return
        if self._latest_now is not None and now < self._latest_now - self.config.max_age:
            self._history.clear()
            for waiting in self._pending.values():      # of the old timeline: stale
                for candidate in waiting:
                    self.tally.add(DropReason.REPLAY, candidate.neighbour.wire_bytes)
            self._pending.clear()
        self._latest_now = now

    # ------------------------------------------------------------------------- the step
    def _ready(self, before: Optional[Tuple[int, int]]) -> List[_Candidate]:
        """
        Take each sender's newest candidate stamped before ``before`` (None: any stamp).

        Older ones of the same sender are superseded (their bytes ride on the taken one);
        candidates of ``before`` or later wait for the next step.
        """
        ready = []
        for sender in list(self._pending):
            waiting = self._pending[sender]
            due = [c for c in waiting if before is None
                   or (c.neighbour.stamp_sec, c.neighbour.stamp_nanosec) < before]
            if not due:
                continue
            if self.on_verified is not None:     # in stamp order, once each becomes due
                for candidate in due:
                    self.on_verified(candidate.neighbour)
            newest = due[-1]
            for older in due[:-1]:
                self.tally.add(Outcome.SUPERSEDED, older.neighbour.wire_bytes)
                newest.superseded_bytes += older.superseded_bytes + older.neighbour.wire_bytes
            ready.append(newest)
            later = waiting[len(due):]
            if later:
                self._pending[sender] = later
            else:
                del self._pending[sender]
        return ready

    def collect(self, ego_xy: Tuple[float, float], comm_range: float,
                now: Optional[float], before: Optional[Tuple[int, int]] = None
                ) -> StepDelivery:
        """
        Hand over the candidates inside `comm_range`; count the rest; start a new step.

        ``before`` (sec, nanosec): take only messages stamped before it, e.g. the ego step's
        own stamp, so a step takes the other vehicles' previous-step messages whether or not
        their same-step ones already arrived (the pipeline's one-step V2V latency); later
        ones wait for the next step. None takes every candidate.
        """
        self._observe_time(now)
        accepted: List[Neighbour] = []
        in_range_bytes = 0
        for candidate in self._ready(before):
            neighbour = candidate.neighbour
            if now is not None and now - neighbour.stamp > self.config.max_age:
                self.tally.add(DropReason.REPLAY, neighbour.wire_bytes)
                continue
            neighbour.distance = distance(ego_xy, (neighbour.x, neighbour.y))
            if within(neighbour.distance, comm_range):
                accepted.append(neighbour)
                self.tally.add(Outcome.ACCEPTED, neighbour.wire_bytes)
                in_range_bytes += neighbour.wire_bytes + candidate.superseded_bytes
            else:
                self.tally.add(DropReason.OUT_OF_RANGE, neighbour.wire_bytes)
        accepted.sort(key=lambda n: n.distance)
        delivery = StepDelivery(accepted, self._received_this_step,
                                sum(n.wire_bytes for n in accepted), in_range_bytes)
        self._received_this_step = 0
        self.budget.step()
        return delivery

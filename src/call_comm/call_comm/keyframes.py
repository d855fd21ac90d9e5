"""
When a sender puts its quantised h (a keyframe) on the wire, and when a receiver asks for one.

Sender (`KeyframeSender`): every message carries z and the action; h goes out only when a
receiver could not rebuild it:
- first message (nobody holds a replica yet) and whenever the sender's own replica cannot
  predict its next h (world-model reset, invalid step, skipped sequence);
- drift: the sender runs the receivers' `Replica` on its own messages, so it knows exactly
  what they will rebuild; when that differs from the true h by more than `drift_tolerance`
  (max abs), the keyframe goes out with the very message that would have drifted;
- every `period` messages (bounds what a receiver that silently lost sync must wait);
- on request: a signed KeyframeRequest from a receiver that saw a gap or a new sender
  (first contact); at most one keyframe per `min_request_interval` messages, so forged or
  repeated requests cannot make a sender flood the channel.
A keyframe too large for `max_bytes` is split into chunks sent with consecutive messages.

Receiver (`KeyframeRequester`): asks a sender it cannot rebuild, at most once every
`request_interval` steps per sender.

Why requests rather than a request-free design: the periodic keyframe alone leaves a receiver
that lost one frame without the sender's h for up to `period` steps; with a ~100-byte request
it is back after one round trip, while keyframes stay rare in steady state.
"""
from dataclasses import dataclass
import struct
from typing import Dict, List, Optional, Tuple

from call_comm import wire_codec
from call_comm.replica import Replica, ReplicaUpdate, SequenceModel
import numpy as np

REQUEST_DOMAIN = b'CALL/KeyframeRequest/v1\x00'


@dataclass
class KeyframeConfig:
    """Numbers from config/comm.yaml."""

    period: int = 50                 # [messages] periodic keyframe
    drift_tolerance: float = 0.01    # max |h_replica - h_true| before a keyframe
    encoding: int = wire_codec.H_FP16
    max_bytes: int = 1000            # h_data bytes per message (larger keyframes are chunked)
    min_request_interval: int = 5    # [messages] between request-triggered keyframes
    request_interval: int = 5        # [steps] between two requests to the same sender

    def __post_init__(self) -> None:
        """Fail fast on nonsense values."""
        if self.period < 1 or self.min_request_interval < 0 or self.request_interval < 1:
            raise ValueError('keyframe period/request intervals must be >= 1 (>= 0 for '
                             'min_request_interval)')
        if not self.drift_tolerance >= 0.0:
            raise ValueError(f'drift_tolerance must be >= 0, got {self.drift_tolerance}')
        if self.encoding not in wire_codec.CHUNK_OF:
            raise ValueError('keyframe encoding must be fp16 or int8')
        smallest = wire_codec.CHUNK_HEADER_BYTES + (
            wire_codec.INT8_SCALE_BYTES if self.encoding == wire_codec.H_INT8 else 0)
        if self.max_bytes <= smallest:
            raise ValueError(f'keyframe max_bytes must exceed {smallest}, got {self.max_bytes}')


@dataclass
class OutgoingH:
    """The h fields of one outgoing message and why a keyframe started (None = no h)."""

    h_encoding: int
    h_data: bytes
    reason: Optional[str] = None


class KeyframeSender:
    """Chooses the h fields of each own message and mirrors the receivers' replica."""

    def __init__(self, config: KeyframeConfig, model: SequenceModel) -> None:
        """Start with nothing sent: the first message carries a keyframe."""
        self.config = config
        self.replica = Replica(model, history=260)
        self._queue: List[Tuple[int, bytes]] = []
        self._since_keyframe = 0
        self._requested = False
        self.keyframes_started = 0
        self.reasons: Dict[str, int] = {}

    def request(self) -> None:
        """Note that a receiver asked for a keyframe (verified KeyframeRequest)."""
        self._requested = True

    def _reason(self, sequence: int, action: int, h_true: np.ndarray) -> Optional[str]:
        predicted = self.replica.predict(sequence, action)
        if predicted is None:
            return 'resync'
        if float(np.max(np.abs(predicted - h_true))) > self.config.drift_tolerance:
            return 'drift'
        if self._since_keyframe >= self.config.period:
            return 'periodic'
        if self._requested and self._since_keyframe >= self.config.min_request_interval:
            return 'request'
        return None

    def outgoing(self, sequence: int, z_indices: np.ndarray, action: int,
                 h_true: np.ndarray) -> OutgoingH:
        """H fields for message `sequence` (z_t, a_{t-1}, true h_t); updates the mirror."""
        h_true = np.asarray(h_true, dtype=np.float32).ravel()
        reason = None
        if not self._queue:
            reason = self._reason(sequence, action, h_true)
            if reason is not None:
                self._queue = wire_codec.keyframe_parts(h_true, self.config.encoding,
                                                        self.config.max_bytes)
                self._since_keyframe = 0
                self._requested = False
                self.keyframes_started += 1
                self.reasons[reason] = self.reasons.get(reason, 0) + 1
        if self._queue:
            encoding, data = self._queue.pop(0)
        else:
            encoding, data = wire_codec.H_NONE, b''
        self._since_keyframe += 1
        part = wire_codec.decode_keyframe_part(encoding, data)
        self.replica.observe(sequence, z_indices, action, part)
        return OutgoingH(encoding, data, reason)

    def mirror(self) -> Optional[np.ndarray]:
        """Return what synchronised receivers hold for the last message (None if unknown)."""
        return None if self.replica.h is None else self.replica.h[0].numpy().copy()


class KeyframeRequester:
    """Receiver side: whom to ask for a keyframe, rate limited per sender."""

    def __init__(self, interval: int) -> None:
        """`interval` [steps] between two requests to one sender."""
        self.interval = interval
        self._last: Dict[str, int] = {}

    def should_request(self, sender_id: str, update: Optional[ReplicaUpdate],
                       synchronised: bool, step: int) -> bool:
        """Ask when the sender's h cannot be rebuilt, unless asked recently."""
        if synchronised:
            return False
        last = self._last.get(sender_id)
        if last is not None and step - last < self.interval and not (update and update.gap):
            return False
        if last is not None and step - last < 1:
            return False
        self._last[sender_id] = step
        return True


@dataclass
class KeyframeRequestWire:
    """Field mirror of call_msgs/KeyframeRequest (ROS-free)."""

    requester_id: str
    target_id: str
    sequence: int            # requester's request counter (replay protection)
    last_sequence: int       # last message sequence the requester holds of the target
    stamp_sec: int
    stamp_nanosec: int
    signature: bytes = b''

    @property
    def stamp(self) -> float:
        """Stamp in seconds."""
        return self.stamp_sec + self.stamp_nanosec * 1e-9


def request_payload(msg: KeyframeRequestWire) -> bytes:
    """Canonical bytes the requester signs (every field but the signature)."""
    return b''.join([
        REQUEST_DOMAIN, struct.pack('<iI', msg.stamp_sec, msg.stamp_nanosec),
        struct.pack('<I', len(msg.requester_id.encode())), msg.requester_id.encode(),
        struct.pack('<I', len(msg.target_id.encode())), msg.target_id.encode(),
        struct.pack('<II', msg.sequence & 0xFFFFFFFF, msg.last_sequence & 0xFFFFFFFF)])


def request_size(msg: KeyframeRequestWire) -> int:
    """Exact CDR size of the KeyframeRequest message (encapsulation header included)."""
    offset = 8                                          # stamp
    offset += 4 + len(b'') + 1                          # header.frame_id ''
    for text in (msg.requester_id, msg.target_id):
        offset += (-offset) % 4
        offset += 4 + len(text.encode()) + 1
    offset += (-offset) % 4
    offset += 8                                         # sequence, last_sequence
    offset += 4 + len(msg.signature)
    return 4 + offset


class RequestGuard:
    """Accept a verified request only if it is for us, fresh and newer than the last one."""

    def __init__(self, own_id: str, max_age: float) -> None:
        """`max_age` [s] of simulation time."""
        self.own_id = own_id
        self.max_age = max_age
        self._last: Dict[str, Tuple[float, int]] = {}

    def accept(self, msg: KeyframeRequestWire, now: Optional[float]) -> bool:
        """Tell whether a (signature-verified) request should trigger a keyframe."""
        if msg.target_id != self.own_id:
            return False
        if now is not None and abs(now - msg.stamp) > self.max_age:
            return False
        key = (msg.stamp, msg.sequence)
        last = self._last.get(msg.requester_id)
        if last is not None and key <= last:
            return False
        self._last[msg.requester_id] = key
        return True

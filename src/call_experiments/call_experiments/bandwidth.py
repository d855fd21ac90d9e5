"""
Bytes on the wire per ego and step: raw-BEV sharing vs CALL latent messages (Table 1).

CALL: every neighbour the ego's range gate admits costs the exact serialized size of that
sender's call_msgs/LatentMessage (``call_comm.wire_codec.serialized_size`` of the message the
comm node would build: packed z, h in the configured encoding, the intention waypoints in LSI,
none in LSS, and an Ed25519 signature). Raw-BEV sharing: the sender's BEV as a
sensor_msgs/Image (``8UC<C>``, C x S x S bytes) to every vehicle in range; reported for the
same admitted neighbours and for share-everything (every other CALL vehicle, c = 0).
"""
from dataclasses import dataclass
import math
from typing import Any, Mapping

from call_comm import wire_codec
import numpy as np

LSS, LSI = 'lss', 'lsi'


def _align(offset: int, size: int) -> int:
    return offset + (-offset) % size


def image_message_size(channels: int, size: int, frame_id: str = '',
                       encoding: str | None = None) -> int:
    """Exact CDR size of a sensor_msgs/Image holding a (channels, size, size) uint8 BEV."""
    encoding = encoding if encoding is not None else f'8UC{channels}'
    offset = 8                                                  # stamp sec + nanosec
    offset = _align(offset, 4) + 4 + len(frame_id.encode()) + 1  # header.frame_id
    offset = _align(offset, 4) + 8                              # height, width
    offset = _align(offset, 4) + 4 + len(encoding.encode()) + 1  # encoding
    offset += 1                                                 # is_bigendian
    offset = _align(offset, 4) + 4                              # step
    offset = _align(offset, 4) + 4 + channels * size * size     # data
    return 4 + offset                                           # encapsulation header


@dataclass(frozen=True)
class WireSettings:
    """How the comm node encodes a LatentMessage (numbers from call_comm config/comm.yaml)."""

    h_encoding: str = 'fp16'
    max_waypoints: int = 5
    signature_bytes: int = wire_codec.SIGNATURE_BYTES

    def __post_init__(self):
        """Fail fast on an encoding the codec does not know."""
        if self.h_encoding not in wire_codec.H_ENCODINGS:
            raise ValueError(f'h_encoding must be one of {sorted(wire_codec.H_ENCODINGS)}, '
                             f'got {self.h_encoding!r}')
        if self.max_waypoints < 0 or self.signature_bytes < 0:
            raise ValueError('max_waypoints and signature_bytes must be >= 0')

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> 'WireSettings':
        """Build from a config section (unknown keys are an error)."""
        unknown = set(values) - {'h_encoding', 'max_waypoints', 'signature_bytes'}
        if unknown:
            raise ValueError(f'unknown bandwidth settings {sorted(unknown)}')
        return cls(**dict(values))


def latent_message(x: float, y: float, yaw: float, z_indices: np.ndarray,
                   h: np.ndarray, waypoints: np.ndarray, mode: str,
                   settings: WireSettings, sequence: int = 0, stamp: float = 0.0,
                   layout: wire_codec.ZLayout = wire_codec.DEFAULT_LAYOUT
                   ) -> wire_codec.WireMessage:
    """
    Build the LatentMessage a comm node sends for this state (signature included).

    The sender's 4-byte key id is left 0: its value never changes the size. `layout` is the
    model's z layout (`wire_codec.ZLayout.of(cfg)`).
    """
    if mode not in (LSS, LSI):
        raise ValueError(f'only lss and lsi send latent messages, not {mode!r}')
    points = np.asarray(waypoints, dtype=np.float64).reshape(-1, 2) if mode == LSI \
        else np.zeros((0, 2))
    sec = int(math.floor(stamp))
    msg = wire_codec.encode(
        0, sequence, sec, int(round((stamp - sec) * 1e9)), (x, y, yaw, 0.0),
        np.asarray(z_indices, dtype=np.int64), h, 0, points,
        wire_codec.H_ENCODINGS[settings.h_encoding], settings.max_waypoints, layout)
    msg.signature = bytes(settings.signature_bytes)
    return msg


def latent_message_size(*args: Any, **kwargs: Any) -> int:
    """Exact serialized bytes of :func:`latent_message` (same arguments)."""
    return wire_codec.serialized_size(latent_message(*args, **kwargs))

"""
Compact V2V wire format of CALL latents (LatentMessage v2, issue 11) and its byte accounting.

What goes on the wire per sender and step (call_msgs/LatentMessage):
- sender: `sender_key_id`, the HashedId4 of its Ed25519 public key (`auth.key_id`); receivers
  resolve it to the role name through the fleet file, so no string travels.
- pose: float32 x, y (map frame; 0.12 mm ulp at 2 km), yaw, speed.
- z: the fleet world model's `stoch` categorical indices of `classes` classes each
  (`ZLayout`), ceil(log2(classes)) bits each, packed MSB-first and zero padded to a whole byte
  (uint8[]: a 4-byte CDR length, then the bytes). Every vehicle of a fleet runs one model, so
  a receiver knows the length to expect: a z of another length, a non-zero padding bit or an
  index >= classes is malformed and never decoded. `small` (32 x 32): 5 bits, 20 bytes;
  `small64g8c` (128 x 16): 4 bits, 64 bytes.
- h: the recurrent state, fp16 (measured max abs error 4.9e-4 on tanh-bounded values) or int8
  with one float32 scale (error <= scale / 2; half the bytes) stored little-endian in the first
  4 bytes of h_data, or omitted (H_NONE: receivers rebuild h with a replica world model).
- keyframe chunks (replica mode): an h too large for one V2X frame (L preset: 2048 int8 = 2 KB)
  travels in `count` consecutive messages; h_encoding H_FP16_CHUNK / H_INT8_CHUNK, h_data =
  [index, count] + the chunk's values encoded on their own (int8: own scale first). All chunks
  hold the h of the message carrying chunk 0 (sequence - index).
- intention: the planner's K waypoints in the sender's heading frame (x forward, y left), each
  coordinate WAYPOINT_BITS = 12 bits over [-64, 64) m, i.e. 128 m / 2^12 = 3.125 cm resolution
  (error <= 1.6 cm; the BEV is 50 cm/px). Points are packed contiguously, 24 bits per point,
  zero padded to a whole byte: K = 5 -> 15 bytes.
- signature: Ed25519 (64 bytes, fixed-size) over `signed_payload`.
- episode epoch: the high nibble of the h_encoding byte (EPOCH_SHIFT) counts the sender's
  teleports (respawns) modulo 16, so receivers resync its position instead of rejecting the
  jump as implausible; it costs no byte and is signed with the rest.

`WireMessage` mirrors LatentMessage field for field so this module stays ROS-free;
`signed_payload` is the canonical byte string the signature covers and `serialized_size` is
the exact CDR (XCDR1, little endian, with the 4-byte encapsulation header) size that
`rclpy.serialization.serialize_message` produces for the same message.
"""
from dataclasses import dataclass, field
import math
import struct
from typing import List, Optional, Tuple

import numpy as np

SIGNATURE_BYTES = 64

H_NONE = 0
H_FP16 = 1
H_INT8 = 2
H_FP16_CHUNK = 3    # one chunk of a keyframe split over several messages (replica mode)
H_INT8_CHUNK = 4
ENCODING_MASK = 0x0F   # low nibble of the h_encoding byte: the encoding
EPOCH_SHIFT = 4        # high nibble: the sender's episode epoch (0..15)
EPOCH_MODULO = 16
H_ENCODINGS = {'none': H_NONE, 'fp16': H_FP16, 'int8': H_INT8}
CHUNK_OF = {H_FP16: H_FP16_CHUNK, H_INT8: H_INT8_CHUNK}
BASE_OF = {H_FP16_CHUNK: H_FP16, H_INT8_CHUNK: H_INT8}
CHUNK_HEADER_BYTES = 2  # chunk index, chunk count
INT8_SCALE_BYTES = 4    # float32 scale leading int8 h_data

WAYPOINT_BITS = 12
WAYPOINT_HALF_EXTENT = 64.0  # [m]: coordinates cover [-64, 64)
WAYPOINT_RESOLUTION = 2.0 * WAYPOINT_HALF_EXTENT / (1 << WAYPOINT_BITS)  # 3.125 cm
BITS_PER_WAYPOINT = 2 * WAYPOINT_BITS

PAYLOAD_DOMAIN = b'CALL/LatentMessage/v2\x00'


class CodecError(ValueError):
    """A field cannot be encoded or decoded (malformed input)."""


@dataclass
class WireMessage:
    """Field-for-field mirror of call_msgs/LatentMessage, free of ROS types."""

    sender_key_id: int
    sequence: int
    stamp_sec: int
    stamp_nanosec: int
    x: float
    y: float
    yaw: float
    speed: float
    z_packed: bytes
    action: int
    h_encoding: int
    h_data: bytes
    intention_packed: bytes
    signature: bytes = field(default=b'')
    epoch: int = 0          # episode epoch (0..15), on the wire in h_encoding's high nibble

    @property
    def encoding_byte(self) -> int:
        """Return the h_encoding byte on the wire: encoding | epoch << EPOCH_SHIFT."""
        return (self.h_encoding & ENCODING_MASK) | ((self.epoch % EPOCH_MODULO) << EPOCH_SHIFT)

    @property
    def stamp(self) -> float:
        """Stamp in seconds of simulation time."""
        return self.stamp_sec + self.stamp_nanosec * 1e-9


# ----------------------------------------------------------------------------------------- z
@dataclass(frozen=True)
class ZLayout:
    """
    Shape of the categorical z on the wire: `latents` indices, each in [0, `classes`).

    It is the fleet world model's (stoch, classes): sender and receivers run one model, so
    the packed length is known on both sides and travels nowhere.
    """

    latents: int
    classes: int

    def __post_init__(self) -> None:
        """Refuse a layout no uint8 index or no packed z can hold."""
        if not (isinstance(self.latents, int) and isinstance(self.classes, int)):
            raise CodecError(f'z layout must be integers, got {self.latents!r} x '
                             f'{self.classes!r}')
        if self.latents < 1 or not 2 <= self.classes <= 256:
            raise CodecError(f'z layout {self.latents} x {self.classes}: needs >= 1 latent '
                             'and 2..256 classes')

    @property
    def bits(self) -> int:
        """Bits per index: ceil(log2(classes))."""
        return (self.classes - 1).bit_length()

    @property
    def packed_bytes(self) -> int:
        """Bytes of a packed z (zero padded to a whole byte)."""
        return (self.latents * self.bits + 7) // 8

    @classmethod
    def of(cls, model_config) -> 'ZLayout':
        """Return the layout of a world-model config (anything with .stoch and .classes)."""
        return cls(int(model_config.stoch), int(model_config.classes))


DEFAULT_LAYOUT = ZLayout(32, 32)    # the `small` preset's (paper Table 5): 5 bits, 20 bytes


def pack_z(indices, layout: ZLayout = DEFAULT_LAYOUT) -> bytes:
    """Pack `layout.latents` indices in [0, classes); refuses anything else (sender bug)."""
    idx = np.asarray(indices)
    if idx.shape != (layout.latents,):
        raise CodecError(f'z must have {layout.latents} indices, got shape {idx.shape}')
    if not np.issubdtype(idx.dtype, np.integer):
        raise CodecError(f'z indices must be integers, got {idx.dtype}')
    if idx.min() < 0 or idx.max() >= layout.classes:
        raise CodecError(f'z indices must lie in [0, {layout.classes})')
    bits = np.unpackbits(idx.astype(np.uint8)[:, None], axis=1)[:, 8 - layout.bits:]
    return np.packbits(bits.ravel()).tobytes()


def unpack_z(packed: bytes, layout: ZLayout = DEFAULT_LAYOUT) -> np.ndarray:
    """
    Inverse of `pack_z`: uint8[latents], each in [0, classes).

    CodecError for a length other than the layout's, non-zero padding bits or an index the
    bits can hold but the model has no class for (classes not a power of two).
    """
    packed = bytes(packed)
    if len(packed) != layout.packed_bytes:
        raise CodecError(f'z_packed must be {layout.packed_bytes} bytes for '
                         f'{layout.latents} x {layout.classes} latents, got {len(packed)}')
    used = layout.latents * layout.bits
    bits = np.unpackbits(np.frombuffer(packed, dtype=np.uint8))
    if np.any(bits[used:]):
        raise CodecError('z padding bits are not zero')
    padded = np.concatenate([np.zeros((layout.latents, 8 - layout.bits), dtype=np.uint8),
                             bits[:used].reshape(layout.latents, layout.bits)], axis=1)
    indices = np.packbits(padded, axis=1).ravel()
    if indices.max() >= layout.classes:
        raise CodecError(f'z index {int(indices.max())} is not a class of {layout.classes}')
    return indices


# ----------------------------------------------------------------------------------------- h
def quantise_h(h, encoding: int) -> bytes:
    """Encode h as h_data for `encoding` (int8: float32 scale first); h must be finite."""
    values = np.asarray(h, dtype=np.float32).ravel()
    if not np.all(np.isfinite(values)):
        raise CodecError('h contains non-finite values')
    if encoding == H_NONE:
        return b''
    if encoding == H_FP16:
        if values.size and np.max(np.abs(values)) > np.finfo(np.float16).max:
            raise CodecError('h exceeds the float16 range')
        return values.astype('<f2').tobytes()
    if encoding == H_INT8:
        peak = float(np.max(np.abs(values))) if values.size else 0.0
        scale = np.float32(peak / 127.0) if peak > 0.0 else np.float32(1.0)
        if scale <= 0.0:     # peak below 127 x the smallest float32: all values round to 0
            scale = np.float32(1.0)
        quantised = np.clip(np.rint(values / scale), -127, 127).astype(np.int8)
        return struct.pack('<f', float(scale)) + quantised.tobytes()
    raise CodecError(f'unknown h encoding {encoding}')


def dequantise_h(encoding: int, data: bytes, expected_dim: Optional[int] = None) -> np.ndarray:
    """Decode h_data; raises CodecError on anything malformed (length, scale, non-finite)."""
    data = bytes(data)
    if encoding == H_NONE:
        if data:
            raise CodecError('H_NONE must carry no h_data')
        return np.zeros(0, dtype=np.float32)
    if encoding == H_FP16:
        if len(data) % 2:
            raise CodecError('fp16 h_data has an odd length')
        values = np.frombuffer(data, dtype='<f2').astype(np.float32)
    elif encoding == H_INT8:
        if len(data) < INT8_SCALE_BYTES:
            raise CodecError('int8 h_data lacks its 4-byte scale')
        scale, = struct.unpack_from('<f', data)
        if not math.isfinite(scale) or scale <= 0.0:
            raise CodecError(f'int8 h scale must be finite and > 0, got {scale}')
        values = np.frombuffer(data, dtype=np.int8, offset=INT8_SCALE_BYTES).astype(
            np.float32) * np.float32(scale)
    else:
        raise CodecError(f'unknown h encoding {encoding}')
    if expected_dim is not None and values.size != expected_dim:
        raise CodecError(f'h has {values.size} values, expected {expected_dim}')
    if not np.all(np.isfinite(values)):
        raise CodecError('h contains non-finite values')
    return values


@dataclass
class KeyframePart:
    """One decoded piece of a keyframe: values of h[offset...] of snapshot sequence - index."""

    index: int
    count: int
    values: np.ndarray


def keyframe_parts(h, encoding: int, max_bytes: int) -> List[Tuple[int, bytes]]:
    """
    Split a quantised keyframe into (h_encoding, h_data) of <= max_bytes each.

    One part keeps the plain H_FP16/H_INT8 encoding (readable by full-h receivers); more parts
    use the chunk encodings with a 2-byte [index, count] header, then the chunk's own h_data.
    """
    values = np.asarray(h, dtype=np.float32).ravel()
    if encoding not in CHUNK_OF:
        raise CodecError(f'keyframes need fp16 or int8, got encoding {encoding}')
    per_value, fixed = (2, 0) if encoding == H_FP16 else (1, INT8_SCALE_BYTES)
    if fixed + values.size * per_value <= max_bytes:
        return [(encoding, quantise_h(values, encoding))]
    room = (max_bytes - CHUNK_HEADER_BYTES - fixed) // per_value
    if room <= 0:
        raise CodecError(f'max_bytes {max_bytes} leaves no room for keyframe values')
    count = -(-values.size // room)
    if count > 255:
        raise CodecError(f'a keyframe of {values.size} values needs {count} > 255 chunks')
    size = -(-values.size // count)  # equal chunks, the last one may be shorter
    return [(CHUNK_OF[encoding], bytes([index, count]) + quantise_h(
        values[index * size:(index + 1) * size], encoding)) for index in range(count)]


def decode_keyframe_part(encoding: int, data: bytes) -> Optional[KeyframePart]:
    """Decode a message's h fields: None for H_NONE; CodecError when malformed."""
    data = bytes(data)
    if encoding == H_NONE:
        dequantise_h(encoding, data)
        return None
    if encoding in BASE_OF:
        if len(data) <= CHUNK_HEADER_BYTES:
            raise CodecError('keyframe chunk without values')
        index, count = data[0], data[1]
        if count < 2 or index >= count:
            raise CodecError(f'keyframe chunk {index} of {count} is invalid')
        values = dequantise_h(BASE_OF[encoding], data[CHUNK_HEADER_BYTES:])
        if not values.size:
            raise CodecError('keyframe chunk without values')
        return KeyframePart(int(index), int(count), values)
    return KeyframePart(0, 1, dequantise_h(encoding, data))


def h_reconstruction_error(h, encoding: int) -> Tuple[float, float]:
    """(max abs, RMS) error of a round trip through `encoding`: the figure used to choose it."""
    values = np.asarray(h, dtype=np.float32).ravel()
    diff = dequantise_h(encoding, quantise_h(values, encoding)).astype(np.float64) - values
    return float(np.max(np.abs(diff))), float(np.sqrt(np.mean(diff ** 2)))


# ---------------------------------------------------------------------------------- intention
def _heading_basis(yaw: float) -> Tuple[float, float]:
    """Cos/sin of the yaw as the receiver sees it (float32 on the wire)."""
    yaw32 = float(np.float32(yaw))
    return math.cos(yaw32), math.sin(yaw32)


def pack_intention(points_xy, origin_x: float, origin_y: float, yaw: float,
                   max_points: int) -> bytes:
    """
    Pack map-frame waypoints relative to the sender pose, 2 x WAYPOINT_BITS bits each.

    Waypoints form a path, so it is cut at the first point outside the +-64 m window (and
    after `max_points`) rather than clipped, which would invent positions.
    """
    pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)[:max_points]
    if not np.all(np.isfinite(pts)):
        raise CodecError('waypoints contain non-finite values')
    cos_y, sin_y = _heading_basis(yaw)
    dx, dy = pts[:, 0] - origin_x, pts[:, 1] - origin_y
    local = np.stack([cos_y * dx + sin_y * dy, -sin_y * dx + cos_y * dy], axis=1)
    codes = np.rint((local + WAYPOINT_HALF_EXTENT) / WAYPOINT_RESOLUTION)
    inside = np.all((codes >= 0) & (codes < (1 << WAYPOINT_BITS)), axis=1)
    count = int(np.argmin(inside)) if not np.all(inside) else len(inside)
    codes = codes[:count].astype(np.uint16).ravel()
    if not count:
        return b''
    bits = np.unpackbits(codes.astype('>u2').view(np.uint8)).reshape(-1, 16)
    bits = bits[:, 16 - WAYPOINT_BITS:]
    return np.packbits(bits.ravel()).tobytes()


def intention_points(num_bytes: int) -> int:
    """Count the waypoints `num_bytes` of packed intention hold; CodecError if none fits."""
    count = num_bytes * 8 // BITS_PER_WAYPOINT
    if (count * BITS_PER_WAYPOINT + 7) // 8 != num_bytes:
        raise CodecError(f'{num_bytes} bytes is not a whole number of '
                         f'{BITS_PER_WAYPOINT}-bit waypoints')
    return count


def unpack_intention(packed: bytes, origin_x: float, origin_y: float, yaw: float) -> np.ndarray:
    """Inverse of `pack_intention`: map-frame waypoints (N, 2); non-zero padding is malformed."""
    packed = bytes(packed)
    count = intention_points(len(packed))
    if not count:
        return np.zeros((0, 2), dtype=np.float64)
    bits = np.unpackbits(np.frombuffer(packed, dtype=np.uint8))
    used = count * BITS_PER_WAYPOINT
    if np.any(bits[used:]):
        raise CodecError('intention padding bits are not zero')
    values = bits[:used].reshape(-1, WAYPOINT_BITS)
    padded = np.concatenate([np.zeros((len(values), 16 - WAYPOINT_BITS), np.uint8), values], 1)
    codes = np.packbits(padded, axis=1).view('>u2').astype(np.float64).reshape(count, 2)
    local = codes * WAYPOINT_RESOLUTION - WAYPOINT_HALF_EXTENT
    cos_y, sin_y = _heading_basis(yaw)
    map_x = origin_x + cos_y * local[:, 0] - sin_y * local[:, 1]
    map_y = origin_y + sin_y * local[:, 0] + cos_y * local[:, 1]
    return np.stack([map_x, map_y], axis=1)


# ------------------------------------------------------------------------- signed payload
def _blob(data: bytes) -> bytes:
    return struct.pack('<I', len(data)) + bytes(data)


def signed_payload(msg: WireMessage) -> bytes:
    """
    Canonical bytes the Ed25519 signature covers: every field except the signature.

    Floats are encoded at their wire precision (float32), so sender and receiver derive
    identical bytes from the deserialized message; variable-length fields carry their length.
    """
    return b''.join([
        PAYLOAD_DOMAIN,
        struct.pack('<iIII', msg.stamp_sec, msg.stamp_nanosec, msg.sender_key_id,
                    msg.sequence),
        struct.pack('<ffff', msg.x, msg.y, msg.yaw, msg.speed),
        _blob(msg.z_packed),
        struct.pack('<BB', msg.action, msg.encoding_byte),
        _blob(msg.h_data),
        _blob(msg.intention_packed),
    ])


# --------------------------------------------------------------------------- CDR byte size
class _CdrSize:
    """Running XCDR1 size: primitives aligned to their size, offsets after the 4-byte header."""

    def __init__(self) -> None:
        self.offset = 0

    def primitive(self, size: int) -> None:
        self.offset += (-self.offset) % size
        self.offset += size

    def octets(self, count: int) -> None:
        """uint8[] (unbounded sequence): 4-byte aligned length, then the bytes."""
        self.primitive(4)
        self.offset += count

    def fixed_octets(self, count: int) -> None:
        """uint8[N] (fixed-size array): the bytes only, no alignment."""
        self.offset += count


def serialized_size(msg: WireMessage) -> int:
    """
    Exact serialized size of the LatentMessage in bytes (encapsulation header included).

    The fixed-size signature array serializes exactly 64 bytes (`comm_node.to_msg` refuses
    another length), signed or not.
    """
    cdr = _CdrSize()
    cdr.primitive(4)                    # stamp.sec
    cdr.primitive(4)                    # stamp.nanosec
    cdr.primitive(4)                    # sender_key_id
    cdr.primitive(4)                    # sequence
    for _ in range(4):
        cdr.primitive(4)                # x, y, yaw, speed
    cdr.octets(len(msg.z_packed))
    cdr.primitive(1)                    # action
    cdr.primitive(1)                    # h_encoding
    cdr.octets(len(msg.h_data))
    cdr.octets(len(msg.intention_packed))
    cdr.fixed_octets(SIGNATURE_BYTES)
    return 4 + cdr.offset


FIXED_HEAD_BYTES = 4 + 16      # encapsulation header + stamp, sender_key_id, sequence


def max_serialized_size(max_h_bytes: int, max_waypoints: int,
                        layout: ZLayout = DEFAULT_LAYOUT) -> int:
    """Largest well-formed message a receiver accepts: bounds z, h_data and the intention."""
    return serialized_size(WireMessage(
        0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, bytes(layout.packed_bytes), 0, 0, bytes(max_h_bytes),
        bytes((max_waypoints * BITS_PER_WAYPOINT + 7) // 8)))


@dataclass
class WireHeader:
    """The fixed leading fields of a serialized LatentMessage (read without decoding it)."""

    stamp_sec: int
    stamp_nanosec: int
    sender_key_id: int
    sequence: int

    @property
    def stamp(self) -> float:
        """Stamp in seconds of simulation time."""
        return self.stamp_sec + self.stamp_nanosec * 1e-9


def _endian(raw: bytes) -> str:
    """Byte order from the CDR encapsulation header (CDR_BE 0x0000, CDR_LE 0x0001, ...)."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] not in (0, 1, 2, 3):
        raise CodecError('no CDR encapsulation header')
    return '<' if raw[1] & 1 else '>'


def peek_header(raw: bytes) -> WireHeader:
    """Read stamp, key id and sequence of a serialized LatentMessage: the cheap checks' input."""
    if len(raw) < FIXED_HEAD_BYTES:
        raise CodecError(f'{len(raw)} bytes cannot hold a LatentMessage')
    return WireHeader(*struct.unpack_from(_endian(raw) + 'iIII', raw, 4))


def message_size(raw: bytes) -> int:
    """
    Return the size of a serialized LatentMessage sample without the DDS trailing padding.

    Samples that crossed a process boundary arrive padded to a multiple of 4 bytes (the
    encapsulation options do not say so); the message itself is `serialized_size` bytes, what
    `serialize_message` produces. Reads only the three sequence lengths; len(raw) when they
    do not fit.
    """
    try:
        order = _endian(raw)
        offset = 4 + 32
        for index in range(3):
            offset += (-(offset - 4)) % 4
            size, = struct.unpack_from(order + 'I', raw, offset)
            offset += 4 + size
            if index == 0:
                offset += 2             # action, h_encoding
        offset += SIGNATURE_BYTES
    except (CodecError, struct.error):
        return len(raw)
    return offset if offset <= len(raw) else len(raw)


def decode_cdr(raw: bytes) -> WireMessage:
    """
    Decode a serialized LatentMessage (XCDR1, either byte order); CodecError if malformed.

    The inverse of `serialized_size`'s layout. Receivers take raw samples so that bytes the
    DDS layer could not deserialize are still counted, and decode them here.
    """
    raw = bytes(raw)
    order = _endian(raw)
    body = memoryview(raw)[4:]
    end = len(body)
    try:
        sec, nsec, kid, seq, x, y, yaw, speed = struct.unpack_from(order + 'iIIIffff', body, 0)
        offset = 32
        blobs = []
        for index in range(3):          # z_packed, (action, h_encoding), h_data, intention
            offset += (-offset) % 4
            size, = struct.unpack_from(order + 'I', body, offset)
            offset += 4
            if size > end - offset:
                raise CodecError(f'a sequence of {size} bytes overruns the message')
            blobs.append(bytes(body[offset:offset + size]))
            offset += size
            if index == 0:
                action, encoding = body[offset], body[offset + 1]
                offset += 2
        signature = bytes(body[offset:offset + SIGNATURE_BYTES])
        offset += SIGNATURE_BYTES
    except (struct.error, IndexError) as error:
        raise CodecError(f'truncated LatentMessage: {error}') from None
    if offset > end or end - offset > 3 or any(body[offset:]):
        raise CodecError(f'LatentMessage of {end + 4} bytes, its fields need {offset + 4}')
    return WireMessage(
        sender_key_id=kid, sequence=seq, stamp_sec=sec, stamp_nanosec=nsec, x=x, y=y,
        yaw=yaw, speed=speed, z_packed=blobs[0], action=action,
        h_encoding=encoding & ENCODING_MASK, h_data=blobs[1], intention_packed=blobs[2],
        signature=signature, epoch=encoding >> EPOCH_SHIFT)


# --------------------------------------------------------------------------------- encoder
def encode(sender_key_id: int, sequence: int, stamp_sec: int, stamp_nanosec: int,
           pose: Tuple[float, float, float, float], z_indices, h, action: int,
           waypoints_xy, h_encoding: int, max_waypoints: int,
           layout: ZLayout = DEFAULT_LAYOUT) -> WireMessage:
    """
    Build an unsigned WireMessage from the ego's state; pose = (x, y, yaw, speed).

    `layout` is the fleet model's z layout (`ZLayout.of(cfg)`).

    The pose is rounded to float32 first and the intention packed relative to the rounded
    pose, so the receiver rebuilds the waypoints from exactly the numbers it gets.
    """
    x, y, yaw, speed = (float(np.float32(v)) for v in pose)
    if not all(math.isfinite(v) for v in (x, y, yaw, speed)):
        raise CodecError(f'pose {pose} is not finite in float32')
    return WireMessage(
        sender_key_id=int(sender_key_id) & 0xFFFFFFFF, sequence=int(sequence) & 0xFFFFFFFF,
        stamp_sec=int(stamp_sec), stamp_nanosec=int(stamp_nanosec),
        x=x, y=y, yaw=yaw, speed=speed,
        z_packed=pack_z(z_indices, layout), action=int(action), h_encoding=int(h_encoding),
        h_data=quantise_h(h, h_encoding),
        intention_packed=pack_intention(waypoints_xy, x, y, yaw, max_waypoints))

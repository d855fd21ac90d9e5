"""Wire codec round trips, error bounds and exact byte accounting against real CDR."""
import math
import struct

from call_comm import wire_codec as wc
from call_comm.comm_node import from_msg, to_msg
from call_msgs.msg import LatentMessage
import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message


SMALL64 = wc.ZLayout(128, 16)      # the small64g8c preset: 2 latents of 16 per 8 x 8 cell


def _message(rng, h_dim=512, encoding=wc.H_FP16, waypoints=10, layout=wc.DEFAULT_LAYOUT):
    x, y, yaw = rng.uniform(-300, 300), rng.uniform(-300, 300), rng.uniform(-math.pi, math.pi)
    pts = np.array([x, y]) + np.cumsum(rng.uniform(-4, 4, size=(waypoints, 2)), axis=0)
    wire = wc.encode(int(rng.integers(0, 2**32)), int(rng.integers(0, 2**32)),
                     int(rng.integers(0, 10**6)), int(rng.integers(0, 10**9)),
                     (x, y, yaw, rng.uniform(0, 30)),
                     rng.integers(0, layout.classes, size=layout.latents),
                     np.tanh(rng.normal(size=h_dim)), int(rng.integers(0, 15)), pts,
                     encoding, 64, layout)
    wire.signature = bytes(rng.integers(0, 256, size=64, dtype=np.uint8))
    return wire


@pytest.mark.parametrize('layout, bits, size', [
    (wc.DEFAULT_LAYOUT, 5, 20), (SMALL64, 4, 64), (wc.ZLayout(7, 10), 4, 4),
    (wc.ZLayout(3, 256), 8, 3), (wc.ZLayout(5, 2), 1, 1)])
def test_z_round_trip_is_exact_for_each_layout(layout, bits, size):
    assert (layout.bits, layout.packed_bytes) == (bits, size)
    rng = np.random.default_rng(1)
    for _ in range(200):
        z = rng.integers(0, layout.classes, size=layout.latents)
        packed = wc.pack_z(z, layout)
        assert len(packed) == size
        np.testing.assert_array_equal(wc.unpack_z(packed, layout), z)
    top = np.full(layout.latents, layout.classes - 1)
    np.testing.assert_array_equal(wc.unpack_z(wc.pack_z(top, layout), layout), top)


def test_the_32_x_32_packing_is_the_v2_one():
    """The default layout packs as before layouts existed: 5 bits per index, MSB first."""
    z = np.arange(32)
    bits = ''.join(format(v, '05b') for v in z)
    assert wc.pack_z(z) == int(bits, 2).to_bytes(20, 'big')


@pytest.mark.parametrize('bad', [np.full(32, 32), np.arange(31), np.full(32, -1),
                                 np.zeros(32, dtype=np.float32)])
def test_pack_z_refuses_indices_outside_0_31(bad):
    with pytest.raises(wc.CodecError):
        wc.pack_z(bad)


def test_unpack_z_refuses_wrong_length():
    for layout, sizes in ((wc.DEFAULT_LAYOUT, (0, 19, 21, 64)), (SMALL64, (0, 20, 63, 65))):
        for size in sizes:
            with pytest.raises(wc.CodecError):
                wc.unpack_z(bytes(size), layout)


def test_unpack_z_refuses_padding_bits_and_indices_beyond_the_classes():
    layout = wc.ZLayout(7, 10)                  # 28 bits in 4 bytes, indices 10..15 unused
    good = wc.pack_z(np.full(7, 9), layout)
    with pytest.raises(wc.CodecError):
        wc.unpack_z(good[:-1] + bytes([good[-1] | 0x01]), layout)     # a padding bit
    with pytest.raises(wc.CodecError):
        wc.unpack_z(bytes([0xF0]) + good[1:], layout)                  # index 15


@pytest.mark.parametrize('latents, classes', [(0, 32), (32, 1), (32, 257), (32.0, 32)])
def test_a_layout_without_a_wire_form_is_refused(latents, classes):
    with pytest.raises(wc.CodecError):
        wc.ZLayout(latents, classes)


@pytest.mark.parametrize('name, h', [
    ('tanh-bounded GRU state', np.tanh(2.0 * np.random.default_rng(2).normal(size=2048))),
    ('standard normal', np.random.default_rng(3).normal(size=2048))])
def test_h_error_bounds(name, h):
    h32 = h.astype(np.float32)
    peak = float(np.max(np.abs(h32)))
    fp16_max, _ = wc.h_reconstruction_error(h32, wc.H_FP16)
    int8_max, _ = wc.h_reconstruction_error(h32, wc.H_INT8)
    # fp16: 11 significant bits -> relative error <= 2^-11; int8: half a quantisation step.
    assert fp16_max <= peak * 2.0 ** -11, name
    assert int8_max <= peak / 127.0 / 2.0 * (1 + 1e-5), name
    assert fp16_max < int8_max, name  # why fp16 is the default
    assert len(wc.quantise_h(h32, wc.H_FP16)) == 2 * h.size
    int8 = wc.quantise_h(h32, wc.H_INT8)
    assert len(int8) == 4 + h.size           # the float32 scale leads the int8 values
    assert struct.unpack_from('<f', int8)[0] == pytest.approx(peak / 127.0)


def _int8(scale, values=b'\x01'):
    return struct.pack('<f', scale) + values


@pytest.mark.parametrize('encoding, data', [
    (wc.H_FP16, b'\x00'), (wc.H_INT8, _int8(0.0)), (wc.H_INT8, _int8(math.nan)),
    (wc.H_INT8, _int8(-1.0)), (wc.H_INT8, _int8(math.inf)), (wc.H_INT8, b'\x01\x02\x03'),
    (7, b''), (wc.H_NONE, b'\x00'),
    (wc.H_FP16, np.array([np.nan], dtype='<f2').tobytes()),
    (wc.H_FP16, np.array([np.inf], dtype='<f2').tobytes())])
def test_dequantise_h_rejects_malformed(encoding, data):
    with pytest.raises(wc.CodecError):
        wc.dequantise_h(encoding, data)


def test_dequantise_h_checks_expected_dimension():
    data = wc.quantise_h(np.zeros(8), wc.H_INT8)
    assert wc.dequantise_h(wc.H_INT8, data, expected_dim=8).shape == (8,)
    with pytest.raises(wc.CodecError):
        wc.dequantise_h(wc.H_INT8, data, expected_dim=16)


@pytest.mark.parametrize('encoding', [wc.H_FP16, wc.H_INT8])
def test_chunked_keyframe_reassembles_within_its_encoding_error(encoding):
    h = np.tanh(np.random.default_rng(9).normal(size=300)).astype(np.float32)
    parts = wc.keyframe_parts(h, encoding, 100)
    assert len(parts) > 1 and all(len(data) <= 100 for _, data in parts)
    assert {enc for enc, _ in parts} == {wc.CHUNK_OF[encoding]}
    decoded = [wc.decode_keyframe_part(enc, data) for enc, data in parts]
    assert [(p.index, p.count) for p in decoded] == [(i, len(parts)) for i in range(len(parts))]
    back = np.concatenate([p.values for p in decoded])
    bound = 2.0 ** -11 if encoding == wc.H_FP16 else 1.0 / 127.0 / 2.0 * (1 + 1e-5)
    assert back.shape == h.shape and np.max(np.abs(back - h)) <= bound
    assert wc.keyframe_parts(h[:40], encoding, 100) == [(encoding, wc.quantise_h(h[:40],
                                                                                 encoding))]


def test_waypoints_round_trip_within_12_bit_resolution():
    rng = np.random.default_rng(4)
    assert wc.WAYPOINT_RESOLUTION == pytest.approx(0.03125)
    for n in range(0, 12):
        x, y, yaw = rng.uniform(-1e3, 1e3), rng.uniform(-1e3, 1e3), rng.uniform(-4, 4)
        radius, bearing = rng.uniform(0, 63.9, size=n), rng.uniform(-4, 4, size=n)
        pts = np.array([x, y]) + np.stack([radius * np.cos(bearing),
                                           radius * np.sin(bearing)], axis=1)
        packed = wc.pack_intention(pts, x, y, yaw, max_points=20)
        assert len(packed) == math.ceil(24 * n / 8)
        back = wc.unpack_intention(packed, x, y, float(np.float32(yaw)))
        assert back.shape == (n, 2)
        if n:
            err = np.max(np.abs(back - pts))
            assert err <= wc.WAYPOINT_RESOLUTION / 2 * math.sqrt(2) + 1e-6


def test_waypoints_cut_at_first_point_out_of_window_and_at_max_points():
    pts = np.array([[10.0, 0.0], [50.0, 0.0], [70.0, 0.0], [20.0, 0.0]])
    assert wc.intention_points(len(wc.pack_intention(pts, 0.0, 0.0, 0.0, 10))) == 2
    assert wc.intention_points(len(wc.pack_intention(pts, 0.0, 0.0, 0.0, 1))) == 1


def test_intention_with_bad_length_or_padding_is_malformed():
    with pytest.raises(wc.CodecError):
        wc.unpack_intention(bytes(4), 0.0, 0.0, 0.0)    # no whole number of 24-bit points
    with pytest.raises(wc.CodecError):   # 5 points = 120 bits = 15 bytes: no padding
        wc.unpack_intention(bytes(16), 0.0, 0.0, 0.0)
    # 12-bit coordinates leave no padding bits to check: odd lengths are what is malformed
    assert wc.unpack_intention(bytes(15), 0.0, 0.0, 0.0).shape == (5, 2)


@pytest.mark.parametrize('h_dim, encoding, waypoints', [
    (512, wc.H_FP16, 10), (512, wc.H_INT8, 10), (2048, wc.H_FP16, 0), (0, wc.H_NONE, 3),
    (0, wc.H_NONE, 5), (33, wc.H_INT8, 1), (7, wc.H_FP16, 7), (0, wc.H_INT8, 2)])
def test_serialized_size_equals_real_cdr_size(h_dim, encoding, waypoints):
    rng = np.random.default_rng(h_dim + waypoints)
    wire = _message(rng, h_dim, encoding, waypoints)
    real = serialize_message(to_msg(wire))
    assert wc.serialized_size(wire) == len(real)
    unsigned = _message(rng, h_dim, encoding, waypoints)
    unsigned.signature = b''
    assert wc.serialized_size(unsigned) == len(serialize_message(to_msg(unsigned)))


@pytest.mark.parametrize('layout, size', [(wc.DEFAULT_LAYOUT, 151), (SMALL64, 195)])
def test_steady_state_replica_message_size(layout, size):
    """With h omitted, the planner's K = 5 waypoints and the signature (issue 11 budget)."""
    wire = _message(np.random.default_rng(0), 0, wc.H_NONE, 5, layout)
    assert len(wire.intention_packed) == 15
    assert wc.serialized_size(wire) == len(serialize_message(to_msg(wire))) == size


@pytest.mark.parametrize('encoding, h_dim, max_bytes', [
    (wc.H_FP16, 64, 30), (wc.H_INT8, 64, 30), (wc.H_INT8, 2048, 1000), (wc.H_FP16, 257, 101)])
def test_serialized_size_of_keyframe_chunks_equals_real_cdr_size(encoding, h_dim, max_bytes):
    rng = np.random.default_rng(h_dim)
    base = _message(rng, 0, wc.H_NONE, 5)
    parts = wc.keyframe_parts(np.tanh(rng.normal(size=h_dim)), encoding, max_bytes)
    assert len(parts) > 1
    for enc, data in parts:
        wire = wc.WireMessage(**{**base.__dict__, 'h_encoding': enc, 'h_data': data})
        real = serialize_message(to_msg(wire))
        assert wc.serialized_size(wire) == len(real)
        back = from_msg(deserialize_message(real, LatentMessage))
        assert wc.signed_payload(back) == wc.signed_payload(wire)


def test_signed_payload_survives_a_real_serialization_round_trip():
    rng = np.random.default_rng(5)
    wire = _message(rng)
    back = from_msg(deserialize_message(serialize_message(to_msg(wire)), LatentMessage))
    assert wc.signed_payload(back) == wc.signed_payload(wire)
    for name, value in [('sequence', back.sequence + 1), ('sender_key_id', 1),
                        ('stamp_nanosec', 1), ('x', back.x + 1.0), ('speed', 0.5),
                        ('z_packed', bytes(20)), ('z_packed', back.z_packed + bytes(1)),
                        ('action', 14), ('h_encoding', wc.H_INT8),
                        ('h_data', back.h_data[:-2]), ('intention_packed', b'')]:
        changed = wc.WireMessage(**{**back.__dict__, name: value})
        assert wc.signed_payload(changed) != wc.signed_payload(wire), name
    assert wc.signed_payload(wire).startswith(b'CALL/LatentMessage/v2\x00')


def test_fixed_size_fields_refuse_other_lengths():
    wire = _message(np.random.default_rng(6))
    with pytest.raises(wc.CodecError):
        to_msg(wc.WireMessage(**{**wire.__dict__, 'signature': bytes(63)}))


@pytest.mark.parametrize('h_dim, encoding, epoch, layout', [
    (0, wc.H_NONE, 0, wc.DEFAULT_LAYOUT), (512, wc.H_FP16, 3, wc.DEFAULT_LAYOUT),
    (64, wc.H_INT8, 15, wc.DEFAULT_LAYOUT), (0, wc.H_NONE, 0, SMALL64),
    (128, wc.H_INT8, 7, SMALL64), (33, wc.H_FP16, 1, wc.ZLayout(7, 10))])
def test_decode_cdr_reads_what_rclpy_serialized(h_dim, encoding, epoch, layout):
    wire = _message(np.random.default_rng(h_dim), h_dim, encoding, 5, layout)
    wire.epoch = epoch
    raw = serialize_message(to_msg(wire))
    assert wc.decode_cdr(raw) == wire
    assert from_msg(deserialize_message(raw, LatentMessage)) == wire
    header = wc.peek_header(raw)
    assert (header.sender_key_id, header.sequence, header.stamp_sec) == (
        wire.sender_key_id, wire.sequence, wire.stamp_sec)
    assert wc.serialized_size(wire) == len(raw) == wc.message_size(raw + bytes(3))
    assert wc.decode_cdr(raw + bytes(3)) == wire         # DDS pads to a multiple of 4


def test_the_epoch_changes_no_byte_count_and_is_signed():
    wire = _message(np.random.default_rng(5), 0, wc.H_NONE, waypoints=5)
    assert wc.serialized_size(wire) == 151
    later = wc.WireMessage(**{**wire.__dict__, 'epoch': 1})
    assert wc.serialized_size(later) == 151
    assert wc.signed_payload(later) != wc.signed_payload(wire)
    assert len(serialize_message(to_msg(later))) == 151


@pytest.mark.parametrize('cut', [0, 3, 19, 60, 150])
def test_decode_cdr_refuses_truncated_or_padded_bytes(cut):
    raw = serialize_message(to_msg(_message(np.random.default_rng(6), 0, wc.H_NONE, 5)))
    with pytest.raises(wc.CodecError):
        wc.decode_cdr(raw[:cut])
    with pytest.raises(wc.CodecError):
        wc.decode_cdr(raw + b'\x01')
    for offset in (32, 60):                     # z_packed and h_data lengths
        huge_length = bytearray(raw)
        huge_length[4 + offset:4 + offset + 4] = struct.pack('<I', 2 ** 31)
        with pytest.raises(wc.CodecError):
            wc.decode_cdr(bytes(huge_length))


def test_max_serialized_size_bounds_z_h_and_waypoints():
    assert wc.max_serialized_size(0, 5) == 151
    assert wc.max_serialized_size(1000, 5) == 151 + 1000
    assert wc.max_serialized_size(0, 5, SMALL64) == 195

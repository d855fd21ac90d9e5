"""Wire codec round trips, error bounds and exact byte accounting against real CDR."""
import math

from call_comm import wire_codec as wc
from call_comm.comm_node import from_msg, to_msg
from call_msgs.msg import LatentMessage
import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message


def _message(rng, h_dim=512, encoding=wc.H_FP16, waypoints=10, sender='hero12'):
    x, y, yaw = rng.uniform(-300, 300), rng.uniform(-300, 300), rng.uniform(-math.pi, math.pi)
    pts = np.array([x, y]) + np.cumsum(rng.uniform(-4, 4, size=(waypoints, 2)), axis=0)
    wire = wc.encode(sender, int(rng.integers(0, 2**32)), int(rng.integers(0, 10**6)),
                     int(rng.integers(0, 10**9)), (x, y, yaw, rng.uniform(0, 30)),
                     rng.integers(0, 32, size=32), np.tanh(rng.normal(size=h_dim)),
                     int(rng.integers(0, 15)), pts, rng.uniform(0, 100), 35.0, encoding, 64)
    wire.signature = bytes(rng.integers(0, 256, size=64, dtype=np.uint8))
    return wire


def test_z_round_trip_is_exact_and_20_bytes():
    rng = np.random.default_rng(1)
    for _ in range(200):
        z = rng.integers(0, 32, size=32)
        packed = wc.pack_z(z)
        assert len(packed) == wc.Z_PACKED_BYTES == 20
        np.testing.assert_array_equal(wc.unpack_z(packed), z)
    np.testing.assert_array_equal(wc.unpack_z(wc.pack_z(np.full(32, 31))), np.full(32, 31))


@pytest.mark.parametrize('bad', [np.full(32, 32), np.arange(31), np.full(32, -1),
                                 np.zeros(32, dtype=np.float32)])
def test_pack_z_refuses_indices_outside_0_31(bad):
    with pytest.raises(wc.CodecError):
        wc.pack_z(bad)


def test_unpack_z_refuses_wrong_length():
    for size in (0, 19, 21):
        with pytest.raises(wc.CodecError):
            wc.unpack_z(bytes(size))


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
    assert len(wc.quantise_h(h32, wc.H_FP16)[1]) == 2 * h.size
    assert len(wc.quantise_h(h32, wc.H_INT8)[1]) == h.size


@pytest.mark.parametrize('encoding, scale, data', [
    (wc.H_FP16, 0.0, b'\x00'), (wc.H_INT8, 0.0, b'\x01'), (wc.H_INT8, math.nan, b'\x01'),
    (wc.H_INT8, -1.0, b'\x01'), (7, 1.0, b''), (wc.H_NONE, 0.0, b'\x00'),
    (wc.H_FP16, 0.0, np.array([np.nan], dtype='<f2').tobytes()),
    (wc.H_FP16, 0.0, np.array([np.inf], dtype='<f2').tobytes())])
def test_dequantise_h_rejects_malformed(encoding, scale, data):
    with pytest.raises(wc.CodecError):
        wc.dequantise_h(encoding, scale, data)


def test_dequantise_h_checks_expected_dimension():
    scale, data = wc.quantise_h(np.zeros(8), wc.H_INT8)
    assert wc.dequantise_h(wc.H_INT8, scale, data, expected_dim=8).shape == (8,)
    with pytest.raises(wc.CodecError):
        wc.dequantise_h(wc.H_INT8, scale, data, expected_dim=16)


def test_waypoints_round_trip_within_14_bit_resolution():
    rng = np.random.default_rng(4)
    assert wc.WAYPOINT_RESOLUTION == pytest.approx(0.0078125)
    for n in range(0, 12):
        x, y, yaw = rng.uniform(-1e3, 1e3), rng.uniform(-1e3, 1e3), rng.uniform(-4, 4)
        radius, bearing = rng.uniform(0, 63.9, size=n), rng.uniform(-4, 4, size=n)
        pts = np.array([x, y]) + np.stack([radius * np.cos(bearing),
                                           radius * np.sin(bearing)], axis=1)
        packed = wc.pack_intention(pts, x, y, yaw, max_points=20)
        assert len(packed) == math.ceil(28 * n / 8)
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
        wc.unpack_intention(bytes(5), 0.0, 0.0, 0.0)    # no whole number of 28-bit points
    with pytest.raises(wc.CodecError):
        wc.unpack_intention(b'\x00\x00\x00\x01', 0.0, 0.0, 0.0)  # non-zero padding nibble


@pytest.mark.parametrize('h_dim, encoding, waypoints, sender', [
    (512, wc.H_FP16, 10, 'hero0'), (512, wc.H_INT8, 10, 'hero12'), (2048, wc.H_FP16, 0, 'h'),
    (0, wc.H_NONE, 3, 'hero123'), (33, wc.H_INT8, 1, 'x' * 17), (7, wc.H_FP16, 7, 'héro')])
def test_serialized_size_equals_real_cdr_size(h_dim, encoding, waypoints, sender):
    rng = np.random.default_rng(h_dim + waypoints)
    wire = _message(rng, h_dim, encoding, waypoints, sender)
    real = serialize_message(to_msg(wire))
    assert wc.serialized_size(wire) == len(real)
    unsigned = _message(rng, h_dim, encoding, waypoints, sender)
    unsigned.signature = b''
    assert wc.serialized_size(unsigned) == len(serialize_message(to_msg(unsigned)))


def test_signed_payload_survives_a_real_serialization_round_trip():
    rng = np.random.default_rng(5)
    wire = _message(rng)
    back = from_msg(deserialize_message(serialize_message(to_msg(wire)), LatentMessage))
    assert wc.signed_payload(back) == wc.signed_payload(wire)
    back.sequence += 1
    assert wc.signed_payload(back) != wc.signed_payload(wire)

"""Compare serialized messages with rclpy's, and messages field by field (NaN bits too)."""
import array
import struct

import numpy as np
import pytest
from rclpy._rclpy_pybind11 import RMWError
from rclpy.serialization import deserialize_message, serialize_message


def assert_same_message(got, expected, path: str = 'msg') -> None:
    """Check two ROS messages equal field by field, doubles by their bits (NaN, -0.0)."""
    assert type(got) is type(expected), path
    if hasattr(expected, 'get_fields_and_field_types'):
        for name in expected.get_fields_and_field_types():
            assert_same_message(getattr(got, name), getattr(expected, name), f'{path}.{name}')
    elif isinstance(expected, (list, tuple, array.array, np.ndarray)):
        assert len(got) == len(expected), path
        for index, (a, b) in enumerate(zip(got, expected)):
            assert_same_message(a, b, f'{path}[{index}]')
    elif isinstance(expected, float):
        assert struct.pack('<d', got) == struct.pack('<d', expected), \
            f'{path}: {got!r} != {expected!r}'
    else:
        assert got == expected, f'{path}: {got!r} != {expected!r}'


def assert_serializes_as(ours: bytes, typed, exact_length: bool = True) -> None:
    """
    Check our bytes are rclpy's `serialize_message` of ``typed``, but for alignment padding.

    Fast CDR leaves padding bytes uninitialised (they vary from call to call); ours are zero.
    So a byte may differ only where ours is zero; a field written wrong, or at the wrong
    offset, shows in the field-by-field comparison of the deserialised messages. rclpy's
    length is Fast CDR's size estimate, which over-counts an empty float64 sequence (it aligns
    for elements that are not there): with ``exact_length`` False ours may be shorter, the
    bytes beyond ours are ignored, and ours is checked to be the whole message (one byte less
    does not deserialise).
    """
    msg_type = type(typed)
    theirs = serialize_message(typed)
    if exact_length:
        assert len(ours) == len(theirs)
    else:
        assert len(ours) <= len(theirs)
    assert ours[:4] == theirs[:4]                    # encapsulation header
    differing = [i for i in range(len(ours)) if ours[i] != theirs[i]]
    assert all(ours[i] == 0 for i in differing), differing
    with pytest.raises(RMWError):
        deserialize_message(ours[:-1], msg_type)
    assert_same_message(deserialize_message(ours, msg_type),
                        deserialize_message(theirs, msg_type))

"""
The 4-byte encapsulation header of a serialized ROS 2 sample (XCDR1), read and written.

The raw readers and writers of the bridge and planner messages (`call_common.nav_cdr`,
`call_perception.object_cdr`, `call_sim.bridge_cdr`) start with it: two bytes of
representation identifier (0x0000 CDR_BE, 0x0001 CDR_LE; 0x0002 / 0x0003 the parameter-list
forms) and two of options (OMG DDS-XTypes 1.3, 7.6.3.1.2). Every offset of the body after it
is aligned relative to the body's start.
"""
from typing import Type

#: header bytes by struct byte order ('<' little-endian CDR_LE, '>' big-endian CDR_BE)
ENCAPSULATION = {'<': b'\x00\x01\x00\x00', '>': b'\x00\x00\x00\x00'}


def byte_order(raw: bytes, error: Type[ValueError] = ValueError) -> str:
    """Return the struct byte order ('<' or '>') of a sample; raise `error` if it has none."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] not in (0, 1, 2, 3):
        raise error('no CDR encapsulation header')
    return '<' if raw[1] & 1 else '>'

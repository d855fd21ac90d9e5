"""
The carla_msgs / derived_object_msgs stand-ins equal the upstream definitions, field for field.

A node built against the stand-ins must talk to a carla-ros-bridge or an apt-installed
carla_msgs: the type hash and the CDR layout come from the fields in order, so each stand-in is
compared with a normalised copy of the upstream .msg kept in upstream_msgs/ (SOURCES.md).
"""
import os
import re

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
UPSTREAM = os.path.join(HERE, 'upstream_msgs')
STAND_INS = os.path.join(os.path.dirname(os.path.dirname(HERE)), 'carla_interfaces')
CONSTANT = re.compile(r'^\S+ \w+\s*=')


def definition(path: str) -> tuple:
    """Return (fields in order, set of constants) of a .msg, comments and spacing ignored."""
    fields, constants = [], set()
    with open(path, encoding='utf-8') as stream:
        for raw in stream:
            line = ' '.join(raw.split('#', 1)[0].split())
            if not line:
                continue
            if line.startswith('Header '):
                line = 'std_msgs/' + line
            if CONSTANT.match(line):
                constants.add(line.replace(' =', '=').replace('= ', '='))
            else:
                fields.append(line)
    return fields, constants


def upstream_copies() -> list:
    return sorted(name for name in os.listdir(UPSTREAM) if name.endswith('.msg'))


def test_every_stand_in_has_an_upstream_copy():
    stand_ins = {f'{package}__{name}' for package in ('carla_msgs', 'derived_object_msgs')
                 for name in os.listdir(os.path.join(STAND_INS, package, 'msg'))}
    assert stand_ins == set(upstream_copies())


@pytest.mark.parametrize('copy', upstream_copies())
def test_stand_in_equals_upstream(copy):
    package, name = copy.split('__')
    assert definition(os.path.join(STAND_INS, package, 'msg', name)) == \
        definition(os.path.join(UPSTREAM, copy))


def test_carla_control_has_no_header():
    fields, constants = definition(os.path.join(STAND_INS, 'carla_msgs', 'msg',
                                                'CarlaControl.msg'))
    assert fields == ['int8 command']
    assert constants == {'int8 PLAY=0', 'int8 PAUSE=1', 'int8 STEP_ONCE=2'}

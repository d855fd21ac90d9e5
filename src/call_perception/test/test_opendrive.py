"""OpenDRIVE -> lane polylines: hand-computed points, CARLA's own parser, SUMO's export."""
import glob
import math
import os

from call_perception.opendrive import parse_lanes, parse_roads, reference_line
from call_perception.road_map import RoadMap
import numpy as np
import pytest

CARLA_MISSING = ('the carla client (PyPI carla==0.9.16, requirements.txt) is not installed; '
                 'scripts/setup.sh installs it')

# Road 1: 50 m line east from the origin, then a 50 m left arc (curvature 0.02 1/m).
# laneOffset 0.25 m to the left. Section 0 (s 0..60): left 1 driving 3.5 m; right -1 driving
# 3.5 m, -2 driving 3.0 + 0.02 ds m, -3 sidewalk 2 m. Section 1 (s 60..100): left 1 driving 3.5,
# right -1 driving 3.5 m, -2 shoulder 1 m.
# Road 2: spiral (curvature 0 -> 0.04 over 30 m) then a paramPoly3 (normalized), one lane each
# side, checked against CARLA's OpenDRIVE parser (carla.Map works offline).
HAND_XODR = """<?xml version="1.0" standalone="yes"?>
<OpenDRIVE>
  <header revMajor="1" revMinor="4" name="hand" version="1"/>
  <road name="r1" length="100" id="1" junction="-1">
    <planView>
      <geometry s="0" x="0" y="0" hdg="0" length="50"><line/></geometry>
      <geometry s="50" x="50" y="0" hdg="0" length="50"><arc curvature="0.02"/></geometry>
    </planView>
    <lanes>
      <laneOffset s="0" a="0.25" b="0" c="0" d="0"/>
      <laneSection s="0">
        <left>
          <lane id="1" type="driving" level="false">
            <width sOffset="0" a="3.5" b="0" c="0" d="0"/></lane>
        </left>
        <center><lane id="0" type="none" level="false"/></center>
        <right>
          <lane id="-1" type="driving" level="false">
            <width sOffset="0" a="3.5" b="0" c="0" d="0"/></lane>
          <lane id="-2" type="driving" level="false">
            <width sOffset="0" a="3.0" b="0.02" c="0" d="0"/></lane>
          <lane id="-3" type="sidewalk" level="false">
            <width sOffset="0" a="2.0" b="0" c="0" d="0"/></lane>
        </right>
      </laneSection>
      <laneSection s="60">
        <left>
          <lane id="1" type="driving" level="false">
            <width sOffset="0" a="3.5" b="0" c="0" d="0"/></lane>
        </left>
        <center><lane id="0" type="none" level="false"/></center>
        <right>
          <lane id="-1" type="driving" level="false">
            <width sOffset="0" a="3.5" b="0" c="0" d="0"/></lane>
          <lane id="-2" type="shoulder" level="false">
            <width sOffset="0" a="1.0" b="0" c="0" d="0"/></lane>
        </right>
      </laneSection>
    </lanes>
  </road>
  <road name="r2" length="70" id="2" junction="-1">
    <planView>
      <geometry s="0" x="0" y="100" hdg="0.3" length="30">
        <spiral curvStart="0.0" curvEnd="0.04"/></geometry>
      <geometry s="30" x="28.0" y="111.0" hdg="0.9" length="40">
        <paramPoly3 aU="0" bU="38" cU="2" dU="-0.5" aV="0" bV="0" cV="4" dV="-1"
                    pRange="normalized"/></geometry>
    </planView>
    <lanes>
      <laneSection s="0">
        <left>
          <lane id="1" type="driving" level="false">
            <width sOffset="0" a="3.25" b="0" c="0" d="0"/></lane>
        </left>
        <center><lane id="0" type="none" level="false"/></center>
        <right>
          <lane id="-1" type="driving" level="false">
            <width sOffset="0" a="3.0" b="0.01" c="0" d="0"/></lane>
        </right>
      </laneSection>
    </lanes>
  </road>
</OpenDRIVE>
"""


def _lanes():
    return {lane.lane_id: lane for lane in parse_lanes(HAND_XODR, step=0.5)}


def _point_at(lane, x):
    """Centre-line point whose x equals x (interpolated)."""
    line = lane.centerline
    order = np.argsort(line[:, 0])
    return np.array([x, np.interp(x, line[order, 0], line[order, 1])])


def _distance_to_polylines(point, lines):
    """Smallest distance from point to any segment of the polylines."""
    point = np.asarray(point, dtype=np.float64)
    best = np.inf
    for line in lines:
        a, b = line[:-1], line[1:]
        ab = b - a
        t = np.clip(np.einsum('ij,ij->i', point - a, ab)
                    / np.maximum(np.einsum('ij,ij->i', ab, ab), 1e-12), 0.0, 1.0)
        best = min(best, float(np.min(np.linalg.norm(a + ab * t[:, None] - point, axis=1))))
    return best


def test_straight_section_hand_computed_points():
    lanes = _lanes()
    # lane -1: t = 0.25 - 3.5 / 2 = -1.5; lane -2 at s=10: width 3.2, t = 0.25 - 3.5 - 1.6
    np.testing.assert_allclose(_point_at(lanes['1:0:-1'], 10.0), [10.0, -1.5], atol=1e-9)
    np.testing.assert_allclose(_point_at(lanes['1:0:-2'], 10.0), [10.0, -4.85], atol=1e-9)
    np.testing.assert_allclose(_point_at(lanes['1:0:1'], 10.0), [10.0, 2.0], atol=1e-9)
    assert lanes['1:0:-1'].width == pytest.approx(3.5)
    assert lanes['1:0:-2'].width == pytest.approx(3.0 + 0.02 * 30.0)  # mean over s 0..60


def test_driving_direction_and_section_ends():
    lanes = _lanes()
    right, left = lanes['1:0:-1'].centerline, lanes['1:0:1'].centerline
    assert right[0, 0] == pytest.approx(0.0) and right[-1, 0] > right[0, 0]  # along s
    assert left[0, 0] > left[-1, 0]  # left lane of a right-hand-traffic road runs against s
    assert len(right) == 121  # s 0..60 every 0.5 m, both ends included


def test_arc_section_hand_computed_end_point():
    lanes = _lanes()
    end = lanes['1:1:-1'].centerline[-1]  # s = 100: 50 m into the arc, heading 1 rad
    ref = np.array([50.0 + math.sin(1.0) / 0.02, (1.0 - math.cos(1.0)) / 0.02])
    normal = np.array([-math.sin(1.0), math.cos(1.0)])
    np.testing.assert_allclose(end, ref + normal * (0.25 - 1.75), atol=1e-9)
    np.testing.assert_allclose(end, [93.33568, 22.17449], atol=1e-4)


def test_lane_types_filter_and_step():
    ids = set(_lanes())
    assert ids == {'1:0:1', '1:0:-1', '1:0:-2', '1:1:1', '1:1:-1', '2:0:1', '2:0:-1'}
    with_walks = {lane.lane_id for lane in parse_lanes(HAND_XODR, lane_types=('sidewalk',))}
    assert with_walks == {'1:0:-3'}
    sidewalk = parse_lanes(HAND_XODR, lane_types=('sidewalk',))[0]
    # outside lanes -1 (3.5) and -2 (3.0 + 0.02 s): at s=0 t = 0.25 - 6.5 - 1.0
    np.testing.assert_allclose(sidewalk.centerline[0], [0.0, -7.25], atol=1e-9)
    coarse = {lane.lane_id: lane for lane in parse_lanes(HAND_XODR, step=5.0)}
    assert len(coarse['1:0:-1'].centerline) == 13


def test_junction_roads_can_be_left_out():
    xodr = HAND_XODR.replace('id="2" junction="-1"', 'id="2" junction="7"')
    ids = {lane.lane_id for lane in parse_lanes(xodr, include_junctions=False)}
    assert ids == {'1:0:1', '1:0:-1', '1:0:-2', '1:1:1', '1:1:-1'}


def test_matches_carla_opendrive_parser():
    """The CARLA client library parses OpenDRIVE offline; its frame is ours with y negated."""
    carla = pytest.importorskip('carla', reason=CARLA_MISSING)
    carla_map = carla.Map('hand', HAND_XODR)
    roads = {road.road_id: road for road in parse_roads(HAND_XODR)}
    checked = 0
    for lane in parse_lanes(HAND_XODR, step=0.25):
        road_id, _, lane_id = lane.lane_id.split(':')
        road = roads[road_id]
        carla_widths = []
        for s in np.linspace(1.0, road.length - 1.0, 15):
            waypoint = carla_map.get_waypoint_xodr(int(road_id), int(lane_id), float(s))
            if waypoint is None or waypoint.section_id != int(lane.lane_id.split(':')[1]):
                continue
            loc = waypoint.transform.location
            distance = _distance_to_polylines((loc.x, -loc.y), [lane.centerline])
            assert distance < 0.01, (lane.lane_id, s, distance)
            carla_widths.append(waypoint.lane_width)
            checked += 1
        assert lane.width == pytest.approx(np.mean(carla_widths), abs=0.1), lane.lane_id
    assert checked >= 60


def test_spiral_heading_and_continuity():
    road = parse_roads(HAND_XODR)[1]
    x, y, hdg = reference_line(road, np.array([0.0, 30.0]))
    assert hdg[1] == pytest.approx(0.3 + 0.5 * 0.04 * 30.0)  # heading integrates curvature
    # a clothoid this gentle stays within 1 % of the chord length
    assert math.hypot(x[1] - x[0], y[1] - y[0]) == pytest.approx(30.0, rel=0.01)


def test_road_map_builds_from_opendrive():
    road_map = RoadMap.from_opendrive(HAND_XODR)
    assert len(road_map.lanes) == 7
    assert road_map.drivable.near(10.0, -1.5, 2.0)


@pytest.mark.parametrize('bad, reason', [
    ('<OpenDRIVE><road', 'well-formed'),
    ('<html/>', 'not an OpenDRIVE document'),
    ('<OpenDRIVE><road id="1" length="5"><planView/></road></OpenDRIVE>', 'no planView'),
    (HAND_XODR.replace('length="50"><line/>', 'length="abc"><line/>', 1), 'not a number'),
    (HAND_XODR.replace('<arc curvature="0.02"/>', '<clothoid/>'), 'no supported shape'),
])
def test_malformed_input_fails_with_a_reason(bad, reason):
    with pytest.raises(ValueError, match=reason):
        parse_lanes(bad)


def test_bad_step_rejected():
    with pytest.raises(ValueError, match='step'):
        parse_lanes(HAND_XODR, step=0.0)


def _sim_xodr_files():
    here = os.path.dirname(os.path.abspath(__file__))
    pattern = os.path.join(here, '..', '..', 'call_sim', 'call_sim', 'maps', '*', '*.xodr')
    return sorted(glob.glob(pattern))


@pytest.mark.parametrize('xodr_path', _sim_xodr_files() or [None])
def test_embedded_simulator_export_matches_sumo_and_carla(xodr_path):
    """
    The simulator's maps parse to SUMO's lane shapes and to CARLA's reading of the file.

    netconvert fits curved SUMO edges with paramPoly3 when it writes OpenDRIVE, so SUMO's own
    shape points may sit up to ~0.4 m off the exported curve (measured 0.29 m on two_lane,
    0.39 m on highway_merge's on-ramp);
    CARLA's parser of the same file is the exact oracle for our parser (< 1 cm).
    """
    if xodr_path is None:
        pytest.skip('no call_sim/maps/*/*.xodr in this checkout (written by call_sim)')
    sumolib = pytest.importorskip('sumolib', reason='sumolib (requirements.txt) not installed')
    carla = pytest.importorskip('carla', reason=CARLA_MISSING)
    net_files = glob.glob(os.path.join(os.path.dirname(xodr_path), '*.net.xml'))
    assert net_files, f'no SUMO network next to {xodr_path}'
    with open(xodr_path, encoding='utf-8') as handle:
        text = handle.read()
    lines = [lane.centerline for lane in parse_lanes(text, step=0.5)]
    assert lines
    net = sumolib.net.readNet(net_files[0], withInternal=False)
    checked = 0
    for edge in net.getEdges():
        for sumo_lane in edge.getLanes():
            if not sumo_lane.allows('passenger'):
                continue
            for point in np.asarray(sumo_lane.getShape(), dtype=np.float64)[:, :2]:
                distance = _distance_to_polylines(point, lines)
                assert distance < 0.45, (sumo_lane.getID(), point, distance)
                checked += 1
    assert checked > 0
    waypoints = [w for w in carla.Map('sim', text).generate_waypoints(2.0)
                 if w.lane_type == carla.LaneType.Driving]
    assert waypoints
    for waypoint in waypoints:
        loc = waypoint.transform.location
        assert _distance_to_polylines((loc.x, -loc.y), lines) < 0.01

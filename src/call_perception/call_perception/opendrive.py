"""
OpenDRIVE (.xodr) -> lane centre polylines with widths, in the map frame.

CARLA publishes its map as OpenDRIVE text in ``/carla/world_info``; the BEV rasteriser needs the
same ``Lane(lane_id, centerline, width)`` list the embedded simulator gives, so this module turns
the road reference lines (planView: line, arc, spiral, poly3, paramPoly3), ``laneOffset`` and the
lane sections' width polynomials into sampled lane centre lines.

Frames: OpenDRIVE is right-handed (x east, y north, heading counter-clockwise), exactly our ROS
``map`` frame. CARLA's Unreal frame is left-handed: CARLA reports an OpenDRIVE point (x, y) at
(x, -y), and carla-ros-bridge negates y again when it publishes poses in ``map``
(``carla_common.transforms.carla_location_to_ros_point``). So OpenDRIVE coordinates are used
unchanged here, and they line up with ``/carla/<role>/odometry``.

The standard library parser is used: the input is a single trusted-format document of a few MB
(Town04 ~ 5 MB), lxml would add a dependency for no gain, and Python's bundled expat (>= 2.4.1)
refuses entity-expansion bombs.
"""
from dataclasses import dataclass, field
import math
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple
import xml.etree.ElementTree as ElementTree

from call_perception.lane import Lane
import numpy as np

DEFAULT_STEP = 1.0  # [m] sampling step along the reference line
DEFAULT_LANE_TYPES = ('driving',)
MIN_WIDTH = 0.05  # [m] lanes narrower than this on average (merge tapers) are dropped
_SPIRAL_STEP = 0.05  # [m] integration step for clothoids and poly3 arc length


@dataclass
class Geometry:
    """One planView record: start pose, length and shape parameters."""

    s: float
    x: float
    y: float
    hdg: float
    length: float
    kind: str  # line | arc | spiral | poly3 | paramPoly3
    params: Dict[str, float] = field(default_factory=dict)


@dataclass
class Poly3:
    """A cubic a + b ds + c ds^2 + d ds^3 valid from start (s or sOffset) onwards."""

    start: float
    a: float
    b: float
    c: float
    d: float

    def __call__(self, ds: np.ndarray) -> np.ndarray:
        """Evaluate at ds (metres past start)."""
        return self.a + ds * (self.b + ds * (self.c + ds * self.d))


@dataclass
class LaneRecord:
    """A lane inside a lane section: id, type and width polynomials (sOffset-relative)."""

    lane_id: int
    lane_type: str
    widths: List[Poly3]


@dataclass
class LaneSection:
    """Lanes valid from s on; left lanes have positive ids, right lanes negative."""

    s: float
    left: List[LaneRecord]  # ordered 1, 2, 3 ... (outwards)
    right: List[LaneRecord]  # ordered -1, -2, -3 ... (outwards)


@dataclass
class Road:
    """One OpenDRIVE road."""

    road_id: str
    length: float
    junction: str
    left_hand_traffic: bool
    geometries: List[Geometry]
    lane_offsets: List[Poly3]
    sections: List[LaneSection]


def _float(element: ElementTree.Element, name: str, default: Optional[float] = None) -> float:
    value = element.get(name)
    if value is None:
        if default is None:
            raise ValueError(f'OpenDRIVE <{element.tag}> lacks attribute {name!r}')
        return default
    try:
        result = float(value)
    except ValueError:
        raise ValueError(f'OpenDRIVE <{element.tag} {name}={value!r}> is not a number') from None
    if not math.isfinite(result):
        raise ValueError(f'OpenDRIVE <{element.tag} {name}={value!r}> is not finite')
    return result


def _poly(element: ElementTree.Element, start_name: str) -> Poly3:
    return Poly3(_float(element, start_name, 0.0), _float(element, 'a', 0.0),
                 _float(element, 'b', 0.0), _float(element, 'c', 0.0), _float(element, 'd', 0.0))


_GEOMETRY_PARAMS = {
    'line': (),
    'arc': ('curvature',),
    'spiral': ('curvStart', 'curvEnd'),
    'poly3': ('a', 'b', 'c', 'd'),
    'paramPoly3': ('aU', 'bU', 'cU', 'dU', 'aV', 'bV', 'cV', 'dV'),
}


def _parse_geometry(element: ElementTree.Element) -> Geometry:
    for kind, names in _GEOMETRY_PARAMS.items():
        shape = element.find(kind)
        if shape is not None:
            params = {name: _float(shape, name, 0.0) for name in names}
            if kind == 'paramPoly3':
                params['normalized'] = float(shape.get('pRange', 'normalized') == 'normalized')
            return Geometry(_float(element, 's'), _float(element, 'x'), _float(element, 'y'),
                            _float(element, 'hdg'), _float(element, 'length'), kind, params)
    raise ValueError(f'OpenDRIVE geometry at s={element.get("s")} has no supported shape')


def _parse_lanes(side: Optional[ElementTree.Element], sign: int) -> List[LaneRecord]:
    if side is None:
        return []
    records = []
    for lane in side.findall('lane'):
        widths = sorted((_poly(w, 'sOffset') for w in lane.findall('width')),
                        key=lambda p: p.start)
        records.append(LaneRecord(int(lane.get('id', '0')), lane.get('type', 'none'), widths))
    records.sort(key=lambda r: abs(r.lane_id))
    if any(r.lane_id * sign <= 0 for r in records):
        raise ValueError('OpenDRIVE lane ids must be positive on the left, negative on the right')
    return records


def parse_roads(xodr_text: str) -> List[Road]:
    """Read every road of an OpenDRIVE document; raise ValueError on malformed input."""
    try:
        root = ElementTree.fromstring(xodr_text)
    except ElementTree.ParseError as err:
        raise ValueError(f'OpenDRIVE text is not well-formed XML: {err}') from None
    if root.tag != 'OpenDRIVE':
        raise ValueError(f'not an OpenDRIVE document (root element <{root.tag}>)')
    roads = []
    for element in root.findall('road'):
        plan_view = element.find('planView')
        geometries = [] if plan_view is None else [
            _parse_geometry(g) for g in plan_view.findall('geometry')]
        if not geometries:
            raise ValueError(f'OpenDRIVE road {element.get("id")} has no planView geometry')
        geometries.sort(key=lambda g: g.s)
        lanes = element.find('lanes')
        offsets, sections = [], []
        if lanes is not None:
            offsets = sorted((_poly(o, 's') for o in lanes.findall('laneOffset')),
                             key=lambda p: p.start)
            for section in lanes.findall('laneSection'):
                sections.append(LaneSection(_float(section, 's', 0.0),
                                            _parse_lanes(section.find('left'), 1),
                                            _parse_lanes(section.find('right'), -1)))
            sections.sort(key=lambda sec: sec.s)
        roads.append(Road(element.get('id', ''), _float(element, 'length'),
                          element.get('junction', '-1'), element.get('rule', 'RHT') == 'LHT',
                          geometries, offsets, sections))
    return roads


def _integrate_curve(length: float, heading_of: Callable[[np.ndarray], np.ndarray]
                     ) -> Tuple[np.ndarray, ...]:
    """Fine grid u, positions (x, y) relative to the start, for a curve given by its heading."""
    u = np.linspace(0.0, length, max(2, int(math.ceil(length / _SPIRAL_STEP)) + 1))
    theta = heading_of(u)
    du = np.diff(u)
    x = np.concatenate([[0.0], np.cumsum(0.5 * du * (np.cos(theta[1:]) + np.cos(theta[:-1])))])
    y = np.concatenate([[0.0], np.cumsum(0.5 * du * (np.sin(theta[1:]) + np.sin(theta[:-1])))])
    return u, x, y, theta


def _local_curve(geom: Geometry, ds: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Position (u, v) in the geometry's start frame and heading change, at arc lengths ds."""
    p = geom.params
    if geom.kind == 'line':
        return ds, np.zeros_like(ds), np.zeros_like(ds)
    if geom.kind == 'arc':
        k = p['curvature']
        if abs(k) < 1e-12:
            return ds, np.zeros_like(ds), np.zeros_like(ds)
        return np.sin(k * ds) / k, (1.0 - np.cos(k * ds)) / k, k * ds
    if geom.kind == 'spiral':
        k0 = p['curvStart']
        rate = (p['curvEnd'] - k0) / geom.length if geom.length > 0 else 0.0
        u, x, y, theta = _integrate_curve(geom.length, lambda s: k0 * s + 0.5 * rate * s * s)
        return np.interp(ds, u, x), np.interp(ds, u, y), k0 * ds + 0.5 * rate * ds * ds
    if geom.kind == 'poly3':  # v(u) in the local frame; map arc length to u numerically
        a, b, c, d = p['a'], p['b'], p['c'], p['d']
        u = np.linspace(0.0, geom.length * 1.5 + 1.0,
                        max(2, int(math.ceil(geom.length * 1.5 / _SPIRAL_STEP)) + 1))
        v = a + u * (b + u * (c + u * d))
        arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(u), np.diff(v)))])
        uu = np.interp(ds, arc, u)
        slope = b + uu * (2.0 * c + 3.0 * d * uu)
        return uu, a + uu * (b + uu * (c + uu * d)), np.arctan(slope)
    # paramPoly3
    t = ds / geom.length if p['normalized'] and geom.length > 0 else ds
    u = p['aU'] + t * (p['bU'] + t * (p['cU'] + t * p['dU']))
    v = p['aV'] + t * (p['bV'] + t * (p['cV'] + t * p['dV']))
    du = p['bU'] + t * (2.0 * p['cU'] + 3.0 * p['dU'] * t)
    dv = p['bV'] + t * (2.0 * p['cV'] + 3.0 * p['dV'] * t)
    return u, v, np.arctan2(dv, du)


def reference_line(road: Road, s: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reference-line x, y and heading at stations s (map frame, radians CCW from +x)."""
    s = np.asarray(s, dtype=np.float64)
    starts = np.array([g.s for g in road.geometries])
    index = np.clip(np.searchsorted(starts, s, side='right') - 1, 0, len(starts) - 1)
    x, y, hdg = np.empty_like(s), np.empty_like(s), np.empty_like(s)
    for i, geom in enumerate(road.geometries):
        mask = index == i
        if not np.any(mask):
            continue
        ds = np.clip(s[mask] - geom.s, 0.0, max(geom.length, 0.0))
        u, v, dh = _local_curve(geom, ds)
        cos_h, sin_h = math.cos(geom.hdg), math.sin(geom.hdg)
        x[mask] = geom.x + u * cos_h - v * sin_h
        y[mask] = geom.y + u * sin_h + v * cos_h
        hdg[mask] = geom.hdg + dh
    return x, y, hdg


def _piecewise(polys: Sequence[Poly3], ds: np.ndarray) -> np.ndarray:
    """Evaluate a list of polynomials, each valid from its start to the next one's."""
    out = np.zeros_like(ds)
    if not polys:
        return out
    starts = np.array([p.start for p in polys])
    index = np.clip(np.searchsorted(starts, ds, side='right') - 1, 0, len(polys) - 1)
    for i, poly in enumerate(polys):
        mask = index == i
        out[mask] = poly(ds[mask] - poly.start)
    return out


def _section_lanes(road: Road, k: int, step: float, lane_types: frozenset) -> List[Lane]:
    section = road.sections[k]
    s_end = road.sections[k + 1].s if k + 1 < len(road.sections) else road.length
    if s_end - section.s < 1e-6:
        return []
    count = max(2, int(math.ceil((s_end - section.s) / step)) + 1)
    s = np.linspace(section.s, s_end, count)
    x, y, hdg = reference_line(road, s)
    normal = np.stack([-np.sin(hdg), np.cos(hdg)], axis=1)
    base = np.stack([x, y], axis=1) + normal * _piecewise(road.lane_offsets, s)[:, None]
    ds = s - section.s
    lanes = []
    for side, sign in ((section.left, 1.0), (section.right, -1.0)):
        inner = np.zeros_like(s)
        for record in side:
            width = np.maximum(_piecewise(record.widths, ds), 0.0)
            centre_t = sign * (inner + 0.5 * width)
            inner = inner + width
            if record.lane_type not in lane_types or float(width.mean()) < MIN_WIDTH:
                continue
            line = base + normal * centre_t[:, None]
            along_s = (sign < 0) != road.left_hand_traffic
            lanes.append(Lane(f'{road.road_id}:{k}:{record.lane_id}',
                              line if along_s else line[::-1].copy(), float(width.mean())))
    return lanes


def parse_lanes(xodr_text: str, step: float = DEFAULT_STEP,
                lane_types: Iterable[str] = DEFAULT_LANE_TYPES,
                include_junctions: bool = True) -> List[Lane]:
    """
    Lane centre lines (ordered in driving direction) and mean widths of an OpenDRIVE map.

    One Lane per (road, lane section, lane), id ``"<road>:<section index>:<lane id>"``; the
    width is the lane's mean width over the section. ``step`` is the sampling step [m] along
    the reference line (section ends are always included).
    """
    if not step > 0.0:
        raise ValueError(f'sampling step must be positive, got {step}')
    wanted = frozenset(lane_types)
    lanes: List[Lane] = []
    for road in parse_roads(xodr_text):
        if not include_junctions and road.junction not in ('-1', ''):
            continue
        for k in range(len(road.sections)):
            lanes.extend(_section_lanes(road, k, step, wanted))
    return lanes

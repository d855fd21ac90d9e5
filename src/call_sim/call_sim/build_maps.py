"""
Regenerate the road networks (SUMO .net.xml + OpenDRIVE .xodr) from plain node/edge XML.

Run `python -m call_sim.build_maps` after changing a map below; the outputs are committed under
`call_sim/maps/<name>/` so that nothing is generated at run time.
"""
import math
from pathlib import Path
import subprocess
import sys

MAPS_DIR = Path(__file__).resolve().parent / 'maps'
LANE_WIDTH = 3.5

# name -> (nodes [(id, x, y, type)], edges [(id, from, to, lanes, speed, shape or None)])
MAP_SPECS = {
    # Town04-like straight highway section: 4 lanes in one direction, 2 km long (room for 250
    # background vehicles at highway spacing).
    'four_lane': (
        [('start', 0.0, 0.0, 'priority'), ('end', 2000.0, 0.0, 'priority')],
        [('main', 'start', 'end', 4, 25.0, None)],
    ),
    # Unseen two-lane road (both lanes in one direction) with a gentle S-bend (radius ~300 m).
    'two_lane': (
        [('start', 0.0, 0.0, 'priority'), ('end', 600.0, 0.0, 'priority')],
        [('main', 'start', 'end', 2, 20.0,
          [(x, 30.0 * math.sin(2.0 * math.pi * x / 600.0)) for x in range(0, 601, 20)])],
    ),
    # Four-way crossroad: four 200 m arms, two lanes per direction, priority junction.
    'crossroad': (
        [('centre', 0.0, 0.0, 'priority'), ('north', 0.0, 200.0, 'priority'),
         ('south', 0.0, -200.0, 'priority'), ('east', 200.0, 0.0, 'priority'),
         ('west', -200.0, 0.0, 'priority')],
        [(f'{arm}_{d}', *(('centre', arm) if d == 'out' else (arm, 'centre')), 2, 13.9, None)
         for arm in ('north', 'south', 'east', 'west') for d in ('in', 'out')],
    ),
    # Highway merge: a two-lane main road joined by a one-lane on-ramp at x = 300 m, a 150 m
    # acceleration lane, then the ramp's lane ends and its traffic must merge.
    'highway_merge': (
        [('start', 0.0, 0.0, 'priority'), ('merge', 300.0, 0.0, 'priority'),
         ('lane_drop', 450.0, 0.0, 'priority'), ('end', 900.0, 0.0, 'priority'),
         ('ramp_start', 20.0, -80.0, 'priority')],
        [('main_in', 'start', 'merge', 2, 25.0, None),
         ('ramp', 'ramp_start', 'merge', 1, 20.0,
          [(20.0 + x, -80.0 + 80.0 * (0.5 - 0.5 * math.cos(math.pi * x / 280.0)))
           for x in range(0, 281, 20)]),
         ('accel_lane', 'merge', 'lane_drop', 3, 25.0, None),
         ('main_out', 'lane_drop', 'end', 2, 25.0, None)],
    ),
}


def _write_plain_xml(name: str, out_dir: Path) -> tuple[Path, Path]:
    nodes, edges = MAP_SPECS[name]
    nod = out_dir / f'{name}.nod.xml'
    edg = out_dir / f'{name}.edg.xml'
    nod.write_text('<nodes>\n' + ''.join(
        f'    <node id="{i}" x="{x:.2f}" y="{y:.2f}" type="{t}"/>\n' for i, x, y, t in nodes)
        + '</nodes>\n')
    lines = []
    for eid, src, dst, lanes, speed, shape in edges:
        shape_attr = ''
        if shape:
            shape_attr = ' shape="' + ' '.join(f'{x:.2f},{y:.2f}' for x, y in shape) + '"'
        lines.append(f'    <edge id="{eid}" from="{src}" to="{dst}" numLanes="{lanes}" '
                     f'speed="{speed:.2f}" width="{LANE_WIDTH:.2f}"{shape_attr}/>\n')
    edg.write_text('<edges>\n' + ''.join(lines) + '</edges>\n')
    return nod, edg


def build_map(name: str, maps_dir: Path = MAPS_DIR) -> Path:
    """Build one map with netconvert; returns the .net.xml path."""
    out_dir = maps_dir / name
    out_dir.mkdir(parents=True, exist_ok=True)
    nod, edg = _write_plain_xml(name, out_dir)
    net = out_dir / f'{name}.net.xml'
    subprocess.run(
        ['netconvert', '--node-files', str(nod), '--edge-files', str(edg),
         '--output-file', str(net), '--opendrive-output', str(out_dir / f'{name}.xodr'),
         '--offset.disable-normalization', 'true', '--no-turnarounds', 'true',
         '--output.street-names', 'true', '--no-warnings', 'true'],
        check=True)
    return net


def main(argv: list[str] | None = None) -> int:
    """Build the maps named on the command line (all by default)."""
    names = (argv if argv is not None else sys.argv[1:]) or list(MAP_SPECS)
    for name in names:
        print(build_map(name))
    return 0


if __name__ == '__main__':
    sys.exit(main())

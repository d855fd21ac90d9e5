"""
Write a colourised example BEV (for the README): a hand-made four-lane scene.

    python -m call_perception.render_example --out docs/images/bev_example.png

The scene exercises every channel: the ego (red) follows a lane-change plan (blue); cars it sees
are green; a car hidden behind a truck and a car beyond sensor range are known only through
shared information (yellow, with their intentions as yellow lines); a car hidden behind the
truck that shares nothing is not drawn at all.
"""
import argparse
from pathlib import Path
from types import SimpleNamespace
from typing import List, Tuple

from call_perception.bev_raster import BevConfig, BevRasterizer
from call_perception.colorize import colorize, COLOURS
from call_perception.fusion import fuse_shared, SharedNeighbour
from call_perception.lane import Lane
from call_perception.road_map import RoadMap
from call_perception.visibility import visible
import cv2
import numpy as np

LANE_WIDTH = 3.5  # [m]
SENSOR_RANGE = 32.0  # [m]


def _box(x: float, y: float, yaw: float = 0.0, length: float = 4.6,
         width: float = 2.0) -> SimpleNamespace:
    return SimpleNamespace(x=x, y=y, yaw=yaw, length=length, width=width)


def _lane_y(index: int) -> float:
    """Centre y of lane index 0..3 (0 = rightmost)."""
    return (index - 1.5) * LANE_WIDTH


def example_scene() -> Tuple[np.ndarray, dict]:
    """Render the example scene; returns the BEV and what each vehicle turned out to be."""
    lanes = [Lane(f'l{i}', np.array([[-200.0, _lane_y(i)], [200.0, _lane_y(i)]]), LANE_WIDTH)
             for i in range(4)]
    road = RoadMap.from_lanes(lanes)
    ego = _box(0.0, _lane_y(1), yaw=0.0)
    others = [
        _box(14.0, _lane_y(1), length=12.0, width=2.6),  # truck ahead, seen
        _box(32.0, _lane_y(1)),  # behind the truck: occluded, shares -> yellow
        _box(34.0, _lane_y(2)),  # behind the truck, shares nothing -> not drawn
        _box(-9.0, _lane_y(2), yaw=0.05),  # left rear, seen
        _box(5.0, _lane_y(0), yaw=-0.04),  # right, seen
        _box(38.0, _lane_y(0)),  # beyond sensor range, shares -> yellow
        _box(18.0, _lane_y(3)),  # far left, seen, shares its lane change
    ]
    seen_mask = visible(ego, others, SENSOR_RANGE, occlusion=True)
    seen = [b for b, v in zip(others, seen_mask) if v]
    lane_change = np.array([[0.0, _lane_y(1)], [6.0, _lane_y(1)], [18.0, _lane_y(0)],
                            [40.0, _lane_y(0)]])
    neighbours: List[SharedNeighbour] = [
        SharedNeighbour('hero1', others[1].x, others[1].y, 0.0,
                        np.array([[32.0, _lane_y(1)], [44.0, _lane_y(1)], [56.0, _lane_y(1)]])),
        SharedNeighbour('hero2', others[5].x, others[5].y, 0.0,
                        np.array([[38.0, _lane_y(0)], [60.0, _lane_y(0)]])),
        SharedNeighbour('hero3', others[6].x, others[6].y, 0.0,  # seen: waypoints only
                        np.array([[18.0, _lane_y(3)], [26.0, _lane_y(3)], [38.0, _lane_y(2)],
                                  [50.0, _lane_y(2)]])),
    ]
    layer = fuse_shared(neighbours, seen, ego)
    rasterizer = BevRasterizer(BevConfig.from_yaml(), road)
    bev = rasterizer.render(ego, seen, layer.vehicles, lane_change, layer.waypoints)
    return bev, {'seen': seen_mask.tolist(), 'shared_only': [n.sender_id for n in layer.vehicles]}


def _legend(height: int) -> np.ndarray:
    """Draw a white strip naming each colour (RGB)."""
    strip = np.full((height, 230, 3), 255, dtype=np.uint8)
    entries = [('ego', 'ego'), ('seen_vehicles', 'seen vehicle'),
               ('shared_vehicles', 'shared-only vehicle'), ('ego_waypoints', 'ego waypoints'),
               ('shared_waypoints', 'shared waypoints'), ('drivable', 'road'),
               ('lane_markings', 'lane marking')]
    for i, (channel, text) in enumerate(entries):
        top = 20 + 32 * i
        cv2.rectangle(strip, (12, top), (36, top + 20), COLOURS[channel], -1)
        cv2.rectangle(strip, (12, top), (36, top + 20), (0, 0, 0), 1)
        cv2.putText(strip, text, (46, top + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return strip


def main(argv=None) -> None:
    """Render the scene, upscale it for readability and write the PNG."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', type=Path, default=Path('docs/images/bev_example.png'))
    parser.add_argument('--scale', type=int, default=4, help='nearest-neighbour upscaling')
    args = parser.parse_args(argv)
    bev, summary = example_scene()
    rgb = colorize(bev)
    big = cv2.resize(rgb, None, fx=args.scale, fy=args.scale, interpolation=cv2.INTER_NEAREST)
    image = np.hstack([big, _legend(big.shape[0])])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise SystemExit(f'could not write {args.out}')
    print(f'wrote {args.out} ({image.shape[1]}x{image.shape[0]}); seen={summary["seen"]} '
          f'shared-only={summary["shared_only"]}')


if __name__ == '__main__':
    main()

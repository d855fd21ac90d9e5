"""Top-down view of a run and the demo's GIF frame layout (NumPy + OpenCV, ROS-free)."""
from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np

ROAD = (70, 70, 70)
MARKING = (200, 200, 200)
BACKGROUND_CAR = (150, 150, 150)
BACKGROUND = (25, 25, 25)
LINK = (0, 255, 255)              # an accepted V2V latent of the step
SHARED_MARK = (255, 0, 255)       # outline of a vehicle known only through sharing
HERO_COLOURS = ((230, 60, 60), (60, 140, 230), (240, 200, 40), (80, 200, 90),
                (200, 90, 220), (40, 200, 200), (240, 140, 40), (255, 255, 255))


@dataclass(frozen=True)
class Box:
    """A vehicle footprint in the map frame."""

    x: float
    y: float
    yaw: float
    length: float = 4.6
    width: float = 1.9


def box_corners(box: Box) -> np.ndarray:
    """(4, 2) corners of the box in the map frame."""
    c, s = np.cos(box.yaw), np.sin(box.yaw)
    half = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]]) * [box.length / 2, box.width / 2]
    return half @ np.array([[c, s], [-s, c]]) + [box.x, box.y]


def densify(line: np.ndarray, step: float) -> np.ndarray:
    """Insert points so that consecutive ones are at most `step` metres apart."""
    if len(line) < 2:
        return line
    pieces = []
    for start, end in zip(line[:-1], line[1:]):
        count = max(1, int(np.ceil(np.linalg.norm(end - start) / step)))
        pieces.append(start + (end - start) * np.arange(count)[:, None] / count)
    pieces.append(line[-1:])
    return np.concatenate(pieces)


class TopDownRenderer:
    """Renders lanes, background traffic and CALL vehicles around a centre point."""

    def __init__(self, lanes: Sequence = (), size_px: int = 480, m_per_px: float = 0.4):
        """`lanes`: objects with centerline (N, 2) and width (call_perception/call_sim)."""
        self.size = size_px
        self.scale = 1.0 / m_per_px
        self.lanes = [(densify(np.asarray(lane.centerline, dtype=np.float64), 2.0),
                       float(lane.width)) for lane in lanes]

    def _pixels(self, points: np.ndarray, centre: tuple[float, float]) -> np.ndarray:
        """Map frame (x east, y north) -> image pixels (y down), centred."""
        rel = (np.asarray(points, dtype=np.float64) - centre) * self.scale
        return np.stack([self.size / 2 + rel[:, 0], self.size / 2 - rel[:, 1]], axis=1)

    def render(self, centre: tuple[float, float], heroes: dict[str, Box],
               others: Sequence[Box], labels: Optional[dict[str, str]] = None,
               ranges: Optional[dict[str, float]] = None,
               links: Sequence[tuple[str, str]] = ()) -> np.ndarray:
        """
        RGB image (size, size, 3) uint8 of the area around `centre`, north up.

        `ranges` draws each CALL vehicle's communication range as a circle in its colour,
        `links` a line per accepted V2V latent (sender, receiver) of the step.
        """
        image = np.full((self.size, self.size, 3), BACKGROUND, dtype=np.uint8)
        reach = self.size / self.scale                       # metres from centre to corner
        for line, width in self.lanes:
            near = np.abs(line - centre).max(axis=1) < reach
            if near.sum() < 2:
                continue
            index = np.flatnonzero(near)
            line = line[index.min():index.max() + 1]
            d = np.gradient(line, axis=0)
            normal = np.stack([-d[:, 1], d[:, 0]], axis=1)
            normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-9)
            left, right = line + normal * width / 2, line - normal * width / 2
            for a in range(len(line) - 1):
                quad = np.array([left[a], left[a + 1], right[a + 1], right[a]])
                cv2.fillConvexPoly(image, np.round(self._pixels(quad, centre)).astype(np.int32),
                                   ROAD)
            for edge in (left, right):
                cv2.polylines(image, [np.round(self._pixels(edge, centre)).astype(np.int32)],
                              False, MARKING, 1)
        for box in others:
            if max(abs(box.x - centre[0]), abs(box.y - centre[1])) < reach:
                cv2.fillConvexPoly(image, np.round(self._pixels(box_corners(box), centre))
                                   .astype(np.int32), BACKGROUND_CAR)
        for role, radius in (ranges or {}).items():
            if role in heroes and 0.0 < radius < 1e6:
                middle = self._pixels(np.array([[heroes[role].x, heroes[role].y]]), centre)[0]
                cv2.circle(image, tuple(int(v) for v in np.round(middle)),
                           int(round(radius * self.scale)), hero_colour(role, heroes), 1)
        for sender, receiver in links:
            if sender in heroes and receiver in heroes:
                ends = np.round(self._pixels(np.array([[heroes[sender].x, heroes[sender].y],
                                                       [heroes[receiver].x, heroes[receiver].y]]),
                                             centre)).astype(np.int32)
                cv2.line(image, tuple(ends[0]), tuple(ends[1]), LINK, 1)
        for role, box in sorted(heroes.items()):
            colour = hero_colour(role, heroes)
            corners = np.round(self._pixels(box_corners(box), centre)).astype(np.int32)
            cv2.fillConvexPoly(image, corners, colour)
            text = (labels or {}).get(role, role)
            anchor = tuple(int(v) for v in corners.min(axis=0) - [0, 4])
            cv2.putText(image, text, anchor, cv2.FONT_HERSHEY_SIMPLEX, 0.35, colour, 1,
                        cv2.LINE_AA)
        return image


def hero_colour(role: str, heroes: dict) -> tuple:
    """Stable colour of a CALL vehicle (by its rank among the role names)."""
    return HERO_COLOURS[sorted(heroes).index(role) % len(HERO_COLOURS)]


def overview(heroes: dict[str, Box], others: Sequence[Box], width_px: int,
             height_px: int = 48) -> np.ndarray:
    """Whole-scene strip: every vehicle as a dot, scaled to fit (CALL vehicles coloured)."""
    image = np.full((height_px, width_px, 3), BACKGROUND, dtype=np.uint8)
    boxes = list(heroes.values()) + list(others)
    if not boxes:
        return image
    xs = np.array([b.x for b in boxes])
    ys = np.array([b.y for b in boxes])
    span = max(xs.max() - xs.min(), ys.max() - ys.min(), 1.0)
    scale = (min(width_px, height_px * 8) - 10) / span

    def pixel(box: Box) -> tuple[int, int]:
        return (int(5 + (box.x - xs.min()) * scale),
                int(height_px / 2 - (box.y - ys.mean()) * scale))
    for box in others:
        cv2.circle(image, pixel(box), 1, BACKGROUND_CAR, -1)
    for role, box in sorted(heroes.items()):
        cv2.circle(image, pixel(box), 3, hero_colour(role, heroes), -1)
    return image


def mark_shared(bev_rgb: np.ndarray, shared_mask: np.ndarray) -> np.ndarray:
    """
    Outline the vehicles of `shared_mask` (H, W) in a copy of the BEV image.

    These are the vehicles the ego knows only because a neighbour shared them (paper
    section 4, the "updated BEV"); the outline makes them stand out from those it sees.
    """
    marked = np.ascontiguousarray(bev_rgb).copy()
    count, _, stats, _ = cv2.connectedComponentsWithStats((shared_mask > 127).astype(np.uint8))
    for x, y, w, h, _area in stats[1:count]:
        cv2.rectangle(marked, (int(x) - 2, int(y) - 2), (int(x + w) + 1, int(y + h) + 1),
                      SHARED_MARK, 1)
    return marked


def frame_layout(rows: list[tuple[str, np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]],
                 strip: np.ndarray, caption: str, tile_px: int = 200,
                 notes: Optional[dict[str, str]] = None) -> np.ndarray:
    """
    One GIF frame: caption, the whole-scene strip, then one row per CALL vehicle.

    Each row shows the ground truth around the vehicle (top-down, with communication ranges
    and the step's V2V links), the vehicle's fused BEV (what it saw plus what sharing added,
    outlined) and its world model's decoded K-step prediction, so partial observability and
    what sharing changes are visible side by side.
    """
    width = 4 * tile_px
    height = 20 + strip.shape[0] + len(rows) * tile_px
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    frame[20:20 + strip.shape[0], :min(width, strip.shape[1])] = strip[:, :width]
    for i, (role, topdown, bev, prediction) in enumerate(rows):
        y = 20 + strip.shape[0] + i * tile_px
        frame[y:y + tile_px, :tile_px] = cv2.resize(topdown, (tile_px, tile_px),
                                                    interpolation=cv2.INTER_AREA)
        if bev is not None:
            frame[y:y + tile_px, tile_px:2 * tile_px] = cv2.resize(
                bev, (tile_px, tile_px), interpolation=cv2.INTER_NEAREST)
        if prediction is not None:                  # K frames side by side, 2 tiles wide
            high = max(1, min(tile_px - 20, round(prediction.shape[0] * 2 * tile_px
                                                  / prediction.shape[1])))
            frame[y + 20:y + 20 + high, 2 * tile_px:] = cv2.resize(
                prediction, (2 * tile_px, high), interpolation=cv2.INTER_AREA)
        text = f'{role}: world | fused BEV | K-step prediction'
        cv2.putText(frame, text, (4, y + 14), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4, (255, 255, 255), 1, cv2.LINE_AA)
        if notes and role in notes:
            cv2.putText(frame, notes[role], (tile_px + 4, y + tile_px - 6),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.putText(frame, caption, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1,
                cv2.LINE_AA)
    return frame

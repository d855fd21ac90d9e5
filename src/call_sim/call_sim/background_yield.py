"""
Background drivers that brake for a CALL vehicle in their path, wherever it stands.

Why: SUMO's drivers follow their lanes. A CALL vehicle is placed with `moveToXY` at the pose
its bicycle model drove to, and SUMO maps it onto one lane; inside a junction, or across a lane
boundary, a background driver whose lane that is not does not take it as its leader and drives
into it (docs/results.md, "Collisions against the ego"). CARLA's Traffic Manager, which the
bridge contract stands for, checks the space ahead of each vehicle against every actor's
bounding box instead. This is that check, for the CALL vehicles only (background vehicles among
themselves are SUMO's): the corridor ahead of a background vehicle's front, its width plus
`margin` each side and `headway` seconds of its speed plus `standstill` long, straight along
its heading; a CALL vehicle's box that overlaps it caps the background vehicle's speed at the
one that stops `standstill` before the box's nearest corner at `decel` (v = sqrt(2 decel gap),
the safe speed of a car-following model for a standing leader).
"""
from call_sim.measures import box_corners, boxes_overlap, LENGTH, SPEED, WIDTH, X, Y, YAW
import numpy as np


def yield_speeds(background: np.ndarray, heroes: np.ndarray, headway: float,
                 standstill: float, decel: float, margin: float) -> np.ndarray:
    """
    Speed cap per background vehicle [m/s], inf where no CALL vehicle is in its corridor.

    `background` (N, 6) and `heroes` (M, 6): rows of `call_sim.measures` (centre x, y, yaw,
    speed, length, width).
    """
    caps = np.full(len(background), np.inf)
    if not len(background) or not len(heroes):
        return caps
    reach = headway * background[:, SPEED] + standstill                         # (N,)
    heading = np.stack([np.cos(background[:, YAW]), np.sin(background[:, YAW])], 1)
    front = background[:, [X, Y]] + 0.5 * background[:, [LENGTH]] * heading
    hero_radius = 0.5 * np.hypot(heroes[:, LENGTH], heroes[:, WIDTH])
    centre_gap = np.hypot(*(heroes[None, :, [X, Y]] - front[:, None, :]).transpose(2, 0, 1))
    near = centre_gap <= (reach + 0.5 * background[:, WIDTH] + margin)[:, None] \
        + hero_radius[None, :]
    for i, j in zip(*np.nonzero(near)):
        corridor = np.array([*(front[i] + 0.5 * reach[i] * heading[i]), background[i, YAW],
                             0.0, reach[i], background[i, WIDTH] + 2.0 * margin])
        if not boxes_overlap(corridor, heroes[j]):
            continue
        corners = box_corners(*heroes[j, [X, Y, YAW, LENGTH, WIDTH]])
        gap = max(float(((corners - front[i]) @ heading[i]).min()) - standstill, 0.0)
        caps[i] = min(caps[i], float(np.sqrt(2.0 * decel * gap)))
    return caps

"""
Safety monitor beside the learned planner: time to collision on the fused current BEV.

The learned look-ahead can miss a vehicle (the paper's gains come from decisions that use what
is shared, section 5); this monitor does not learn. It reads the vehicle channels of the BEV
the world model observes (own sensing `seen_vehicles` and V2V `shared_vehicles` alike, paper
App. F), so a vehicle that sharing put into the BEV is guarded like a seen one.

Per BEV frame: connected blobs of the vehicle channels become boxes in the map frame (the
ego's pose at the frame's stamp), matched to the previous frames' blobs by nearest centre,
and their velocity is the centre's displacement over `velocity_window` (one 0.1 s step of
0.5 m pixels is too noisy). A vehicle moves along its long axis (the kinematic bicycle
model's no-slip constraint), so a blob clearly longer than wide (`axis_aspect`), whole in
the BEV, whose velocity is below the estimate's resolution (a pixel's diagonal over
`velocity_window`) keeps that axis as its heading and only the velocity's part along it:
a standing truck's centre jitters by up to a pixel between frames, and that jitter, taken as
a heading, turned its 12 m box into the next lane. Faster blobs point where they go. A blob
seen for the first time is not assessed until a second frame gives its velocity. A blob
known only through sharing is decoded from a neighbour's latent, a reconstruction whose
centre can jump between frames; with `shared_blob_velocity` off it is assessed as standing
(at the occluded crossroad most of its velocities were ones the vehicle did not have:
docs/results.md, "What the monitor brakes for at the crossroad"), and with `blob_tracker` on
its velocity is fitted over its track's history (`call_planner.blob_tracker`; both tried and
left off: docs/results.md). Accepted
neighbours need no estimate: their messages state pose, speed and path, so they are tracks
from the first message on, also outside the BEV (`share`, `shared_tracks`), in place of
their blobs.

Conflict and TTC: the ego is predicted at constant speed and yaw rate, every other vehicle at
constant velocity (a neighbour's message, with `shared_turn_time`, also turning as its
declared path does: `predicted_motion`, `contact_times`), for `horizon` seconds sampled every
`time_step`. Each footprint is covered
by `discs` circles along its length (the usual disc decomposition of motion planning), taken
as their envelope: the segment through their centres swept by their radius (a capsule, which
fills only the notches between the discs). Two footprints touch when their segments come
within the sum of the radii and `margin`, one segment distance per vehicle pair and time
instead of discs x discs distances, whatever the vehicle's length. A vehicle conflicts with
the ego from the first such time, its TTC. Conflicts that start
behind the ego's centre with a vehicle closing in from behind (faster along the ego's heading)
are left out: braking does not avoid it. A vehicle crossing the ego's path counts wherever it
would strike the ego: braking before the crossing avoids it.

Decision: TTC below `emergency_ttc` -> emergency deceleration (-6 m/s^2, collision imminent:
as an automatic emergency brake does; Autoware's minimum-risk emergency stop, -2.5, came too
late for a crossing vehicle first seen 3 s ahead), below
`comfortable_ttc` -> comfortable deceleration, held for `hold_time` after the last trigger so
the command does not chatter, unless the whole horizon becomes free of conflicts (a vehicle
that has gone is not braked for on). An override for a neighbour known by its messages
ends early only once the horizon has stayed clear for `shared_clear_time`: its declared path,
quantised to the 15 actions, alternates between steering and straight, so its conflict is
there on one step and gone on the next; released on the first clear step, the override
alternated with the planner's acceleration and the ego kept its speed towards a vehicle
cutting in. (For every vehicle alike, holding on through clear steps stalled traffic:
docs/results.md.) With `give_way`, an override for a neighbour the ego gives way to
(`gives_way`: crossing from the right, while the ego can still stop short of its lane)
lasts the whole `hold_time`: two vehicles that share brake for each other, and released
together as each sees the other slow, both drove on into the conflict. It is off in
planner.yaml: held out it cut no collision (docs/results.md). The caller
keeps the planner's steer and only lowers the acceleration; a planner that already brakes
harder is left alone.

Anticipation (`anticipation_ttc`, 0 = off): a vehicle known only through sharing (no pixel
of it seen: hidden by another vehicle or beyond the ego's sensors) that crosses the ego's path
or merges into it gets the comfortable deceleration already when their first contact is
within `anticipation_ttc`, predicted as above over that longer horizon. This is where sharing
can lead the ego's own sensing (paper section 5: the ego anticipates what it cannot see yet),
so the response is the mild one, and it is kept to that case: a vehicle behind the ego, or
ahead in its lane heading its way (a leader to follow), is left to the thresholds above,
since earlier braking for those only stalls traffic (a longer threshold for every shared
vehicle did, docs/results.md). Crossing or merging: its centre is ahead of the ego's, and
it is at least half a lane (`LANE_HALF_WIDTH`) to the side or heads more than
`FOLLOW_ANGLE` away from the ego's heading.
"""
from collections import deque
from dataclasses import dataclass, fields, replace
import math
from typing import Any, Mapping, Optional

from call_planner.blob_tracker import BlobTracker
from call_planner.route_path import poses_along
from call_world_model.intention import relative_pose
import cv2
import numpy as np

NONE, COMFORTABLE, EMERGENCY = 'none', 'comfortable', 'emergency'
_VEHICLE_FIELDS = ('ego_length', 'ego_width')
_FLAGS = ('enabled', 'shared_tracks', 'shared_blob_velocity', 'blob_tracker', 'give_way',
          'shared_decel', 'shared_decel_cost', 'shared_decel_to_stop')
_MAY_BE_ZERO = ('anticipation_ttc', 'anticipation_gap', 'axis_aspect',    # 0 = off
                'shared_turn_time', 'shared_clear_time', 'track_coast')
#: [m] a vehicle less than this to the side of the ego's heading line is in its lane
LANE_HALF_WIDTH = 1.75
#: [rad] a vehicle in the ego's lane heading within this of the ego's heading is followed
FOLLOW_ANGLE = math.radians(30.0)


@dataclass(frozen=True)
class MonitorConfig:
    """Thresholds and geometry of the monitor (config/planner.yaml, `monitor_*` keys)."""

    enabled: bool = True
    horizon: float = 5.0           # [s] constant-velocity prediction
    time_step: float = 0.1         # [s] sampling of the prediction
    comfortable_ttc: float = 3.0   # [s] below: comfortable deceleration
    emergency_ttc: float = 1.5     # [s] below: emergency deceleration
    comfortable_decel: float = 1.0  # [m/s^2] Autoware MRM comfortable stop
    emergency_decel: float = 6.0   # [m/s^2] collision imminent: an automatic emergency brake's
    hold_time: float = 1.0         # [s] an override lasts this long after its last trigger
    shared_clear_time: float = 0.0  # [s] ... unless the horizon clears: at once, for a
    #                                 neighbour known by its messages after this long
    give_way: bool = False         # ... unless the ego gives way to that neighbour
    #                                (`gives_way`): then it lasts the whole hold_time
    margin: float = 0.3            # [m] clearance added between footprints
    ego_length: float = 4.8        # [m] ego footprint (call_sim vehicle.yaml)
    ego_width: float = 2.0         # [m]
    discs: int = 8                 # circles per footprint (long vehicles need many)
    velocity_window: float = 0.5   # [s] baseline of the velocity estimate
    match_radius: float = 3.0      # [m] largest centre displacement between two frames
    min_pixels: int = 3            # blobs smaller than this are noise
    shared_tracks: bool = True     # accepted neighbours' messages as tracks (shared_tracks)
    shared_max_age: float = 0.5    # [s] older neighbour messages are dropped
    shared_turn_time: float = 0.0  # [s] a neighbour turns as its declared path does for
    #                                this long, then goes straight, and is also assessed
    #                                straight on; 0 = along the path's chord (shared_tracks)
    shared_decel: bool = False     # a neighbour whose declared path brakes slows at that
    #                                rate until it stands (shared_tracks); False: it keeps
    #                                its stated speed
    shared_decel_cost: bool = True  # ... in the look-ahead's conflict cost too
    #                                 (`moving_tracks`); False: in the monitor only
    shared_decel_to_stop: bool = True  # ... until it stands; False: for as long as its
    #                                    declared path brakes, then at the speed reached
    anticipation_ttc: float = 0.0  # [s] comfortable deceleration for a crossing or merging
    #                                vehicle known only through sharing; 0 = off
    anticipation_gap: float = 0.0  # [s] ... also when the ego would pass where that vehicle
    #                                is this long before or after it
    axis_aspect: float = 0.0       # a blob at least this many times as long as wide moves
    #                                along its long axis; 0 = its velocity's direction
    shared_blob_velocity: bool = True  # a blob known only through sharing (decoded from a
    #                                neighbour's latent) keeps its estimated velocity; False:
    #                                it is assessed as standing where it is
    blob_tracker: bool = False     # a blob known only through sharing takes the velocity
    #                                fitted over its track (blob_tracker); False: as a seen
    #                                blob's, the displacement of its chain of nearest centres
    shared_velocity_window: float = 1.5  # [s] the fit's baseline for a blob known only
    #                                through sharing (blob_tracker)
    track_coast: float = 0.3       # [s] a track missing from frames lives on this long

    def __post_init__(self):
        """Fail fast on thresholds that cannot work together."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _MAY_BE_ZERO and value == 0:
                continue
            if f.name not in _FLAGS and not (math.isfinite(value) and value > 0):
                raise ValueError(f'{f.name} must be a positive number, got {value}')
        if self.anticipation_ttc and self.anticipation_ttc < self.comfortable_ttc:
            raise ValueError('monitor_anticipation_ttc must be 0 (off) or at least '
                             'monitor_comfortable_ttc')
        if self.axis_aspect and self.axis_aspect < 1.0:
            raise ValueError('monitor_axis_aspect must be 0 (off) or at least 1 (a length '
                             'over a width)')
        if self.shared_clear_time > self.hold_time:
            raise ValueError('monitor_shared_clear_time must not exceed monitor_hold_time')
        if self.emergency_ttc > self.comfortable_ttc:
            raise ValueError('monitor_emergency_ttc must not exceed monitor_comfortable_ttc')
        if self.emergency_decel < self.comfortable_decel:
            raise ValueError('monitor_emergency_decel must be at least '
                             'monitor_comfortable_decel')

    @classmethod
    def from_params(cls, params: Mapping[str, Any], prefix: str = 'monitor_') -> 'MonitorConfig':
        """
        Build from flat parameters named `<prefix><field>`; missing ones keep defaults.

        The ego footprint is the vehicle's, shared with other users: `ego_length`,
        `ego_width` without the prefix.
        """
        values = {}
        for f in fields(cls):
            key = f.name if f.name in _VEHICLE_FIELDS else prefix + f.name
            if key in params:
                cast = bool if f.name in _FLAGS else {'discs': int,
                                                      'min_pixels': int}.get(f.name, float)
                values[f.name] = cast(params[key])
        return cls(**values)


@dataclass(frozen=True)
class BevGeometry:
    """Where the ego sits in its BEV and the pixel size (call_perception's BevConfig)."""

    metres_per_pixel: float = 0.5
    ego_row: float = 80.0
    ego_col: float = 64.0


@dataclass(frozen=True)
class Track:
    """One vehicle of the latest frame: map-frame box and estimated velocity."""

    x: float
    y: float
    yaw: float
    length: float
    width: float
    vx: float
    vy: float
    shared_only: bool      # every pixel came from the shared channel (known through V2V)
    age: float = -1.0      # [s] a neighbour's message state moved on by this; -1: a BEV blob
    yaw_rate: float = 0.0  # [rad/s] its velocity turns at this rate ...
    turn_time: float = 0.0  # [s] ... for this long from now, then holds its direction
    decel: float = 0.0     # [m/s^2] its speed falls at this rate until it stands ...
    decel_time: float = math.inf  # [s] ... or for this long from now, then holds its speed

    @property
    def known(self) -> bool:
        """Tell whether the track is a neighbour's stated state (`shared_tracks`)."""
        return self.age >= 0.0


@dataclass(frozen=True)
class Assessment:
    """The monitor's verdict for one step: the nearest conflict and the override level."""

    ttc: float                      # [s] inf without a conflict
    level: str                      # NONE, COMFORTABLE or EMERGENCY
    decel: float                    # [m/s^2] deceleration to apply (0 for NONE)
    conflict: Optional[Track]       # the vehicle of the smallest TTC
    anticipated: bool = False       # the level comes from anticipation (`anticipation_ttc`)
    giving_way: bool = False        # held for a neighbour the ego gives way to (`give_way`)

    @property
    def reason(self) -> str:
        """One line for /diagnostics: level, TTC and who."""
        if self.conflict is None:
            return 'no conflict'
        source = 'shared' if self.conflict.shared_only else 'seen'
        why = (' (anticipation: crossing or merging, known only through sharing)'
               if self.anticipated else ' (giving way to a neighbour)' if self.giving_way
               else '')
        return (f'{self.level} deceleration {self.decel:.1f} m/s^2{why}: TTC {self.ttc:.1f} s '
                f'to a {source} vehicle at ({self.conflict.x:.1f}, {self.conflict.y:.1f})')


def _disc_radius(length, width, discs: int):
    return np.hypot(np.asarray(length) / (2 * discs), np.asarray(width) / 2)


def _segment_gap(ax, ay, adx, ady, bx, by, bdx, bdy) -> np.ndarray:
    """
    Distance between segments a + s (adx, ady) and b + u (bdx, bdy), s, u in [0, 1].

    Elementwise over arrays (closest points of two segments, Ericson, Real-Time Collision
    Detection, 5.1.9): the footprints' disc envelopes touch when it is below their radii.
    """
    rx, ry = ax - bx, ay - by
    a = np.maximum(adx * adx + ady * ady, 1e-12)
    e = np.maximum(bdx * bdx + bdy * bdy, 1e-12)
    b = adx * bdx + ady * bdy
    c = adx * rx + ady * ry
    f = bdx * rx + bdy * ry
    denom = a * e - b * b
    s = np.where(denom > 1e-12, np.clip((b * f - c * e) / np.maximum(denom, 1e-12), 0.0, 1.0),
                 0.0)
    u = (b * s + f) / e
    s = np.where(u < 0.0, np.clip(-c / a, 0.0, 1.0),
                 np.where(u > 1.0, np.clip((b - c) / a, 0.0, 1.0), s))
    u = np.clip(u, 0.0, 1.0)
    return np.hypot(rx + adx * s - bdx * u, ry + ady * s - bdy * u)


class TtcMonitor:
    """Tracks vehicles through BEV frames and turns the smallest TTC into an override."""

    def __init__(self, config: MonitorConfig, geometry: BevGeometry):
        """Start with no history and no override."""
        self.config = config
        self.geometry = geometry
        self._history: deque = deque()     # (time, centres (N, 2)) of past frames
        self.tracks: list[Track] = []
        self._held: Optional[Assessment] = None
        self._held_until = -math.inf
        self._clear_since: Optional[float] = None     # start of the current clear horizon
        self._tracked = np.zeros(0, bool)
        self._blobs: tuple = ((), np.zeros(0, bool))   # the latest frame's own tracks
        self._tracker = BlobTracker(config.match_radius, config.velocity_window,
                                    config.shared_velocity_window, config.track_coast)
        self.frame_time: Optional[float] = None

    def reset(self) -> None:
        """Forget the tracks and any held override (episode reset)."""
        self.__init__(self.config, self.geometry)

    # -- perception of the BEV --------------------------------------------------------------
    def observe(self, time: float, seen: np.ndarray, shared: np.ndarray,
                ego_pose: tuple[float, float, float]) -> None:
        """
        Take one BEV frame: boolean (H, W) masks of the seen and shared vehicle channels.

        `ego_pose` (x, y, yaw) is the ego's map pose at the frame's stamp.
        """
        cfg, geo = self.config, self.geometry
        mask = (seen | shared).astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        ex, ey, eyaw = ego_pose
        c, s = math.cos(eyaw), math.sin(eyaw)
        boxes = []
        for label in range(1, count):
            if stats[label, cv2.CC_STAT_AREA] < cfg.min_pixels:
                continue
            # the blob's pixels, searched in its bounding box only (same row-major order)
            left, top = stats[label, cv2.CC_STAT_LEFT], stats[label, cv2.CC_STAT_TOP]
            rows, cols = np.nonzero(labels[top:top + stats[label, cv2.CC_STAT_HEIGHT],
                                           left:left + stats[label, cv2.CC_STAT_WIDTH]] == label)
            rows, cols = rows + top, cols + left
            (col_c, row_c), (w_px, h_px), angle = cv2.minAreaRect(
                np.stack([cols, rows], 1).astype(np.float32))
            forward = (geo.ego_row - row_c) * geo.metres_per_pixel
            left = (geo.ego_col - col_c) * geo.metres_per_pixel
            # the rectangle's side of width w_px points along `angle` (image x = -left)
            long_side = (w_px, angle) if w_px >= h_px else (h_px, angle + 90.0)
            img_dir = math.radians(long_side[1])
            yaw_ego = math.atan2(-math.cos(img_dir), -math.sin(img_dir))
            length = (max(w_px, h_px) + 1.0) * geo.metres_per_pixel
            width = (min(w_px, h_px) + 1.0) * geo.metres_per_pixel
            shared_only = not bool(seen[rows, cols].any())
            # a blob cut by the BEV's edge is part of a vehicle: its shape is not the
            # vehicle's (a car coming in from behind shows its width before its length)
            x0, y0, w0, h0 = stats[label, :4]
            whole = x0 > 0 and y0 > 0 and x0 + w0 < mask.shape[1] and y0 + h0 < mask.shape[0]
            boxes.append((ex + c * forward - s * left, ey + s * forward + c * left,
                          eyaw + yaw_ego, length, width, shared_only, whole))
        centres = np.array([[b[0], b[1]] for b in boxes]).reshape(-1, 2)
        velocities, self._tracked = self._velocities(time, centres)
        if cfg.blob_tracker:
            shared_blobs = np.array([b[5] for b in boxes], bool)
            fitted, has = self._tracker.update(time, centres, shared_blobs)
            velocities[shared_blobs] = fitted[shared_blobs]
            self._tracked[shared_blobs] = has[shared_blobs]
        self.tracks = []
        # the velocity's resolution over its window: each of its two centres is off by up to
        # half a pixel along each image axis
        resolution = math.sqrt(2.0) * geo.metres_per_pixel / cfg.velocity_window
        for (x, y, yaw, length, width, shared_only, whole), (vx, vy) in zip(boxes, velocities):
            if shared_only and not cfg.shared_blob_velocity:
                vx = vy = 0.0                   # a reconstruction's jitter is no motion
            if cfg.axis_aspect and whole and length >= cfg.axis_aspect * width \
                    and math.hypot(vx, vy) < resolution:
                # a vehicle moves along its long axis: the velocity's part across it is
                # the estimate's pixel noise (module doc)
                along = vx * math.cos(yaw) + vy * math.sin(yaw)
                vx, vy = along * math.cos(yaw), along * math.sin(yaw)
                if along < -0.5:                # it points where it goes
                    yaw = math.remainder(yaw + math.pi, math.tau)
            elif math.hypot(vx, vy) > 0.5:      # a moving box points where it goes
                yaw = math.atan2(vy, vx)
            self.tracks.append(Track(x, y, yaw, length, width, vx, vy, shared_only))
        self._blobs = (tuple(self.tracks), self._tracked)
        self._history.append((time, centres))
        while self._history and time - self._history[0][0] > cfg.velocity_window + 1e-6:
            self._history.popleft()
        self.frame_time = time

    def _velocities(self, time: float, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """
        Velocity per centre from the oldest frame in the window it can be chained to.

        Also returns which centres were matched to an earlier frame at all (a first sighting
        has no velocity yet: calling it standing would brake for every vehicle that enters
        the BEV ahead, however fast it goes).
        """
        velocity = np.zeros_like(centres)
        if not self._history or len(centres) == 0:
            return velocity, np.zeros(len(centres), bool)
        # chain each centre back through the frames, nearest match within match_radius
        current = centres.copy()
        alive = np.ones(len(centres), bool)
        oldest = centres.copy()
        oldest_time = np.full(len(centres), time)
        for past_time, past in reversed(self._history):
            if len(past) == 0:
                break
            dist = np.hypot(*(current[:, None, :] - past[None, :, :]).transpose(2, 0, 1))
            nearest = dist.argmin(1)
            matched = alive & (dist[np.arange(len(current)), nearest] <= self.config.match_radius)
            current = np.where(matched[:, None], past[nearest], current)
            oldest = np.where(matched[:, None], past[nearest], oldest)
            oldest_time = np.where(matched, past_time, oldest_time)
            alive = matched
            if not alive.any():
                break
        span = time - oldest_time
        moving = span > 1e-6
        velocity[moving] = (centres[moving] - oldest[moving]) / span[moving, None]
        return velocity, moving

    def share(self, known) -> None:
        """
        Put the accepted neighbours' stated tracks (`shared_tracks`) in place of their blobs.

        Replaces the previous call's: called once per step after `observe`, with that step's
        neighbours (none: the BEV's tracks alone). A blob within `match_radius` of the
        straight line from where a neighbour's message put it to where it is predicted now
        is that neighbour (drawn from the message, or seen); a blob the ego saw keeps it
        counted as seen. A neighbour's track needs no velocity estimate: it is assessed at
        once.
        """
        blobs, tracked = self._blobs
        known = tuple(known) if self.config.shared_tracks else ()
        taken = np.zeros(len(blobs), bool)
        seen = np.zeros(len(known), bool)
        for j, k in enumerate(known):
            x0, y0 = k.x - k.vx * k.age, k.y - k.vy * k.age
            for i, blob in enumerate(blobs):
                if _segment_distance(blob.x, blob.y, x0, y0, k.x, k.y) \
                        <= self.config.match_radius:
                    taken[i] = True
                    seen[j] |= not blob.shared_only
        self.tracks = [b for b, t in zip(blobs, taken) if not t] + [
            replace(k, shared_only=not s) for k, s in zip(known, seen)]
        self._tracked = np.concatenate([np.asarray(tracked, bool)[~taken],
                                        np.ones(len(known), bool)])

    def moving_tracks(self) -> tuple:
        """
        Return the latest frame's tracks that have a velocity estimate (those assessed).

        For the look-ahead's conflict cost and the junction gate: without
        `shared_decel_cost` a neighbour's declared braking is left out there (it keeps its
        stated speed), so that only the monitor brakes for it.
        """
        tracks = (k for k, tracked in zip(self.tracks, self._tracked) if tracked)
        if self.config.shared_decel_cost:
            return tuple(tracks)
        return tuple(replace(k, decel=0.0) if k.decel else k for k in tracks)

    def path_length(self, speed: float) -> float:
        """
        [m] How far along a path `assess` may predict the ego at `speed`, plus 1 m.

        The longer of the two horizons (the monitor's and anticipation's): a path shorter
        than the ego drives in it would hold the predicted ego at its end.
        """
        cfg = self.config
        return max(float(speed), 0.0) * max(cfg.horizon, cfg.anticipation_ttc) + 1.0

    # -- decision ---------------------------------------------------------------------------
    def assess(self, time: float, ego_pose: tuple[float, float, float], speed: float,
               yaw_rate: float = 0.0, path: Optional[tuple] = None) -> Assessment:
        """
        Decide the override for the ego at `ego_pose`, `speed` [m/s], `yaw_rate` [rad/s].

        The ego is predicted at constant speed and yaw rate, or along `path` (vertices x, y,
        heading, from the ego on: `TurnAssist.predicted_path`) at constant speed.
        """
        cfg = self.config
        lag = 0.0 if self.frame_time is None else max(time - self.frame_time, 0.0)
        motion = (speed, yaw_rate, path)
        current = self._conflict(ego_pose, motion, lag)
        level = (EMERGENCY if current.ttc < cfg.emergency_ttc
                 else COMFORTABLE if current.ttc < cfg.comfortable_ttc else NONE)
        fresh = Assessment(current.ttc, level, self._decel(level), current.conflict)
        if level == NONE and cfg.anticipation_ttc:
            early = self._anticipation(ego_pose, motion, lag)
            if early.ttc < cfg.anticipation_ttc:
                level = COMFORTABLE
                fresh = Assessment(early.ttc, level, self._decel(level), early.conflict, True)
        held = self._held
        if math.isfinite(current.ttc):
            self._clear_since = None
        elif self._clear_since is None:
            self._clear_since = time
        if level != NONE and (held is None or time > self._held_until
                              or self._decel(level) >= held.decel):
            giving_way = self._gives_way(ego_pose, speed, fresh.conflict)
            self._held = replace(fresh, giving_way=giving_way)
            self._held_until = time + cfg.hold_time
            return fresh
        # held against chatter, but only while some conflict remains within the horizon: a
        # clear horizon (TTC inf, above the comfortable threshold by the horizon's margin)
        # ends the stop before `hold_time` instead of braking on for a vehicle that has
        # gone; for a neighbour's message once it has stayed clear `shared_clear_time`,
        # and never for a neighbour the ego gives way to (a held override always has its
        # trigger's conflict)
        wait = cfg.shared_clear_time if held is not None and held.conflict.known else 0.0
        giving_way = (held is not None and held.giving_way
                      and self._gives_way(ego_pose, speed, held.conflict))
        cleared = (self._clear_since is not None and not giving_way
                   and time - self._clear_since >= wait - 1e-9)
        if held is not None and time <= self._held_until + 1e-9 and not cleared:
            return Assessment(current.ttc, held.level, held.decel,
                              current.conflict or held.conflict, giving_way=giving_way)
        self._held = None
        return fresh

    def _gives_way(self, ego_pose, speed: float, conflict: Optional[Track]) -> bool:
        """
        Tell whether the ego gives way to `conflict` (`gives_way`, with `give_way` on).

        Its stopping distance is one step at `speed`, then the emergency deceleration. Held
        steps check it again, since the ego closes in on the other's lane.
        """
        cfg = self.config
        if not (cfg.give_way and conflict is not None and conflict.known):
            return False
        speed = max(float(speed), 0.0)
        stop = speed * cfg.time_step + speed * speed / (2.0 * cfg.emergency_decel)
        return gives_way(ego_pose, conflict, stop, cfg.ego_length)

    def _decel(self, level: str) -> float:
        return {NONE: 0.0, COMFORTABLE: self.config.comfortable_decel,
                EMERGENCY: self.config.emergency_decel}[level]

    def _conflict(self, ego_pose, motion: tuple, lag: float) -> Assessment:
        """
        Smallest TTC over the tracks (the ego's `motion`: speed, yaw rate, path; `assess`).

        `lag` [s]: age of the BEV frame the tracks come from; they are moved on by it.
        """
        return self._first_conflict(ego_pose, motion, lag, self.config.horizon,
                                    self.tracks, self._tracked)

    def _anticipation(self, ego_pose, motion: tuple, lag: float) -> Assessment:
        """
        Smallest TTC, within `anticipation_ttc`, to the tracks `anticipated` selects.

        With `anticipation_gap` each of them is lengthened along its heading by the distance
        it drives in that time, either way: the ego then conflicts with it also when it would
        pass where that vehicle is up to `anticipation_gap` earlier or later (a vehicle
        crossing just ahead of the ego, which the simulator's TTC counts as a conflict).
        """
        cfg = self.config
        chosen = self._tracked & anticipated(self.tracks, ego_pose)
        reach = 2.0 * cfg.anticipation_gap
        swept = [replace(k, length=k.length + reach * math.hypot(k.vx, k.vy)) if c else k
                 for k, c in zip(self.tracks, chosen)]
        found = self._first_conflict(ego_pose, motion, lag, cfg.anticipation_ttc,
                                     swept, chosen)
        if found.conflict is None:
            return found
        index = next(i for i, k in enumerate(swept) if k is found.conflict)
        return replace(found, conflict=self.tracks[index])

    def _first_conflict(self, ego_pose, motion: tuple, lag: float,
                        horizon: float, tracks, chosen: np.ndarray) -> Assessment:
        """Smallest TTC within `horizon` over the `chosen` (boolean mask) of `tracks`."""
        cfg = self.config
        if not tracks or not np.any(chosen):
            return Assessment(math.inf, NONE, 0.0, None)
        t = np.arange(0.0, horizon + 1e-9, cfg.time_step)              # (T,)
        speed, yaw_rate, path = motion
        x0, y0, yaw0 = ego_pose
        yaw = yaw0 + yaw_rate * t
        if path is not None:
            ex, ey, yaw = poses_along(*path, speed * t)
        elif abs(yaw_rate) > 1e-4:
            ex = x0 + speed / yaw_rate * (np.sin(yaw) - math.sin(yaw0))
            ey = y0 - speed / yaw_rate * (np.cos(yaw) - math.cos(yaw0))
        else:
            ex = x0 + speed * t * math.cos(yaw0)
            ey = y0 + speed * t * math.sin(yaw0)
        first = first_contacts(ex, ey, yaw, tracks, t, lag, cfg)                 # (N,)
        hit = (first < len(t)) & chosen
        if not hit.any():
            return Assessment(math.inf, NONE, 0.0, None)
        first = np.where(hit, first, len(t))
        best = int(first.argmin())
        return Assessment(float(t[first[best]]), NONE, 0.0, tracks[best])


def gives_way(ego_pose: tuple[float, float, float], other: Track,
              stop_distance: float = 0.0, ego_length: float = 0.0) -> bool:
    """
    Tell whether the ego gives way to `other`, a neighbour known by its messages.

    Two vehicles that share each see the other's conflict, both brake, and each then sees
    its conflict clear as the other slows: released together, both drive on into it. So
    one of them keeps braking: the ego gives way to a vehicle crossing its path from the
    right (priority to the right, the rule of a junction without signs), but only while its
    front (`ego_length` / 2 ahead of its centre) can still stop short of that vehicle's
    lane within `stop_distance`. Past that point braking would leave it standing in the
    other's way, so it clears the lane instead, as the monitor would without the rule.
    A vehicle ahead going the same way does not brake for the ego behind it, and one
    meeting it head-on (more than 135 degrees apart) stays in its own lane: neither is
    given way to.
    """
    ahead, left, turn = map(float, relative_pose(*ego_pose, other.x, other.y, other.yaw))
    if not math.pi / 4 <= abs(turn) <= 3 * math.pi / 4 or left >= 0.0:
        return False
    # the other's heading line meets the ego's at `ahead - left / tan(turn)`; its lane's
    # near edge is half its width before that, along the ego's heading
    crossing = ahead - left * math.cos(turn) / math.sin(turn)
    near_edge = crossing - 0.5 * other.width / abs(math.sin(turn))
    return near_edge - 0.5 * ego_length >= stop_distance


def anticipated(tracks, ego_pose: tuple[float, float, float]) -> np.ndarray:
    """
    Which tracks anticipation is for: known only through sharing, ahead, crossing or merging.

    Ahead: the centre in front of the ego's. Crossing or merging: at least `LANE_HALF_WIDTH`
    to the side of the ego's heading line, or heading more than `FOLLOW_ANGLE` away from the
    ego's heading; the rest, a leader in the ego's lane going its way, is followed, not
    anticipated.
    """
    x, y, yaw = ego_pose
    c, s = math.cos(yaw), math.sin(yaw)
    chosen = np.zeros(len(tracks), bool)
    for i, k in enumerate(tracks):
        ahead = c * (k.x - x) + s * (k.y - y)
        side = -s * (k.x - x) + c * (k.y - y)
        turned = abs(math.remainder(k.yaw - yaw, math.tau)) > FOLLOW_ANGLE
        chosen[i] = k.shared_only and ahead > 0.0 and (abs(side) >= LANE_HALF_WIDTH or turned)
    return chosen


def _segment_distance(px: float, py: float, ax: float, ay: float, bx: float,
                      by: float) -> float:
    """Distance from point p to the segment a-b."""
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    along = ((px - ax) * dx + (py - ay) * dy) / length2 if length2 > 1e-12 else 0.0
    u = min(max(along, 0.0), 1.0)
    return math.hypot(px - ax - u * dx, py - ay - u * dy)


def first_contacts(ex: np.ndarray, ey: np.ndarray, eyaw: np.ndarray, tracks, t: np.ndarray,
                   lag: float, cfg: MonitorConfig, behind: bool = False) -> np.ndarray:
    """
    First contact index in `t` of each ego path with each track, len(t) for none.

    `ex, ey, eyaw` (..., T): ego paths sampled at times `t` (T,); tracks move at constant
    velocity from their frame, `lag` seconds old. Returns (..., N). Unless `behind`, a
    contact that begins behind the ego's centre counts as none: braking cannot avoid a
    vehicle closing from behind. The monitor passes one path; the planner's conflict cost
    one per candidate.
    """
    first, ahead = contact_times(ex, ey, eyaw, tracks, t, lag, cfg)
    return first if behind else np.where(ahead, first, len(t))


def contact_times(ex: np.ndarray, ey: np.ndarray, eyaw: np.ndarray, tracks, t: np.ndarray,
                  lag: float, cfg: MonitorConfig) -> tuple[np.ndarray, np.ndarray]:
    """
    First contact index (..., N) of each ego path with each track, and whether it begins ahead.

    A track that turns (a neighbour's message, `shared_tracks`) is also predicted straight on
    from where it is, and the earlier contact of the two counts (one ahead before one
    behind): its declared path says how it turns now, not that it goes on turning, and a
    leader whose plan steers a little must not be predicted out of the ego's lane and lost.
    The contacts themselves are `_single_contact_times`.
    """
    turning = [i for i, k in enumerate(tracks) if k.yaw_rate and k.turn_time > 0.0]
    if not turning:
        return _single_contact_times(ex, ey, eyaw, tracks, t, lag, cfg)
    straight = [replace(tracks[i], yaw_rate=0.0, turn_time=0.0) for i in turning]
    first, ahead = _single_contact_times(ex, ey, eyaw, list(tracks) + straight, t, lag, cfg)
    n, steps = len(tracks), len(t)
    first_n, ahead_n = first[..., :n].copy(), ahead[..., :n].copy()
    rank = np.where(ahead, first, steps + first)       # a contact ahead before one behind
    other = rank[..., n:] < rank[..., turning]
    first_n[..., turning] = np.where(other, first[..., n:], first[..., turning])
    ahead_n[..., turning] = np.where(other, ahead[..., n:], ahead[..., turning])
    return first_n, ahead_n


def _single_contact_times(ex: np.ndarray, ey: np.ndarray, eyaw: np.ndarray, tracks,
                          t: np.ndarray, lag: float, cfg: MonitorConfig
                          ) -> tuple[np.ndarray, np.ndarray]:
    """
    First contact index (..., N) of each ego path with each track, and whether it begins ahead.

    Ahead means the other vehicle's centre is ahead of the ego's at the contact, or, behind
    it, that the other is not closing in from behind (not faster along the ego's heading than
    the ego drives there) and the contact is still to come: a crossing vehicle that would
    strike the ego's rear quarter is avoided by braking before the crossing, a vehicle
    running into the ego from behind, or one already touching it there, is not.

    The envelope test of `first_contacts`, run only where a coarse test passes: one circle
    round each vehicle's discs, per path, track and time (most vehicles of a BEV never come
    near the ego's paths, so only a few samples get the segment distance).
    """
    lead, steps = np.shape(ex)[:-1], len(t)
    if not len(tracks):
        return np.zeros(lead + (0,), np.int64), np.zeros(lead + (0,), bool)
    lengths, widths = np.array([[k.length, k.width] for k in tracks]).T        # (N,)
    ox, oy, oyaw, ovx, ovy = predicted_motion(tracks, t + lag)                 # (N,T)
    px, py, pyaw = (np.asarray(a, dtype=np.float64).reshape(-1, steps) for a in (ex, ey, eyaw))

    def _reach(length, width):      # centre to the far edge of the outermost disc
        return 0.5 * length * (1.0 - 1.0 / cfg.discs) + _disc_radius(length, width, cfg.discs)
    reach = _reach(cfg.ego_length, cfg.ego_width) + _reach(lengths, widths) + cfg.margin
    near = np.hypot(px[:, None, :] - ox, py[:, None, :] - oy) < reach[:, None]   # (P,N,T)
    first = np.full(near.shape[:2], steps, np.int64)                           # (P,N)
    path, track, time = np.nonzero(near)
    if len(path):
        # each footprint is the envelope of its discs: the segment through their centres
        # swept by their radius (a capsule), so one segment distance per sample decides
        half_e = 0.5 * cfg.ego_length * (1.0 - 1.0 / cfg.discs)
        half_o = 0.5 * lengths[track] * (1.0 - 1.0 / cfg.discs)
        limit = _disc_radius(cfg.ego_length, cfg.ego_width, cfg.discs) \
            + _disc_radius(lengths[track], widths[track], cfg.discs) + cfg.margin
        ecos, esin = np.cos(pyaw[path, time]), np.sin(pyaw[path, time])
        ocos, osin = np.cos(oyaw[track, time]), np.sin(oyaw[track, time])
        gap = _segment_gap(px[path, time] - half_e * ecos, py[path, time] - half_e * esin,
                           2.0 * half_e * ecos, 2.0 * half_e * esin,
                           ox[track, time] - half_o * ocos, oy[track, time] - half_o * osin,
                           2.0 * half_o * ocos, 2.0 * half_o * osin)
        touch = gap < limit
        np.minimum.at(first, (path[touch], track[touch]), time[touch])
    if not len(path) or (first == steps).all():     # no contact: none begins ahead
        return first.reshape(lead + (len(tracks),)), np.zeros(lead + (len(tracks),), bool)
    at = np.minimum(first, steps - 1)
    rows = np.arange(len(tracks))
    path_rows = np.arange(len(px))[:, None]
    ax, ay, ayaw = px[path_rows, at], py[path_rows, at], pyaw[path_rows, at]      # (P,N)
    cos, sin = np.cos(ayaw), np.sin(ayaw)
    forward = (ox[rows, at] - ax) * cos + (oy[rows, at] - ay) * sin
    # closing from behind: faster along the ego's heading than the ego drives there
    after, before = np.minimum(at + 1, steps - 1), np.maximum(at - 1, 0)
    span = np.maximum(t[after] - t[before], 1e-9)
    ego_along = ((px[path_rows, after] - px[path_rows, before]) * cos
                 + (py[path_rows, after] - py[path_rows, before]) * sin) / span
    other_along = ovx[rows, at] * cos + ovy[rows, at] * sin
    # a contact behind the ego's centre that is there already (at t = 0) is no more avoided
    # by braking than one closing from behind: two vehicles stopped nose to tail within the
    # margin would otherwise hold the front one, and with it the one behind, for good
    ahead = (first < steps) & ((forward > 0.0) | ((other_along <= ego_along) & (first > 0)))
    return first.reshape(lead + (len(tracks),)), ahead.reshape(lead + (len(tracks),))


def predicted_motion(tracks, t: np.ndarray) -> tuple[np.ndarray, ...]:
    """
    Each track's predicted centre, heading and velocity at times `t` (T,) from now: (N, T) each.

    A track moves at its speed; its velocity (and box) turns at `yaw_rate` for its
    `turn_time`, then keeps its direction (a constant turn rate held for a while, then
    constant velocity; with no turn, constant velocity as BEV blobs are predicted). The arc's
    displacement is its chord, v t sinc(w t / 2) along the mean direction, exact also for a
    vanishing turn rate. A track that slows (`decel`, a neighbour's declared braking) covers
    the same path, at v - decel t until it stands or its `decel_time` ends, then at the
    speed reached: its motion at t is the constant-speed one at the time that covers the
    same distance, t - decel t^2 / (2 v) while it brakes.
    """
    state = np.array([[k.x, k.y, k.yaw, k.vx, k.vy, k.yaw_rate, max(k.turn_time, 0.0),
                       max(k.decel, 0.0), max(k.decel_time, 0.0)]
                      for k in tracks]).reshape(-1, 9)
    x, y, yaw, vx, vy, rate, turn, decel, lasts = (state[:, i:i + 1] for i in range(9))
    t = np.asarray(t, dtype=np.float64)[None, :]
    factor = 1.0                                       # speed now / at 0
    if np.any(decel > 0.0):                            # BEV blobs never slow: skip it
        speed = np.hypot(vx, vy)
        per_second = np.divide(decel, speed, out=np.zeros_like(speed), where=speed > 0.0)
        stands = np.divide(1.0, per_second, out=np.full_like(speed, np.inf),
                           where=per_second > 0.0)
        held = np.minimum(t, lasts)                     # time the declared braking covers
        braking = np.minimum(held, stands)              # ... of it spent moving
        factor = np.clip(1.0 - per_second * held, 0.0, 1.0)
        t = braking - 0.5 * per_second * braking * braking + factor * (t - braking)
    turning = np.clip(t, 0.0, turn)                    # time spent turning
    swing = rate * turning                             # turn of the velocity so far

    def rotated(angle):                                # (vx, vy) turned by angle
        c, s = np.cos(angle), np.sin(angle)
        return vx * c - vy * s, vx * s + vy * c
    scale = turning * np.sinc(swing / (2.0 * np.pi))
    mid_x, mid_y = rotated(0.5 * swing)
    end_x, end_y = rotated(swing)
    px = x + scale * mid_x + end_x * (t - turning)
    py = y + scale * mid_y + end_y * (t - turning)
    return px, py, yaw + swing, end_x * factor, end_y * factor


def override_accel(assessment: Assessment, planned_accel: float) -> Optional[float]:
    """Return the acceleration replacing the planner's, or None when the planner's stands."""
    if assessment.level == NONE or planned_accel <= -assessment.decel:
        return None
    return -assessment.decel

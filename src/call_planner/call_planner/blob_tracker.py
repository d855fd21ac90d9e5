"""
Tracks of the BEV's vehicle blobs across frames, with a velocity fitted over each history.

Why: the TTC monitor's default estimate chains each blob back through the past frames to the
nearest centre within a radius, and takes the velocity from the two ends of that chain. A blob
decoded from a neighbour's latent is a reconstruction whose centre jumps by a metre or more
between frames, and the nearest centre of an earlier frame can be another vehicle's blob in
a queue: at the occluded crossroad most velocities of such blobs were ones the vehicle did not
have (docs/results.md, "What the monitor brakes for at the crossroad"). This tracker is the
usual remedy of multi-object tracking (e.g. SORT: predict, gate, assign one to one):

- each track is predicted at its velocity to the new frame's time, and blobs are assigned one
  to one, nearest pair first, within `gate` metres of the prediction (two blobs no longer take
  the same past);
- a track not seen in a frame coasts for up to `coast` seconds (a decoded blob can miss a
  frame), then ends;
- the velocity is the least-squares slope of the track's centres over the last `window`
  seconds (`shared_window` for a blob known only through sharing: a longer baseline averages
  a reconstruction's jumps out, at the price of a later response to a change of speed).

A blob of a new track has no velocity yet (not assessed, as before: calling it standing would
brake for every vehicle that enters the BEV ahead). The TTC monitor tracks every blob (one to
one needs them all) and takes the fitted velocity for the blobs known only through sharing,
with its `blob_tracker` switch (off: tried on tuning seeds, fewer false velocities but no
better driving; docs/results.md).
"""
from dataclasses import dataclass, field

import numpy as np


@dataclass
class _Track:
    times: list = field(default_factory=list)
    points: list = field(default_factory=list)
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))


class BlobTracker:
    """One-to-one, gated association of blob centres to tracks; velocities by line fit."""

    def __init__(self, gate: float, window: float, shared_window: float, coast: float):
        """`gate` [m], `window`, `shared_window` and `coast` [s] (module doc)."""
        self.gate, self.window, self.shared_window, self.coast = \
            gate, window, shared_window, coast
        self._tracks: list[_Track] = []

    def update(self, time: float, centres: np.ndarray, shared_only: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        """
        Take one frame's centres (N, 2) [m, map frame] and which are known only by sharing.

        Returns each centre's velocity (N, 2) [m/s] and whether it has one (its track holds
        an earlier frame).
        """
        centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
        live = [k for k in self._tracks if time - k.times[-1] <= self.coast + 1e-6]
        owner = self._assign(time, centres, live)
        keep = max(self.window, self.shared_window) + 1e-6
        velocity = np.zeros_like(centres)
        has = np.zeros(len(centres), bool)
        tracks = []
        for i, centre in enumerate(centres):
            track = live[owner[i]] if owner[i] >= 0 else _Track()
            track.times.append(time)
            track.points.append(centre)
            while time - track.times[0] > keep:
                track.times.pop(0)
                track.points.pop(0)
            track.velocity, has[i] = _fitted(
                track, time, self.shared_window if shared_only[i] else self.window)
            velocity[i] = track.velocity
            tracks.append(track)
        taken = {id(k) for k in tracks}
        self._tracks = tracks + [k for k in live if id(k) not in taken]
        return velocity, has

    def _assign(self, time: float, centres: np.ndarray, live: list) -> np.ndarray:
        """Index into `live` of each centre's track, -1 for a new one (nearest pair first)."""
        owner = np.full(len(centres), -1)
        if not live or not len(centres):
            return owner
        last = np.array([k.points[-1] for k in live])
        predicted = last + np.array([k.velocity * (time - k.times[-1]) for k in live])

        def distance(to):
            return np.hypot(*(centres[:, None, :] - to[None, :, :]).transpose(2, 0, 1))
        # the prediction, or where the track was: a young track's velocity is still noise
        dist = np.minimum(distance(predicted), distance(last))
        for flat in np.argsort(dist, axis=None):
            i, j = np.unravel_index(flat, dist.shape)
            if dist[i, j] > self.gate:
                break
            if owner[i] < 0 and j not in owner:
                owner[i] = j
        return owner


def _fitted(track: _Track, time: float, window: float) -> tuple[np.ndarray, bool]:
    """Least-squares slope of the track's centres within `window` of `time`."""
    times = np.array(track.times)
    recent = time - times <= window + 1e-6
    if recent.sum() < 2:
        return np.zeros(2), False
    t = times[recent] - times[recent].mean()
    points = np.array(track.points)[recent]
    return (t[:, None] * (points - points.mean(0))).sum(0) / (t * t).sum(), True

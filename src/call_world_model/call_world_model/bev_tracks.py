"""
Vehicle tracks from a stack of BEVs: one velocity per vehicle blob, from its centroid's track.

Used by the motion head (``bev_motion``, ``motion: tracks``). Why blobs: a vehicle moves
rigidly, so one velocity per vehicle is the right number of unknowns, and its centroid line over
all the context frames resolves a slow relative motion (a tenth of a pixel per step) that a
differential (Lucas-Kanade) flow, linearised around the blurred masks' edges and mixing
neighbouring vehicles inside its window, resolves less well. This is what a multi-object
tracker with a constant-velocity model does (Bewley et al., "Simple Online and Realtime
Tracking", ICIP 2016: nearest-centroid association, constant-velocity state), on the BEV alone.

Steps, per window:

* connected components of the vehicle mask of every context frame (OpenCV, 8-connected); each
  blob's centroid is mapped into its step's reference frame by the ego's odometry (``align``),
  exactly, with no resampling of the raster;
* association backwards from t0: each track's blob is matched to the nearest blob of the frame
  before within ``gate`` px of where the track's velocity so far puts it (greedy, nearest pair
  first, one match per blob), and of similar area: a merge, split or partial occlusion changes
  the area and moves the centroid with it, so the track ends there;
* a track of at least ``min_track`` frames (of the last ``frames``) gets the least-squares
  slope of its centroids as velocity; shorter ones (vehicles that just appeared, or whose blob
  changed) get none, and the head keeps its flow estimate there.
"""
from dataclasses import dataclass
from typing import List, Tuple

import cv2
import numpy as np


@dataclass(frozen=True)
class Blobs:
    """Connected components of one frame, centroids in the step's reference frame."""

    labels: np.ndarray  # (S, S) int32, 0 = background, blob i has label i + 1
    centroids: np.ndarray  # (N, 2) (row, col) [px]
    areas: np.ndarray  # (N,) pixels


def find_blobs(mask: np.ndarray, affine: np.ndarray) -> Blobs:
    """
    Blobs of a boolean mask (S, S); centroids mapped through the pixel affine (2, 3).

    The affine maps (col, row) of this frame to (col, row) of its reference frame.
    """
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    cols_rows = centroids[1:count].reshape(-1, 2)  # OpenCV (x = col, y = row); 0: background
    mapped = cols_rows @ affine[:, :2].T + affine[:, 2]
    return Blobs(labels, mapped[:, ::-1].copy(),
                 stats[1:count, cv2.CC_STAT_AREA].astype(np.float64))


def _match(centroids: np.ndarray, areas: np.ndarray, before: Blobs, active: np.ndarray,
           gate: float, area_ratio: float) -> np.ndarray:
    """
    Index into ``before`` for each track's expected centroid (N, 2) (-1: none).

    Nearest pair first, one blob per track; pairs farther than ``gate`` px or whose areas
    differ by more than the factor ``area_ratio`` are not matched, nor inactive tracks.
    """
    out = np.full(len(centroids), -1, dtype=np.int64)
    if not len(before.areas) or not active.any():
        return out
    dist = np.linalg.norm(centroids[:, None] - before.centroids[None], axis=-1)
    ratio = np.maximum(areas[:, None], before.areas[None]) \
        / np.maximum(np.minimum(areas[:, None], before.areas[None]), 1.0)
    dist[(ratio > area_ratio) | (dist > gate) | ~active[:, None]] = np.inf
    taken = np.zeros(len(before.areas), dtype=bool)
    for flat in np.argsort(dist, axis=None):
        i, j = np.unravel_index(flat, dist.shape)
        if not np.isfinite(dist[i, j]):
            break
        if out[i] < 0 and not taken[j]:
            out[i], taken[j] = j, True
    return out


def track_velocities(masks: np.ndarray, affines: np.ndarray, gate: float, frames: int,
                     min_track: int, area_ratio: float
                     ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Track the blobs of the last frame back through the stack.

    masks (T, S, S) bool ending at t0; affines (T, 2, 3) pixel affines of each frame into its
    step's reference frame. Returns (labels (S, S) of the t0 blobs, velocity (N, 2) [rows,
    cols px / step] in the reference frame, tracked (N,) bool: the track spans at least
    ``min_track`` frames; the velocity of the others is zero).
    """
    t = len(masks)
    found = [find_blobs(masks[i], affines[i]) for i in range(max(0, t - frames), t)]
    last = found[-1]
    n = len(last.areas)
    history: List[List[int]] = [[i] for i in range(n)]  # blob index per frame, newest first
    active = np.ones(n, dtype=bool)
    for step in range(len(found) - 1, 0, -1):
        if not active.any():
            break
        now = found[step]
        # each active track's blob in this frame (ended tracks: a placeholder, not matched)
        index = np.array([h[-1] if a else 0 for h, a in zip(history, active)], dtype=np.int64)
        velocity = np.zeros((n, 2))
        for i, h in enumerate(history):
            if active[i] and len(h) > 1:  # the track's mean velocity so far
                velocity[i] = (last.centroids[i] - now.centroids[h[-1]]) / (len(h) - 1)
        match = _match(now.centroids[index] - velocity, now.areas[index], found[step - 1],
                       active, gate, area_ratio)
        active &= match >= 0
        for i in np.flatnonzero(active):
            history[i].append(int(match[i]))
    lengths = np.array([len(h) for h in history], dtype=np.int64)
    tracked = lengths >= max(2, min_track)
    slopes = np.zeros((n, 2))
    for i in np.flatnonzero(tracked):
        h = history[i]
        centres = np.array([found[len(found) - 1 - j].centroids[b] for j, b in enumerate(h)])
        times = -np.arange(len(h), dtype=np.float64)  # 0 at t0, newest first
        times -= times.mean()
        slopes[i] = times @ (centres - centres.mean(0)) / (times @ times)
    return last.labels, slopes, tracked

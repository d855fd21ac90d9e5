"""
FIFO sequence replay of per-agent trajectories (DreamerV3 replay, paper App. E.2 Table 5).

Every CALL vehicle contributes one continuous stream of steps; episode boundaries inside a
stream are marked by ``is_first`` so sampled windows may cross them (the RSSM resets there).
Each stream is a ring buffer whose arrays grow on demand up to its share of the capacity, so
a 10^6-step replay costs only the memory of what was actually stored. Every BEV channel is a
binary 0/255 mask (``call_perception.bev_raster``), so BEVs are stored bit-packed (7 x 128 x
128 -> 14 KB per step instead of 115 KB) and unpacked to uint8 0/255 when sampled; the
received recurrent states ``h_j`` are kept in float16.
"""

from dataclasses import dataclass
from typing import Dict, Optional

from call_world_model.shared_pooling import SharedBatch
import numpy as np
import torch


@dataclass
class SharedStep:
    """
    What one agent received from its neighbours at one step, padded to ``max_neighbours``.

    z_indices (N, L) class index per categorical latent; h (N, D) recurrent state;
    intention (N, P, 2) waypoints and rel_pose (N, 3) (x, y, yaw) in the receiver's ego frame;
    mask (N,) True where a neighbour slot is occupied.
    """

    z_indices: np.ndarray
    h: np.ndarray
    intention: np.ndarray
    rel_pose: np.ndarray
    mask: np.ndarray


@dataclass
class Step:
    """One agent's transition in DreamerV3 order: obs_t, a_{t-1}, r_t, cont_t, is_first_t."""

    bev: np.ndarray
    prev_action: int
    reward: float
    cont: float
    is_first: bool
    intention: Optional[np.ndarray] = None
    shared: Optional[SharedStep] = None


_INITIAL_ROWS = 64  # rows allocated per stream at first; doubled on demand up to capacity

# field name -> storage dtype; shapes come from the first step a stream receives.
_STORAGE_DTYPES = {
    'bev': np.uint8,
    'prev_action': np.int64,
    'reward': np.float32,
    'cont': np.float32,
    'is_first': np.bool_,
    'intention': np.float32,
    'shared_z_indices': np.uint8,
    'shared_h': np.float16,
    'shared_intention': np.float32,
    'shared_rel_pose': np.float32,
    'shared_mask': np.bool_,
}


def _flatten(step: Step) -> Dict[str, np.ndarray]:
    bev = np.asarray(step.bev)
    if bev.dtype != np.uint8 or bev.ndim != 3:
        raise TypeError(f'BEV must be uint8 (C, H, W), got {bev.dtype} {bev.shape}')
    if np.any((bev != 0) & (bev != 255)):
        raise ValueError('BEV values must be 0 or 255 (binary masks) to be stored bit-packed')
    fields = {
        'bev': np.packbits(bev.reshape(-1) > 0),
        'prev_action': np.asarray(step.prev_action),
        'reward': np.asarray(step.reward),
        'cont': np.asarray(step.cont),
        'is_first': np.asarray(step.is_first),
    }
    if step.intention is not None:
        fields['intention'] = np.asarray(step.intention)
    if step.shared is not None:
        if int(np.max(step.shared.z_indices, initial=0)) > 255:
            raise ValueError('latent class index > 255 does not fit the uint8 replay storage')
        fields['shared_z_indices'] = np.asarray(step.shared.z_indices)
        fields['shared_h'] = np.asarray(step.shared.h)
        fields['shared_intention'] = np.asarray(step.shared.intention)
        fields['shared_rel_pose'] = np.asarray(step.shared.rel_pose)
        fields['shared_mask'] = np.asarray(step.shared.mask)
    return fields


class _Stream:
    """Ring buffer of one agent's steps with lazily grown storage."""

    def __init__(self, capacity: int, first: Dict[str, np.ndarray]):
        self.capacity = capacity
        self.keys = tuple(first)
        self.size = 0
        self.next = 0
        self.arrays = {
            key: np.zeros((min(_INITIAL_ROWS, capacity),) + value.shape, _STORAGE_DTYPES[key])
            for key, value in first.items()
        }

    def add(self, fields: Dict[str, np.ndarray]) -> None:
        if tuple(fields) != self.keys:
            raise ValueError(f'step fields {tuple(fields)} differ from the stored {self.keys}')
        allocated = len(self.arrays['bev'])
        if self.next == allocated and allocated < self.capacity:
            grown = min(2 * allocated, self.capacity)
            for key, array in self.arrays.items():
                bigger = np.zeros((grown,) + array.shape[1:], array.dtype)
                bigger[:allocated] = array
                self.arrays[key] = bigger
        for key, value in fields.items():
            target = self.arrays[key]
            if value.shape != target.shape[1:]:
                raise ValueError(
                    f'{key} has shape {value.shape}, the stream stores {target.shape[1:]}')
            target[self.next] = value
        self.next = (self.next + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def window(self, start: int, length: int) -> Dict[str, np.ndarray]:
        """Return steps start..start+length counted from the oldest stored step."""
        oldest = (self.next - self.size) % self.capacity
        index = (oldest + start + np.arange(length)) % self.capacity
        return {key: array[index] for key, array in self.arrays.items()}

    def ordered(self, key: str) -> np.ndarray:
        """All stored values of one field, oldest first."""
        oldest = (self.next - self.size) % self.capacity
        return self.arrays[key][(oldest + np.arange(self.size)) % self.capacity]

    def nbytes(self) -> int:
        return sum(array.nbytes for array in self.arrays.values())


class SequenceReplay:
    """FIFO replay of fixed-length windows over per-agent streams."""

    def __init__(self, capacity: int, num_streams: int):
        """Split ``capacity`` steps evenly over ``num_streams`` agents (oldest drop first)."""
        if num_streams < 1:
            raise ValueError(f'num_streams must be >= 1, got {num_streams}')
        if capacity < num_streams:
            raise ValueError(f'capacity {capacity} is smaller than num_streams {num_streams}')
        self.capacity = int(capacity)
        self.num_streams = int(num_streams)
        self._stream_capacity = self.capacity // self.num_streams
        self._streams: Dict[str, _Stream] = {}
        self._bev_shape: Optional[tuple] = None

    def add(self, stream: str, step: Step) -> None:
        """Append one step of agent ``stream``."""
        fields = _flatten(step)
        if stream not in self._streams:
            if len(self._streams) == self.num_streams:
                raise ValueError(
                    f'replay holds {self.num_streams} streams already; cannot add {stream!r}')
            self._streams[stream] = _Stream(self._stream_capacity, fields)
            self._bev_shape = tuple(np.shape(step.bev))
        elif tuple(np.shape(step.bev)) != self._bev_shape:
            raise ValueError(f'BEV has shape {np.shape(step.bev)}, the replay stores '
                             f'{self._bev_shape}')
        self._streams[stream].add(fields)

    def __len__(self) -> int:
        """Return the number of stored steps over all streams."""
        return sum(stream.size for stream in self._streams.values())

    def nbytes(self) -> int:
        """Return the bytes currently allocated by the storage arrays."""
        return sum(stream.nbytes() for stream in self._streams.values())

    def can_sample(self, length: int) -> bool:
        """Return whether at least one stream holds ``length`` steps."""
        return any(stream.size >= length for stream in self._streams.values())

    def sample(self, batch: int = 16, length: int = 64,
               rng: Optional[np.random.Generator] = None, within_episode: bool = False) -> dict:
        """
        Draw ``batch`` windows of ``length`` steps, uniformly over all valid window starts.

        ``within_episode`` keeps only windows that no episode start interrupts (evaluation of
        open-loop predictions). Returns the world model's batch dict of torch tensors: bev
        (B, T, C, H, W) uint8, prev_action (B, T) long, reward/cont (B, T) float, is_first
        (B, T) bool (forced True at t = 0 because training starts every window from the
        initial state), intention (B, T, P, 2) or None, shared SharedBatch (B, T, N, ...) or
        None.
        """
        if batch < 1 or length < 1:
            raise ValueError(f'batch and length must be >= 1, got {batch} x {length}')
        rng = rng if rng is not None else np.random.default_rng()
        names = sorted(self._streams)
        starts = [self._valid_starts(self._streams[n], length, within_episode) for n in names]
        counts = np.array([len(s) for s in starts], dtype=float)
        if counts.sum() == 0:
            raise ValueError(f'no stream holds {length} steps'
                             f'{" of one episode" if within_episode else ""} yet '
                             f'(sizes: {self.sizes()})')
        chosen = rng.choice(len(names), size=batch, p=counts / counts.sum())
        windows = []
        for index in chosen:
            start = int(starts[index][rng.integers(0, len(starts[index]))])
            windows.append(self._streams[names[index]].window(start, length))
        stacked = {key: np.stack([w[key] for w in windows]) for key in windows[0]}
        stacked['is_first'][:, 0] = True
        size = int(np.prod(self._bev_shape))
        bits = np.unpackbits(stacked['bev'], axis=-1, count=size)
        stacked['bev'] = (bits * np.uint8(255)).reshape(
            stacked['bev'].shape[:2] + self._bev_shape)
        return _to_torch(stacked)

    @staticmethod
    def _valid_starts(stream: '_Stream', length: int, within_episode: bool) -> np.ndarray:
        count = stream.size - length + 1
        if count <= 0:
            return np.zeros(0, dtype=np.int64)
        if not within_episode:
            return np.arange(count)
        firsts = stream.ordered('is_first').astype(np.int64)
        inside = np.concatenate([[0], np.cumsum(firsts)])
        # episode starts among window steps 1..length-1 of the window starting at s
        interrupts = inside[np.arange(count) + length] - inside[np.arange(count) + 1]
        return np.flatnonzero(interrupts == 0)

    def sizes(self) -> Dict[str, int]:
        """Return stored steps per stream."""
        return {name: stream.size for name, stream in self._streams.items()}


def _to_torch(stacked: Dict[str, np.ndarray]) -> dict:
    out = {
        'bev': torch.from_numpy(stacked['bev']),
        'prev_action': torch.from_numpy(stacked['prev_action']),
        'reward': torch.from_numpy(stacked['reward']),
        'cont': torch.from_numpy(stacked['cont']),
        'is_first': torch.from_numpy(stacked['is_first']),
        'intention': None,
        'shared': None,
    }
    if 'intention' in stacked:
        out['intention'] = torch.from_numpy(stacked['intention'])
    if 'shared_mask' in stacked:
        out['shared'] = SharedBatch(
            z_indices=torch.from_numpy(stacked['shared_z_indices'].astype(np.int64)),
            h=torch.from_numpy(stacked['shared_h'].astype(np.float32)),
            intention=torch.from_numpy(stacked['shared_intention']),
            rel_pose=torch.from_numpy(stacked['shared_rel_pose']),
            mask=torch.from_numpy(stacked['shared_mask']),
        )
    return out

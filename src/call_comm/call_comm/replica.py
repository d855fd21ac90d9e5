"""
Replica world model: rebuild a sender's recurrent state h from the (z, a) it broadcasts.

With the paper's sequence model h_t = f(h_{t-1}, z_{t-1}, a_{t-1}) (App. E.2 eq. 11;
call_world_model config `condition_sequence_model: false`) and one fleet-wide world model, h
is a deterministic function of the sender's past (z, a), so messages can omit it (issue 11).
A message with sequence t carries z_t and a_{t-1} (LatentState.action, "the action that led
into this state"); the receiver advances h_t = f(h_{t-1}, z_{t-1}, a_t-message), starting from
a keyframe (a quantised h, possibly split into chunks, see `wire_codec.keyframe_parts`).

Deterministic numerics: the step is `RSSM.advance` (exact one-hots into `RSSM.sequence_step`,
the very function the sender's observe step runs) on a batch of one in float32 with a fixed
torch thread count, so sender and receiver get bit-identical h from identical inputs. The sender
runs the same `Replica` on its own messages (`keyframes.KeyframeSender`), so it knows exactly
what every synchronised receiver holds.

Lazy replicas (`ReplicaBank(lazy=True)`, what `call_comm` runs): a receiver needs a sender's h
only while the sender is inside its communication range, so a message only queues its step;
the steps run when h is asked for (`Replica.current_h`, at delivery) or when the queue would
outgrow the kept history. A keyframe drops the queue before it (its h replaces everything
older), so an out-of-range sender costs no sequence-model step at all while keyframes arrive
more often than `history` messages. The h delivered is the same, bit for bit, as the eager one;
only the keyframe drift statistic is then measured for materialised steps alone.

The world model is duck-typed (`.rssm.advance`, `.cfg.deter`, `.cfg.num_actions`) and comes
from above: call_comm sits below the world-model package, which declares its checkpoint loader
as an entry point of the group `WORLD_MODEL_LOADERS` (`load_sequence_model` finds it). So no
import points from call_comm up to call_world_model, and another model package can plug in.
"""
from collections import deque, OrderedDict
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Deque, Dict, Optional, Tuple
import weakref

from call_comm.wire_codec import KeyframePart, ZLayout
import numpy as np
import torch

# Entry-point group of world-model loaders: `name = module:function`, function(path) -> model.
WORLD_MODEL_LOADERS = 'call_comm.world_model_loaders'


class SequenceModel:
    """
    The world model's h_t = f(h_{t-1}, z_{t-1}, a_{t-1}) on one row, float32, no grad.

    Steps are remembered per model object, process-wide: in a container every comm node
    rebuilds the same senders' h from the same messages, and each sender's own mirror runs
    those very steps too, so equal inputs give the result already computed (bit for bit what
    the step would return) instead of another sequence-model step.
    """

    MEMO_SIZE = 512
    _memos: 'weakref.WeakKeyDictionary[torch.nn.Module, OrderedDict]' = \
        weakref.WeakKeyDictionary()

    def __init__(self, world_model, num_threads: int = 1) -> None:
        """Refuse a legacy model whose sequence model also reads shared info and intention."""
        if getattr(world_model.cfg, 'condition_sequence_model', True):
            raise ValueError('replica mode needs a world model with condition_sequence_model: '
                             'false (its h then depends on (z, a) only)')
        self.layout = ZLayout.of(world_model.cfg)      # CodecError: no wire form of its z
        torch.set_num_threads(int(num_threads))
        self.rssm = world_model.rssm.eval()
        self.deter = int(world_model.cfg.deter)
        self.num_actions = int(world_model.cfg.num_actions)
        self.memo = SequenceModel._memos.setdefault(self.rssm, OrderedDict())
        self.memo_hits = 0

    def step(self, h: torch.Tensor, z_indices: np.ndarray, action: int) -> torch.Tensor:
        """
        (1, D) h_{t-1}, z_{t-1} indices (S,), a_{t-1} -> (1, D) h_t (do not modify it).

        Inference mode is entered only to compute a step the memo does not hold: a memo hit
        (most receptions in a container) reads bytes only.
        """
        z = np.asarray(z_indices, dtype=np.int64)
        key = (h.detach().numpy().tobytes(), z.tobytes(), int(action))
        memo = self.memo
        known = memo.get(key)
        if known is not None:
            memo.move_to_end(key)
            self.memo_hits += 1
            return known
        with torch.inference_mode():
            out = self.rssm.advance(h, torch.from_numpy(z).unsqueeze(0),
                                    torch.tensor([int(action)]))
        memo[key] = out
        if len(memo) > self.MEMO_SIZE:
            memo.popitem(last=False)
        return out


def load_fleet_model(path: str):
    """
    Load the fleet's world model from a checkpoint file (one copy per process).

    The loader is the entry point the world-model package declares (`WORLD_MODEL_LOADERS`);
    its errors (e.g. a corrupt checkpoint) propagate with their reason.
    """
    loaders = sorted(entry_points(group=WORLD_MODEL_LOADERS), key=lambda e: e.name)
    if not loaders:
        raise ValueError(f'the checkpoint needs a world-model loader (entry point group '
                         f'{WORLD_MODEL_LOADERS!r}); is call_world_model installed?')
    return loaders[0].load()(path)


def load_sequence_model(path: str, num_threads: int) -> SequenceModel:
    """Load the fleet world model's sequence step from a checkpoint file."""
    return SequenceModel(load_fleet_model(path), num_threads)


@dataclass
class ReplicaUpdate:
    """What one received message did to a sender's replica."""

    h: Optional[np.ndarray]          # rebuilt h_t (float32); None: unknown or not yet computed
    gap: bool = False                # a sequence gap broke the synchronisation
    synchronised: bool = False       # h_t can be rebuilt (lazy replicas compute it on demand)
    keyframe_completed: bool = False
    drift_l2: Optional[float] = None   # ||h_rebuilt - h_keyframe|| at the keyframe's step
    drift_max: Optional[float] = None  # max |h_rebuilt - h_keyframe|


class Replica:
    """One sender's rebuilt h, advanced per message, resynchronised by keyframes."""

    def __init__(self, model: SequenceModel, history: int = 16, lazy: bool = False) -> None:
        """
        `history` bounds the messages kept to replay a chunked keyframe (>= chunk count).

        `lazy`: queue steps until h is asked for (module doc); at most `history - 1` are queued.
        """
        self.model = model
        self.lazy = lazy
        self.h: Optional[torch.Tensor] = None      # (1, D) at last_sequence - _lag
        self._lag = 0                               # queued steps after h (lazy only)
        self.last_sequence: Optional[int] = None
        self.last_z: Optional[np.ndarray] = None
        self._steps: Deque[Tuple[int, np.ndarray, int, Optional[torch.Tensor]]] = deque(
            maxlen=max(2, history))
        self._parts: Dict[int, np.ndarray] = {}
        self._parts_snapshot: Optional[int] = None
        self._parts_count = 0
        # (sequence, action, h) of the last `predict`: the sender's mirror predicts, then
        # observes the same step, which then costs no second sequence-model step
        self._predicted: Optional[Tuple[int, int, torch.Tensor]] = None

    @property
    def synchronised(self) -> bool:
        """Tell whether h is known for the last received sequence."""
        return self.h is not None

    def predict(self, sequence: int, action: int) -> Optional[np.ndarray]:
        """Return the h a message without keyframe would give (kept for the next `observe`)."""
        if self.h is None or sequence != (self.last_sequence + 1) & 0xFFFFFFFF:
            return None
        self._materialise()
        h = self.model.step(self.h, self.last_z, action)
        self._predicted = (sequence, int(action), h)
        return h[0].numpy().copy()

    def observe(self, sequence: int, z_indices: np.ndarray, action: int,
                part: Optional[KeyframePart] = None) -> ReplicaUpdate:
        """Advance with one message (in sequence order); `part` is its keyframe piece."""
        z = np.asarray(z_indices, dtype=np.uint8).copy()
        gap = False
        predicted, self._predicted = self._predicted, None
        if self.h is not None:
            if sequence != (self.last_sequence + 1) & 0xFFFFFFFF:
                self.h, self._lag, gap = None, 0, True
            elif self.lazy:
                if self._lag + 2 > self._steps.maxlen:
                    self._materialise()     # keep the queued steps' inputs in the history
                self._lag += 1
            else:
                self.h = (predicted[2] if predicted is not None
                          and predicted[:2] == (sequence, int(action))
                          else self.model.step(self.h, self.last_z, action))
        if self._steps and sequence != (self._steps[-1][0] + 1) & 0xFFFFFFFF:
            self._steps.clear()
        self._steps.append((sequence, z, int(action), None if self._lag else self.h))
        self.last_sequence, self.last_z = sequence, z
        update = ReplicaUpdate(h=None, gap=gap)
        if part is not None:
            self._add_part(sequence, part, update)
        update.synchronised = self.h is not None
        if self.h is not None and not self._lag:
            update.h = self.h[0].numpy().copy()
        return update

    def current_h(self) -> Optional[np.ndarray]:
        """Return h at the last received sequence (runs queued steps); None: not synchronised."""
        self._materialise()
        return None if self.h is None else self.h[0].numpy().copy()

    def _materialise(self) -> None:
        """Run the queued steps: each one reads the previous message's z and its own action."""
        if not self._lag or self.h is None:
            return
        steps = list(self._steps)[-self._lag - 1:]
        h = self.h
        for index, (previous, current) in enumerate(zip(steps, steps[1:]), 1):
            h = self.model.step(h, previous[1], current[2])
            self._steps[len(self._steps) - len(steps) + index] = current[:3] + (h,)
        self.h, self._lag = h, 0

    def reset(self) -> None:
        """Forget everything (sender restarted, new episode)."""
        self.h, self.last_sequence, self.last_z = None, None, None
        self._lag = 0
        self._predicted = None
        self._steps.clear()
        self._parts.clear()
        self._parts_snapshot = None

    # ---------------------------------------------------------------------------- keyframes
    def _add_part(self, sequence: int, part: KeyframePart, update: ReplicaUpdate) -> None:
        snapshot = (sequence - part.index) & 0xFFFFFFFF
        if snapshot != self._parts_snapshot or part.count != self._parts_count:
            self._parts.clear()
            self._parts_snapshot, self._parts_count = snapshot, part.count
        self._parts[part.index] = part.values
        if len(self._parts) < part.count:
            return
        values = np.concatenate([self._parts[i] for i in range(part.count)])
        self._parts.clear()
        self._parts_snapshot = None
        if values.size != self.model.deter:
            return  # malformed keyframe (wrong total length): stay as we are
        steps = list(self._steps)
        start = next((i for i, s in enumerate(steps) if s[0] == snapshot), None)
        if start is None:
            return  # the snapshot's step fell out of the history: wait for the next keyframe
        rebuilt = steps[start][3]
        keyframe = torch.from_numpy(values.astype(np.float32)).unsqueeze(0)
        if rebuilt is not None:
            diff = rebuilt[0].numpy().astype(np.float64) - values
            update.drift_l2 = float(np.sqrt(np.sum(diff ** 2)))
            update.drift_max = float(np.max(np.abs(diff)))
        update.keyframe_completed = True
        self.h, self._lag = keyframe, len(steps) - 1 - start
        self._steps[start] = steps[start][:3] + (keyframe,)
        if not self.lazy:
            self._materialise()


class ReplicaBank:
    """Replicas of every authenticated sender (bounded: least recently heard is evicted)."""

    def __init__(self, model: SequenceModel, max_senders: int = 64, history: int = 16,
                 lazy: bool = False) -> None:
        """`max_senders` bounds memory; only fleet members reach the bank (`lazy`: Replica)."""
        self.model = model
        self.max_senders = max_senders
        self.history = history
        self.lazy = lazy
        self._replicas: Dict[str, Replica] = {}

    def observe(self, sender_id: str, sequence: int, z_indices: np.ndarray, action: int,
                part: Optional[KeyframePart]) -> ReplicaUpdate:
        """Advance `sender_id`'s replica with one verified message."""
        replica = self._replicas.pop(sender_id, None)
        if replica is None:
            replica = Replica(self.model, self.history, self.lazy)
            if len(self._replicas) >= self.max_senders:
                self._replicas.pop(next(iter(self._replicas)))
        self._replicas[sender_id] = replica  # re-insert: most recently heard last
        return replica.observe(sequence, z_indices, action, part)

    def current_h(self, sender_id: str) -> Optional[np.ndarray]:
        """Return the sender's h at its last message (see `Replica.current_h`)."""
        replica = self._replicas.get(sender_id)
        return None if replica is None else replica.current_h()

    def synchronised(self, sender_id: str) -> bool:
        """Tell whether the sender's h is currently rebuilt."""
        replica = self._replicas.get(sender_id)
        return replica is not None and replica.synchronised

    def clear(self) -> None:
        """Forget every replica (simulation time jumped back)."""
        self._replicas.clear()

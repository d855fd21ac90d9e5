"""
Neighbours' views for the ego's perception (paper Fig. 4c), decoded where the latents are.

The comm node holds every accepted neighbour's verified (z, h) and, with a checkpoint, the
fleet's world model: it decodes them with the shared decoder into each neighbour's vehicle mask
and hands the masks to the ego's perception on its own `shared_info` topic (bit-packed,
`call_common.msg_conversions.pack_mask`), never on the V2V wire, whose message stays a latent.
The decoding is the world-model package's one function (`neighbour_decoding`), reached through
the entry-point group `VIEW_DECODERS` because call_comm sits below that package and imports
nothing from it (as `replica.load_sequence_model`).

Cost: every neighbour of a step goes through the decoder as one batch; a latent decoded before
in this process (by another comm node of the same container, which accepts the same senders)
is remembered by its bytes, so each sender's latent is decoded once per process and step
(bench/bench_neighbour_views.py). The one latent the first node of a container to step cannot
have received is its own: the other nodes deliver it as a neighbour. So a node that decodes
anyway adds its own last message (`coming`: z and the h its receivers rebuild, the keyframe
sender's mirror) to its batch when other nodes share the memo; they then find it there
instead of running the decoder on a batch of one, which costs about twice a batch row (the
decoder's dense first layer is read once per batch). A latent the decoder refuses (malformed
or non-finite; the inbox drops such messages before, so this only catches what gets past it)
is dropped and counted.

The comm nodes of a container that step on the same tick hand their requests to one
``ViewBatcher`` (``call_common.batching``, as the world-model nodes' observe steps and the
planners' look-aheads): its flush decodes what none of them finds in the memo as ONE batch,
instead of one batch per node that has something new (each batch reads the decoder's dense
first layer once more). A lone node decodes at once. The coming latents ride along only when
some node of the process is not in the batch: with every node in it, what they ask for is
already in the batch, and a coming latent nobody asked for would be a wasted row.
"""
from collections import OrderedDict
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable, List, Optional, Sequence, Tuple
import weakref

from call_common.batching import Batcher
from call_common.msg_conversions import pack_mask
import numpy as np
import torch

# Entry-point group of view decoders: `name = module:function`, function(path) -> decoder;
# decoder(latents, channels, threshold) -> object with masks, kept, dropped, and .model.cfg.
VIEW_DECODERS = 'call_comm.view_decoders'


def load_view_decoder(path: str) -> Callable:
    """Load the world-model package's decoder bound to the checkpoint (errors propagate)."""
    loaders = sorted(entry_points(group=VIEW_DECODERS), key=lambda e: e.name)
    if not loaders:
        raise ValueError(f'neighbour views need a view decoder (entry point group '
                         f'{VIEW_DECODERS!r}); is call_world_model installed?')
    return loaders[0].load()(path)


class ViewDecoder:
    """Accepted neighbours' (z, h) -> bit-packed vehicle masks, one decoder batch per step."""

    MEMO_SIZE = 256
    _memos: 'weakref.WeakKeyDictionary[Any, OrderedDict]' = weakref.WeakKeyDictionary()
    _members: 'weakref.WeakKeyDictionary[Any, int]' = weakref.WeakKeyDictionary()

    def __init__(self, decoder: Callable, channels: Sequence[int], threshold: float,
                 num_threads: int = 1) -> None:
        """
        Bind the decoder, the decoded channels that hold vehicles and the threshold.

        The torch thread count is fixed (as the replica's): a convolution's float rounding
        depends on it, and a pixel at the threshold must fall the same way as in the
        ROS-free pipeline.
        """
        if not 0.0 < threshold < 1.0:
            raise ValueError(f'neighbour_view_threshold must be in (0, 1), got {threshold}')
        torch.set_num_threads(int(num_threads))
        self.decoder = decoder
        self.channels = tuple(int(c) for c in channels)
        self.threshold = float(threshold)
        self.size = int(decoder.model.cfg.bev_size)
        self.memo = ViewDecoder._memos.setdefault(decoder.model, OrderedDict())
        self.model = decoder.model
        ViewDecoder._members[self.model] = ViewDecoder._members.get(self.model, 0) + 1
        weakref.finalize(self, ViewDecoder._leave, weakref.ref(self.model))
        self.dropped = 0   # cumulative: latents the decoder refused
        self.decoded = 0   # cumulative: latents that went through the decoder
        self.memo_hits = 0
        self.prefetched = 0  # cumulative: `coming` latents decoded for the other nodes

    @staticmethod
    def _leave(model_ref: 'weakref.ref') -> None:
        """One ViewDecoder of the model is gone: it no longer asks for `coming` latents."""
        model = model_ref()
        if model is not None and ViewDecoder._members.get(model, 0) > 0:
            ViewDecoder._members[model] -= 1

    def _key(self, z: np.ndarray, h: np.ndarray) -> tuple:
        return (np.asarray(z).tobytes(), np.asarray(h, np.float32).tobytes(),
                self.channels, self.threshold)

    def views(self, latents: Sequence[Tuple[np.ndarray, np.ndarray]],
              coming: Sequence[Tuple[np.ndarray, np.ndarray]] = ()) -> List[Optional[bytes]]:
        """
        Packed mask per (z_indices, h), None where there is none.

        An empty h (a replica not yet synchronised) has no view and is not counted as dropped;
        anything else the decoder refuses is. ``coming``: latents other nodes of this process
        will ask for this step (module doc); decoded in the same batch, only into the memo,
        when this call decodes anyway and another ViewDecoder shares the memo.
        """
        return decode_together([ViewRequest(self, latents, coming)])[0]


@dataclass
class ViewRequest:
    """One comm node's step: its delivered neighbours' (z, h) and its own coming latent."""

    views: ViewDecoder
    latents: Sequence[Tuple[np.ndarray, np.ndarray]]
    coming: Sequence[Tuple[np.ndarray, np.ndarray]] = ()


def decode_together(requests: Sequence[ViewRequest]) -> List[List[Optional[bytes]]]:
    """
    Each request's packed masks (as ``ViewDecoder.views``), with one decoder batch in all.

    Requests of ViewDecoders on one model (one container) share the memo; a latent that
    several requests ask for is decoded once, counted as decoded by the first that asked and
    as a memo hit by the others, as if they had stepped one after the other. Refused latents
    are counted as dropped by every request that asked. Each row of the decoder depends only
    on its own latent (``test_view_decoding``), so the masks equal those of the requests
    decoded one by one.
    """
    outs: List[List[Optional[bytes]]] = [[None] * len(r.latents) for r in requests]
    groups: 'OrderedDict[tuple, List[int]]' = OrderedDict()
    for index, request in enumerate(requests):
        views = request.views
        groups.setdefault((id(views.model), views.channels, views.threshold), []).append(index)
    for members in groups.values():
        _decode_group([requests[i] for i in members], [outs[i] for i in members])
    return outs


def _decode_group(requests: Sequence[ViewRequest], outs: List[List[Optional[bytes]]]) -> None:
    """``decode_together`` for requests with one model, channels and threshold."""
    first = requests[0].views
    memo = first.memo
    wanted: 'OrderedDict[tuple, Tuple[Tuple[np.ndarray, np.ndarray], list]]' = OrderedDict()
    for r, request in enumerate(requests):
        for i, (z, h) in enumerate(request.latents):
            if len(h) == 0:
                continue
            key = first._key(z, h)
            known = memo.get(key)
            if known is not None:
                memo.move_to_end(key)
                request.views.memo_hits += 1
                outs[r][i] = known
            elif key in wanted:
                wanted[key][1].append((r, i))
            else:
                wanted[key] = ((z, h), [(r, i)])
    if not wanted:
        return
    keys = list(wanted)
    batch = [wanted[key][0] for key in keys]
    owners: List[Optional[ViewDecoder]] = [None] * len(keys)   # coming rows: whose
    # a coming latent serves a node that steps after this batch; when every node of the
    # process is in it, none is left to ask (a node's next step delivers newer messages)
    if ViewDecoder._members.get(first.model, 0) > len(requests):
        for request in requests:
            for z, h in request.coming:
                key = first._key(z, h)
                if len(h) and key not in memo and key not in keys:
                    batch.append((z, h))
                    keys.append(key)
                    owners.append(request.views)
    result = first.decoder(batch, first.channels, first.threshold)
    masks = dict(zip(result.kept, result.masks))
    for k, key in enumerate(keys):
        mask = masks.get(k)
        packed = pack_mask(mask) if mask is not None else None
        if k < len(wanted):
            for j, (r, i) in enumerate(wanted[key][1]):
                views = requests[r].views
                if packed is None:
                    views.dropped += 1
                else:
                    outs[r][i] = packed
                    if j == 0:
                        views.decoded += 1
                    else:
                        views.memo_hits += 1
        elif packed is not None:
            owners[k].prefetched += 1
        if packed is not None:
            memo[key] = packed
            if len(memo) > ViewDecoder.MEMO_SIZE:
                memo.popitem(last=False)


class ViewBatcher(Batcher):
    """
    The comm nodes' view requests of one process and model, decoded as one batch.

    Deferrable: a step's views go out in its SharedInformation, which the next step reads
    (perception fuses it and the world model observes with it, each waiting for it by stamp;
    the planner's tracks, after the world model's state), never the step's own command; so
    in a container the planners' look-ahead batch, on the way to the step's commands, runs
    first, and the views decode while the simulator steps.
    """

    deferrable = True

    def run(self, requests: Sequence[ViewRequest]) -> List[List[Optional[bytes]]]:
        """Decode ``requests`` with one decoder batch; one list of packed masks each."""
        return decode_together(requests)

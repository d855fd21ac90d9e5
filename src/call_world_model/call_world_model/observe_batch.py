"""
Observe several vehicles' BEVs in one world-model call.

Why: a container runs several vehicles' world-model nodes on one shared model
(``checkpoint.load_shared``). On a CPU a batch-1 observe step is mostly per-operator overhead
and weight reads: observed as one batch of 4, a vehicle costs about 40 % less than alone
(``bench/bench_world_model.py``: 2.5 vs 4.2 ms, 1 thread). The nodes hand their steps to the
:class:`ObserveBatcher` of their model, and the container runs them together once the BEVs
already waiting in its executor have been handed in.

A batch of one is exactly ``WorldModel.observe_step``; larger batches give the same posterior up
to float rounding (different kernel blocking), which ``test_observe_batch`` bounds.
"""
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

from call_common.batching import Batcher
from call_world_model.prediction import PredictionErrorTracker, update_together
from call_world_model.rssm import State
from call_world_model.shared_pooling import SharedBatch
from call_world_model.world_model import WorldModel
import numpy as np
import torch


@dataclass
class ObserveRequest:
    """One vehicle's observe step: batch-1 tensors as ``WorldModel.observe_step`` takes them."""

    state: Optional[State]              # previous posterior (batch 1); None: episode start
    prev_action: int
    bev: torch.Tensor                   # (1, C, S, S) uint8 or float
    shared: Optional[SharedBatch] = None       # leading (1,); None: no neighbours
    intention: Optional[torch.Tensor] = None   # (1, P, 2); None: no plan
    # the vehicle's prediction-error tracker, updated with the new posterior in the same batch
    tracker: Optional[PredictionErrorTracker] = None
    plan_xy: Optional[np.ndarray] = None       # its update's current plan (M, 2), map frame


def observe_together(model: WorldModel, requests: Sequence[ObserveRequest],
                     sample: bool = True) -> List[State]:
    """Run the posterior steps of ``requests`` as one batch; returns one batch-1 post each."""
    if not requests:
        return []
    if len(requests) == 1:
        one = requests[0]
        post, _ = model.observe_step(
            one.state, torch.tensor([one.prev_action]), one.bev, torch.tensor([one.state is None]),
            one.shared, one.intention, sample=sample, with_prior=False)
        return [post]
    batch = len(requests)
    # the initial state (a prior step of its own) only where a vehicle starts an episode
    initial = model.initial_state(1) if any(r.state is None for r in requests) else None
    states = [initial if r.state is None else r.state for r in requests]
    state = {key: torch.cat([s[key] for s in states]) for key in states[0]}
    intention_vec = torch.zeros(batch, model.cfg.intention_dim)
    planned = [i for i, r in enumerate(requests) if r.intention is not None]
    if planned:
        intention_vec[planned] = model.intention_vector(
            torch.cat([requests[i].intention for i in planned]), (len(planned),))
    shared = None
    if any(r.shared is not None for r in requests):
        shared = SharedBatch.concat([r.shared for r in requests], model.cfg)
    bev = torch.cat([r.bev for r in requests]).contiguous(memory_format=torch.channels_last)
    post, _ = model.observe_step(
        state, torch.tensor([r.prev_action for r in requests]), bev,
        torch.tensor([r.state is None for r in requests]), shared, sample=sample,
        with_prior=False, intention_vec=intention_vec)
    return [{key: value[i:i + 1] for key, value in post.items()} for i in range(batch)]


class ObserveBatcher(Batcher):
    """
    Pending observe steps of the nodes that share one model in a process.

    ``flush`` (``call_common.batching.Batcher``) runs the queue as one batch, updates the
    requests' prediction-error trackers as one batch too, and hands each node's ``done`` its
    own (posterior, tracker's (E, ready)); the latter is None without a tracker or for a
    non-finite posterior.
    """

    def __init__(self, model: WorldModel, sample: bool = True) -> None:
        """Batch steps of ``model`` (sampled posteriors unless ``sample`` is False)."""
        super().__init__()
        self.model = model
        self.sample = sample

    @classmethod
    def create(cls, model: WorldModel, sample: bool = True) -> 'ObserveBatcher':
        """Make the batcher of ``model``'s observe steps."""
        return cls(model, sample)

    @classmethod
    def for_model(cls, model: WorldModel, sample: bool = True) -> 'ObserveBatcher':
        """Return the process's batcher of ``model`` (one per model object and ``sample``)."""
        batcher = super().for_model(model, sample)
        if batcher.sample != sample:
            raise ValueError('the nodes sharing a model must agree on sample_posterior')
        return batcher

    def run(self, requests: Sequence[ObserveRequest]
            ) -> List[Tuple[State, Optional[Tuple[float, bool]]]]:
        """Observe ``requests`` as one batch; one (posterior, tracked or None) each."""
        with torch.inference_mode():
            posts = observe_together(self.model, requests, sample=self.sample)
            tracked = [i for i, (r, post) in enumerate(zip(requests, posts))
                       if r.tracker is not None and finite(post)]
            results = dict(zip(tracked, update_together(
                [(requests[i].tracker, posts[i], requests[i].prev_action, requests[i].plan_xy)
                 for i in tracked])))
        return [(post, results.get(index)) for index, post in enumerate(posts)]

    def deliver(self, done: Callable[[State, Optional[Tuple[float, bool]]], None],
                outcome: Tuple[State, Optional[Tuple[float, bool]]]) -> None:
        """Call ``done(posterior, tracked)``."""
        done(*outcome)


def finite(state: State) -> bool:
    """Tell whether every tensor of the state is free of NaN and inf (else the node resets)."""
    return all(bool(torch.isfinite(v).all()) for v in state.values())

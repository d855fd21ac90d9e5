"""
Work that the nodes of one process hand to one shared model, run as one batch per tick.

Why: a container's vehicle nodes share one model (``checkpoint.load_shared``), and on a CPU
a small batch is mostly per-operator overhead. The world-model nodes batch their observe
steps (``call_world_model.observe_batch``), the planners their look-aheads
(``call_planner.lookahead_batch``). A :class:`Batcher` holds the queued items of the nodes
sharing one model; each node's ``BatchTimer`` arms a zero-period steady-clock timer when
its item opens a batch (``call_common.batch_timer``). That timer event lands behind the
messages already waiting in the executor, so the items those messages bring run together. A
lone node runs its item at once. This module is ROS-free: core modules that training code
imports subclass :class:`Batcher`.
"""
from abc import ABC, abstractmethod
from typing import Any, Callable, Dict, List, Sequence, Tuple
import weakref

Done = Callable[..., None]      # gets the item's outcome (see Batcher.deliver)


class Batcher(ABC):
    """
    Pending items of the nodes that share one model; ``run`` computes a batch's outcomes.

    ``submit`` queues an item and says whether it opened a new batch (the caller then
    schedules ``flush``); ``flush`` runs the queue as one batch and hands each item's
    ``done`` its own outcome.
    """

    def __init__(self) -> None:
        """Start with no members and an empty queue."""
        self.members = 0
        self.pending: List[Tuple[Any, Done]] = []
        self.stats: Dict[str, int] = {'batches': 0, 'items': 0, 'largest': 0}

    @classmethod
    def for_model(cls, model: Any, *args: Any) -> 'Batcher':
        """
        Return the process's batcher of ``model`` (one per model object and subclass).

        The nodes that share a model object find the same batcher through it; it is made by
        ``cls.create(model, *args)`` the first time and goes when the model does.
        """
        registry = cls.__dict__.get('_by_model')
        if registry is None:
            registry = weakref.WeakKeyDictionary()
            cls._by_model = registry
        batcher = registry.get(model)
        if batcher is None:
            batcher = registry[model] = cls.create(model, *args)
        return batcher

    @classmethod
    def create(cls, model: Any, *args: Any) -> 'Batcher':
        """Make the batcher of ``model`` (subclasses that keep the model override this)."""
        return cls()

    @abstractmethod
    def run(self, requests: Sequence[Any]) -> Sequence[Any]:
        """Return one outcome per request (subclasses compute them as one batch)."""

    def join(self) -> None:
        """Count one more node using this batcher (a lone node needs no batching)."""
        self.members += 1

    def leave(self) -> None:
        """Count one node less."""
        self.members = max(0, self.members - 1)

    def submit(self, request: Any, done: Done) -> bool:
        """Queue one item; True if the queue was empty (schedule a ``flush``)."""
        self.pending.append((request, done))
        return len(self.pending) == 1

    def flush(self) -> int:
        """Run every queued item as one batch, then call each ``done``; returns the size."""
        pending, self.pending = self.pending, []
        if not pending:
            return 0
        outcomes = self.run([request for request, _ in pending])
        self.stats['batches'] += 1
        self.stats['items'] += len(pending)
        self.stats['largest'] = max(self.stats['largest'], len(pending))
        for (_, done), outcome in zip(pending, outcomes):
            self.deliver(done, outcome)
        return len(pending)

    def deliver(self, done: Done, outcome: Any) -> None:
        """Hand one item its outcome (subclasses may spread a tuple over arguments)."""
        done(outcome)

    def mean(self) -> str:
        """Items per batch so far, for diagnostics ('1.00': not batched)."""
        batches = self.stats['batches']
        return f"{self.stats['items'] / batches:.2f}" if batches else '1.00'

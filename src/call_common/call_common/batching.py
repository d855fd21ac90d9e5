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

Order within a tick: a lockstep simulator steps once every vehicle has sent its command, so a
tick lasts the step plus the slowest container's path to its last command. A batcher whose
outcomes are first read at the next step (``deferrable``: the comm nodes' neighbour views,
which perception fuses at t + 1 and waits for by stamp) lets the batches on the way to this
step's commands run first when its flush comes due while one of them waits
(:meth:`Batcher.flush_when_due`); it runs right after them, while the simulator steps. Only
when a batch runs moves, never what goes in it: each request carries its inputs, and the
readers match its outcomes to their step by stamp.
"""
from abc import ABC, abstractmethod
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple
import weakref

Done = Callable[..., None]      # gets the item's outcome (see Batcher.deliver)

# every batcher of the process: a deferred batch waits while one of the others holds items
_BATCHERS: 'weakref.WeakSet[Batcher]' = weakref.WeakSet()


class Batcher(ABC):
    """
    Pending items of the nodes that share one model; ``run`` computes a batch's outcomes.

    ``submit`` queues an item and says whether it opened a new batch (the caller then
    schedules ``flush``); ``flush`` runs the queue as one batch and hands each item's
    ``done`` its own outcome.
    """

    # True: the outcomes are first read at the next step, so a flush that comes due while a
    # batch on the way to this step's commands waits runs after that batch (flush_when_due)
    deferrable = False

    def __init__(self) -> None:
        """Start with no members and an empty queue."""
        self.members = 0
        self.pending: List[Tuple[Any, Done]] = []
        self.stats: Dict[str, int] = {'batches': 0, 'items': 0, 'largest': 0}
        self.deferrals = 0      # flushes that came due while the command path's waited
        # set while its flush, come due, waits for the command path's batches: resumes it
        self.deferred: Optional[Callable[[], None]] = None
        _BATCHERS.add(self)

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
        self.deferred = None
        pending, self.pending = self.pending, []
        if not pending:
            return 0
        try:
            outcomes = self.run([request for request, _ in pending])
            self.stats['batches'] += 1
            self.stats['items'] += len(pending)
            self.stats['largest'] = max(self.stats['largest'], len(pending))
            for (_, done), outcome in zip(pending, outcomes):
                self.deliver(done, outcome)
        finally:
            if not self.deferrable:     # its commands are out (or failed): the deferred next
                run_deferred()
        return len(pending)

    def flush_when_due(self, resume: Callable[[], None]) -> int:
        """
        Flush, unless this batcher is deferrable and a command-path batch holds items.

        The flush timer's call. A deferred batch is resumed by the last of those batches'
        flushes (``run_deferred`` calls ``resume``, which re-arms the caller's timer), so
        the commands go out first and the simulator steps while this batch runs; a direct
        ``flush`` (a node stepping again, or leaving) runs at once. Returns the size run now
        (0 when deferred).
        """
        if self.deferrable and self.pending and _command_path_waits():
            if self.deferred is None:
                self.deferrals += 1
            self.deferred = resume
            return 0
        return self.flush()

    def deliver(self, done: Done, outcome: Any) -> None:
        """Hand one item its outcome (subclasses may spread a tuple over arguments)."""
        done(outcome)

    def mean(self) -> str:
        """Items per batch so far, for diagnostics ('1.00': not batched)."""
        batches = self.stats['batches']
        return f"{self.stats['items'] / batches:.2f}" if batches else '1.00'


def _command_path_waits() -> bool:
    """Tell whether a batcher that is not deferrable holds items (of this process)."""
    return any(batcher.pending for batcher in list(_BATCHERS) if not batcher.deferrable)


def run_deferred() -> None:
    """Resume the deferred batches once no command-path batch of the process holds items."""
    if _command_path_waits():
        return
    for batcher in list(_BATCHERS):
        resume, batcher.deferred = batcher.deferred, None
        if resume is not None:
            resume()


def batcher_stats() -> List[Dict[str, Any]]:
    """Each live batcher's class, members and counts (batches, items, deferred flushes)."""
    return [{'batcher': type(b).__name__, 'members': b.members, 'deferrals': b.deferrals,
             **b.stats} for b in list(_BATCHERS)]

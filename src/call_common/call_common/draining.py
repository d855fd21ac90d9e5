"""
Draining subscriptions: one callback takes every sample already waiting, each with its info.

rclpy's executors hand a subscription one sample per dispatch, and the single-threaded
executor rebuilds its Python wait set for every dispatch. A reader flooded with thousands of
samples per second then falls behind, and DDS overwrites the oldest samples of its KEEP_LAST
history (honest ones among them) before the node could look at any. A draining subscription's
callback, after the sample the executor handed it, takes the samples waiting behind it
straight from the subscription handle, up to a bound so that the node's other callbacks still
get their turn. Each drained sample comes with its MessageInfo, so the publisher GID is known
even where the executor cannot hand callbacks the info (rclpy's events executor, used in
containers by `call_bringup.compose`); only the executor's own sample then lacks it.
"""
import inspect
from typing import Any, Callable, Optional

from rclpy.subscription import Subscription


def takes_info(callback: Callable) -> bool:
    """Whether `callback` takes (msg, info) rather than the message alone (rclpy's test)."""
    try:
        inspect.signature(callback).bind(object())
        return False
    except TypeError:
        return True


class Draining:
    """A subscription's callback that also takes up to `limit` waiting samples per dispatch."""

    def __init__(self, subscription: Subscription, deliver: Callable, limit: int) -> None:
        """`deliver(msg, info)` (or `deliver(msg)`) sees every sample; limit >= 0."""
        if limit < 0:
            raise ValueError(f'drain limit must be >= 0, got {limit}')
        self.subscription = subscription
        self.deliver = deliver
        self.limit = int(limit)
        self._with_info = takes_info(deliver)
        self.drained = 0            # samples taken here rather than by the executor

    def _hand(self, msg: Any, info: Optional[dict]) -> None:
        if self._with_info:
            self.deliver(msg, info)
        else:
            self.deliver(msg)

    def with_info(self, msg: Any, info: Optional[dict]) -> None:
        """Executor callback where the executor hands the info (rclpy >= Iron's own executors)."""
        self._hand(msg, info)
        self.drain()

    def message_only(self, msg: Any) -> None:
        """Executor callback where it cannot (Humble; `compose.without_message_info`)."""
        self._hand(msg, None)
        self.drain()

    def drain(self) -> int:
        """Take and deliver the samples waiting now (at most `limit`); how many."""
        sub = self.subscription
        for count in range(self.limit):
            with sub.handle:
                taken = sub.handle.take_message(sub.msg_type, sub.raw)
            if taken is None:
                return count
            self.drained += 1
            msg, info = taken
            self._hand(msg, info)
        return self.limit


def drain(subscription: Subscription, limit: int,
          deliver: Optional[Callable] = None) -> Draining:
    """
    Make `subscription` draining: its callback (or `deliver`) then sees the waiting samples too.

    Installs the executor callback in the form rclpy can serve (with the info where the
    distribution's Subscription has callback types). Returns the `Draining`, which
    `call_bringup.compose` finds again as the callback's `__self__` when it merges
    subscriptions.
    """
    draining = Draining(subscription, deliver or subscription.callback, limit)
    if hasattr(Subscription, 'CallbackType'):
        subscription.callback = draining.with_info
    else:  # pragma: no cover - Humble
        subscription.callback = draining.message_only
    return draining


def draining_of(callback: Callable) -> Optional[Draining]:
    """Return the `Draining` whose executor callback `callback` is, or None."""
    owner = getattr(callback, '__self__', None)
    return owner if isinstance(owner, Draining) else None

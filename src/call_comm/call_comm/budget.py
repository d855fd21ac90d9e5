"""
Per-sender token buckets, refilled per ego step: what a peer may make a receiver work on.

Signature verification is the expensive part of receiving; a peer that floods the channel
must not get more of it than an honest vehicle needs (one message per step, plus jitter).
A bucket is keyed by what the receiver can tell apart before any cryptography: the DDS writer
the sample came from and the sender it claims to be. A forger flooding under an honest
vehicle's key id then drains its own writer's bucket, not the honest writer's. Buckets refill
on the ego's steps (simulation time), so a simulation running faster than real time gives
every peer the same budget per step.
"""
from collections import OrderedDict
from typing import Hashable


class TokenBuckets:
    """Token buckets by key: `burst` tokens at most, `refill` tokens added per ego step."""

    def __init__(self, burst: float, refill: float, max_keys: int = 256) -> None:
        """Fail fast on nonsense numbers; `max_keys` bounds memory (least recent forgotten)."""
        if not burst >= 1.0 or not refill >= 0.0 or max_keys < 1:
            raise ValueError(f'token bucket needs burst >= 1, refill >= 0, max_keys >= 1; got '
                             f'{burst}, {refill}, {max_keys}')
        self.burst = float(burst)
        self.refill = float(refill)
        self.max_keys = max_keys
        self._step = 0
        self._tokens: 'OrderedDict[Hashable, tuple]' = OrderedDict()   # key -> (tokens, step)

    def step(self) -> None:
        """One ego step passed: every bucket gains `refill` tokens (lazily, on next use)."""
        self._step += 1

    def take(self, key: Hashable) -> bool:
        """Spend one token of `key`'s bucket; False (and nothing spent) when it is empty."""
        tokens, since = self._tokens.pop(key, (self.burst, self._step))
        tokens = min(self.burst, tokens + (self._step - since) * self.refill)
        allowed = tokens >= 1.0
        self._tokens[key] = (tokens - 1.0 if allowed else tokens, self._step)
        while len(self._tokens) > self.max_keys:
            self._tokens.popitem(last=False)
        return allowed

"""
Prediction-accuracy-driven communication range (paper section 3.3, App. G).

Each step the ego compares its prediction error E over the last K steps with the threshold c:
if E > c the communication range grows by one step (5 m in the paper) up to a maximum,
otherwise it is kept. An optional decay pulls the range back toward its initial value on quiet
steps; it is off by default because the paper only ever grows the range.

The two limits are explicit rather than numerical accidents: c = 0 means "share everything"
(infinite range, every sender is a neighbour) and c = inf means "never communicate" (range 0,
nobody is a neighbour).
"""
import math
from typing import Optional


def check_c(c: float) -> None:
    """Reject a threshold c that is NaN or negative (ValueError with the reason)."""
    if math.isnan(c) or c < 0.0:
        raise ValueError(f'threshold c must be >= 0 (inf allowed), got {c}')


class RangeGate:
    """Communication range driven by the ego's prediction error."""

    def __init__(self, initial_range: float, range_step: float = 5.0, max_range: float = 100.0,
                 c: float = 50.0, decay: Optional[float] = None) -> None:
        """Validate the configuration; a bad gate configuration fails fast."""
        for name, value in (('initial_range', initial_range), ('range_step', range_step),
                            ('max_range', max_range)):
            if not math.isfinite(value) or value < 0.0:
                raise ValueError(f'{name} must be finite and >= 0, got {value}')
        if initial_range > max_range:
            raise ValueError(f'initial_range {initial_range} exceeds max_range {max_range}')
        check_c(c)
        if decay is not None and (not math.isfinite(decay) or decay < 0.0):
            raise ValueError(f'decay must be None or finite and >= 0, got {decay}')
        self.initial_range = float(initial_range)
        self.range_step = float(range_step)
        self.max_range = float(max_range)
        self.c = float(c)             # the paper's prediction-error threshold
        self.decay = decay
        self._range = self.initial_range
        self.last_error = math.nan
        self.last_above = False

    @property
    def shares_everything(self) -> bool:
        """C = 0: every sender is in range whatever its distance."""
        return self.c == 0.0

    @property
    def shares_nothing(self) -> bool:
        """C = inf: the ego never communicates."""
        return math.isinf(self.c)

    @property
    def comm_range(self) -> float:
        """Return the current communication range [m]: inf for c = 0, 0 for c = inf."""
        if self.shares_everything:
            return math.inf
        if self.shares_nothing:
            return 0.0
        return self._range

    def set_c(self, c: float) -> None:
        """Take a new c from the next step on (users tune c on a running vehicle)."""
        check_c(c)
        self.c = float(c)

    def update(self, error: float) -> float:
        """
        Apply one step's prediction error E and return the range to gate with.

        A non-finite E (world model not warmed up or faulted) never grows the range.
        """
        self.last_error = float(error)
        self.last_above = math.isfinite(error) and error > self.c
        if self.last_above:
            self._range = min(self._range + self.range_step, self.max_range)
        elif self.decay is not None:
            self._range = max(self._range - self.decay, self.initial_range)
        return self.comm_range

    def reset(self) -> None:
        """Return to the initial range (new episode)."""
        self._range = self.initial_range
        self.last_error = math.nan
        self.last_above = False

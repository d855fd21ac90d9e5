"""The paper's discrete action set (App. E.1): acceleration x normalised steer command."""
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class ActionSet:
    """Accelerations (m/s^2) x steers in [-1, 1]; index = accel_i * len(steers) + steer_i."""

    accels: tuple[float, ...] = (-2.0, 0.0, 2.0)
    steers: tuple[float, ...] = (-0.6, -0.2, 0.0, 0.2, 0.6)

    def __post_init__(self) -> None:  # noqa: D105
        if not self.accels or not self.steers:
            raise ValueError('ActionSet needs at least one acceleration and one steer value')
        if any(abs(s) > 1.0 for s in self.steers):
            raise ValueError(f'steer commands must lie in [-1, 1], got {self.steers}')

    def __len__(self) -> int:  # noqa: D105
        return len(self.accels) * len(self.steers)

    def action(self, index: int) -> tuple[float, float]:
        """Return (accel, steer) of a discrete action index."""
        if not 0 <= index < len(self):
            raise IndexError(f'action index {index} outside [0, {len(self)})')
        accel_i, steer_i = divmod(int(index), len(self.steers))
        return self.accels[accel_i], self.steers[steer_i]

    def index(self, accel: float, steer: float) -> int:
        """Return the index of the action nearest to (accel, steer)."""
        accel_i = min(range(len(self.accels)), key=lambda i: abs(self.accels[i] - accel))
        steer_i = min(range(len(self.steers)), key=lambda i: abs(self.steers[i] - steer))
        return accel_i * len(self.steers) + steer_i

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> 'ActionSet':
        """Build from a mapping with optional `accels` and `steers` lists."""
        defaults = cls()
        return cls(accels=tuple(float(a) for a in config.get('accels', defaults.accels)),
                   steers=tuple(float(s) for s in config.get('steers', defaults.steers)))

"""
Synchronous lockstep bookkeeping of the ROS node (ROS-free, so it is testable on its own).

A tick is due once every CALL vehicle has sent a command since the last step, or once
`timeout` seconds of wall time have passed since the tick opened; the latter is a missed tick
and the silent roles are remembered. The simulator therefore never hangs on a dead controller.
"""
from dataclasses import dataclass, field


@dataclass
class Lockstep:
    """Which roles have commanded in the open tick, and how many ticks were missed."""

    roles: list[str]
    timeout: float
    opened_at: float = 0.0
    commanded: set[str] = field(default_factory=set)
    missed_ticks: int = 0
    last_missing: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:  # noqa: D105
        if self.timeout <= 0.0:
            raise ValueError(f'lockstep timeout must be positive, got {self.timeout}')

    def open_tick(self, now: float, roles: list[str] | None = None) -> None:
        """Start a new tick at wall time `now` (optionally with a new set of live roles)."""
        if roles is not None:
            self.roles = list(roles)
        self.opened_at = now
        self.commanded = set()

    def command(self, role: str) -> None:
        """Record that `role` commanded in the open tick (unknown roles are ignored)."""
        if role in self.roles:
            self.commanded.add(role)

    def due(self, now: float) -> bool:
        """Whether the tick should run now; counts a missed tick when it is the timeout."""
        if all(role in self.commanded for role in self.roles):
            self.last_missing = []
            return True
        if now - self.opened_at >= self.timeout:
            self.missed_ticks += 1
            self.last_missing = sorted(set(self.roles) - self.commanded)
            return True
        return False

"""
Synchronous lockstep bookkeeping of the ROS node (ROS-free, so it is testable on its own).

A tick is due once every CALL vehicle has answered the published step, or once `timeout`
seconds of wall time have passed since the tick opened; the latter is a missed tick and the
silent roles are remembered. The simulator therefore never hangs on a dead controller.

A command answers the open step when its stamp equals the step's simulation time. A command
stamped for an older step (a pipeline that fell behind, or a controlled stop for a stale
state) is still applied by the caller but does not complete the tick: otherwise the
simulator would run ahead of the pipelines and planned commands would arrive for old states.
An unstamped command (stamp 0) always counts, so external controllers that do not stamp
(e.g. a manual-control tool) can drive the lockstep. No step may therefore be stamped 0 (the
simulator's clock starts at `start_time` > 0): the re-sent first step draws late copies of
its answer, and stamped 0 one of them would answer the next tick with the old command.

Start-up: loading a world model takes seconds, so a role that has not sent any command yet
holds the tick for up to `startup_timeout` seconds after the first tick opened (0 = no hold)
instead of `timeout`; otherwise the first ticks would be missed while the nodes load.
"""
from dataclasses import dataclass, field

UNSTAMPED = 0


@dataclass
class Lockstep:
    """Which roles have answered the open tick, and how many ticks were missed."""

    roles: list[str]
    timeout: float
    opened_at: float = 0.0
    stamp: int = 0                   # [ns] simulation time of the step the open tick answers
    commanded: set[str] = field(default_factory=set)
    missed_ticks: int = 0
    stale_commands: int = 0          # commands stamped for another step (applied, not counted)
    last_missing: list[str] = field(default_factory=list)
    startup_timeout: float = 0.0     # [s] hold for roles never heard, from the first tick
    heard: set[str] = field(default_factory=set)
    started_at: float | None = None

    def __post_init__(self) -> None:  # noqa: D105
        if self.timeout <= 0.0:
            raise ValueError(f'lockstep timeout must be positive, got {self.timeout}')
        if self.startup_timeout < 0.0:
            raise ValueError(f'startup timeout must be >= 0, got {self.startup_timeout}')

    def open_tick(self, now: float, roles: list[str] | None = None,
                  stamp: int | None = None) -> None:
        """Start a new tick at wall time `now` (optionally new live roles and step stamp)."""
        if roles is not None:
            self.roles = list(roles)
        if stamp is not None:
            self.stamp = int(stamp)
        self.opened_at = now
        if self.started_at is None:
            self.started_at = now
        self.commanded = set()

    def command(self, role: str, stamp: int = UNSTAMPED) -> bool:
        """
        Record a command of `role` stamped `stamp` [ns]; return whether it answers the tick.

        Unknown roles are ignored; stamps of other steps are counted as stale.
        """
        if role not in self.roles:
            return False
        self.heard.add(role)
        if stamp not in (self.stamp, UNSTAMPED):
            self.stale_commands += 1
            return False
        self.commanded.add(role)
        return True

    def due(self, now: float) -> bool:
        """Whether the tick should run now; counts a missed tick when it is the timeout."""
        missing = set(self.roles) - self.commanded
        if not missing:
            self.last_missing = []
            return True
        starting = self.started_at is not None and now - self.started_at < self.startup_timeout
        if starting and missing - self.heard:
            return False
        if now - self.opened_at >= self.timeout:
            self.missed_ticks += 1
            self.last_missing = sorted(missing)
            return True
        return False

"""
What sharing did at one simulation step, per CALL vehicle (ROS-free).

The live line, the GIF and the Foxglove scene all show the same four facts per vehicle:
its communication range, the neighbours it heard (accepted latents, call_comm's CommStats),
the vehicles that sharing added to its BEV (neighbours it does not see itself, call_perception's
`shared_only` count, whichever fusion produced them) and its prediction error E against c.
`StepViews` collects them by simulation step from whichever source reports first.
"""
from dataclasses import dataclass, field
import math
from typing import Optional


@dataclass
class VehicleView:
    """One vehicle at one step; None where its source has not reported yet."""

    comm_range: Optional[float] = None   # [m]; inf: c = 0 shares with everyone
    heard: tuple = ()                    # role names of the accepted senders
    added: Optional[int] = None          # vehicles in the BEV known only through sharing
    error: Optional[float] = None        # prediction error E over the last K steps
    threshold: Optional[float] = None    # c
    bytes_received: Optional[int] = None


def _key(stamp: float) -> float:
    return round(stamp, 3)


@dataclass
class StepViews:
    """VehicleView per (step, role), filled from CommStats and perception reports."""

    roles: list
    keep_steps: int = 50
    _steps: dict = field(default_factory=dict)

    def view(self, stamp: float, role: str) -> VehicleView:
        """Return the (possibly still empty) view of `role` at `stamp`."""
        step = self._steps.setdefault(_key(stamp), {})
        if len(self._steps) > self.keep_steps:
            del self._steps[min(self._steps)]
        return step.setdefault(role, VehicleView())

    def add_comm(self, stamp: float, role: str, comm_range: float, heard, error: float,
                 threshold: float, bytes_received: int) -> None:
        """One CommStats of `role` (its neighbours, range, E, c) at sim time `stamp`."""
        view = self.view(stamp, role)
        view.comm_range, view.heard = float(comm_range), tuple(heard)
        view.error, view.threshold = float(error), float(threshold)
        view.bytes_received = int(bytes_received)

    def add_shared_only(self, stamp: float, role: str, count: int) -> None:
        """How many vehicles sharing added to `role`'s BEV at `stamp` (perception)."""
        self.view(stamp, role).added = int(count)

    def at(self, stamp: float) -> dict:
        """{role: VehicleView} of one step (missing roles are empty views)."""
        step = self._steps.get(_key(stamp), {})
        return {role: step.get(role, VehicleView()) for role in self.roles}

    def links(self, stamp: float) -> list:
        """(sender, receiver) pairs of the latents accepted at `stamp`."""
        return [(sender, role) for role, view in self.at(stamp).items() for sender in view.heard]


def _number(value: Optional[float], unit: str = '') -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '-'
    if math.isinf(value):
        return 'inf'
    return f'{value:.0f}{unit}'


def format_views(views: dict) -> str:
    """`ranges 25/20/.. m  hears 1/0/..  +BEV 1/0/..  E>c 1/0/..` in role order."""
    roles = list(views)

    def column(text) -> str:
        return '/'.join(text(views[r]) for r in roles)

    def above(view: VehicleView) -> str:
        return '-' if view.error is None else str(int(view.error > view.threshold))
    return (f'ranges {column(lambda v: _number(v.comm_range))} m  '
            f'hears {column(lambda v: "-" if v.comm_range is None else str(len(v.heard)))}  '
            f'+BEV {column(lambda v: "-" if v.added is None else str(v.added))}  '
            f'E>c {column(above)}')

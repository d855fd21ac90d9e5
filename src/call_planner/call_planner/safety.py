"""
Safety fallback: detect stale inputs and invalid model states, and say why we stop.

A planner that keeps commanding from an old or corrupt model state drives blind. The
watchdog tracks, per input, when it last arrived in simulation time and in wall time: sim time
catches a world-model or odometry stream that fell behind a running simulation, wall time
catches a stalled graph in which `/clock` itself stopped (a timer on sim time would never fire
then). Either past its deadline means stale. The caller then commands a controlled stop.
"""
from dataclasses import dataclass, field
import math
from typing import Optional, Sequence

import numpy as np

# stamps converted from (sec, nanosec) to float seconds differ by rounding: ages within 1 us
# of a deadline count as on time
_ROUNDING = 1e-6


@dataclass(frozen=True)
class SafetyConfig:
    """Deadlines and the stop profile (config/planner.yaml)."""

    deadline_sim: float = 0.5     # [s] simulation time without an input before stopping
    deadline_wall: float = 2.0    # [s] wall time without an input before stopping
    comfortable_decel: float = 3.0   # [m/s^2] deceleration of a controlled stop

    def __post_init__(self):
        """Fail fast on deadlines or decelerations that make no sense."""
        for name in ('deadline_sim', 'deadline_wall', 'comfortable_decel'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f'{name} must be a positive number, got {value}')


@dataclass
class _Arrival:
    sim: Optional[float] = None
    wall: Optional[float] = None


@dataclass
class InputWatchdog:
    """
    Last-arrival bookkeeping of named inputs against sim-time and wall-time deadlines.

    Inputs that never arrived count as stale from the moment the watchdog was started.
    """

    inputs: Sequence[str]
    config: SafetyConfig
    started_wall: float
    _arrivals: dict = field(default_factory=dict)

    def __post_init__(self):
        """Start every input as never seen."""
        self._arrivals = {name: _Arrival() for name in self.inputs}

    def feed(self, name: str, sim_time: float, wall_time: float) -> None:
        """Record that input `name` arrived (stamped `sim_time`) at `wall_time`."""
        arrival = self._arrivals[name]
        arrival.sim = sim_time
        arrival.wall = wall_time

    def stale_reasons(self, sim_now: Optional[float], wall_now: float) -> list[str]:
        """
        Why inputs are stale now (empty list: all fresh).

        `sim_now` is None when no simulation clock has been seen yet (then only the wall
        deadline applies).
        """
        cfg = self.config
        reasons = []
        for name, arrival in self._arrivals.items():
            if arrival.wall is None:
                age = wall_now - self.started_wall
                if age > cfg.deadline_wall + _ROUNDING:
                    reasons.append(f'{name}: never received ({age:.2f} s wall)')
                continue
            wall_age = wall_now - arrival.wall
            if wall_age > cfg.deadline_wall + _ROUNDING:
                reasons.append(f'{name}: stale {wall_age:.2f} s wall > {cfg.deadline_wall} s')
                continue
            if sim_now is not None and arrival.sim is not None:
                sim_age = sim_now - arrival.sim
                if sim_age > cfg.deadline_sim + _ROUNDING:
                    reasons.append(f'{name}: stale {sim_age:.2f} s sim > {cfg.deadline_sim} s')
        return reasons

    def silent(self, name: str, wall_now: float) -> bool:
        """
        Whether input `name` has been silent past the wall-time deadline: presumed gone.

        Only an input that arrived at least once can go silent (before that the node is
        starting up, not failing).
        """
        arrival = self._arrivals[name]
        return (arrival.wall is not None
                and wall_now - arrival.wall > self.config.deadline_wall + _ROUNDING)


def model_state_fault(valid: bool, z_indices: np.ndarray, h: np.ndarray, stoch: int,
                      classes: int, deter: int) -> Optional[str]:
    """Why a received model state must not be planned from (None: it is usable)."""
    if not valid:
        return 'model state marked invalid (warming up or faulted)'
    if z_indices.shape != (stoch,):
        return f'z has {z_indices.size} latents, expected {stoch}'
    if z_indices.size and int(z_indices.max()) >= classes:
        return f'z index {int(z_indices.max())} out of range [0, {classes})'
    if h.shape != (deter,):
        return f'h has {h.size} values, expected {deter}'
    if not np.all(np.isfinite(h)):
        return 'h contains NaN or infinite values'
    return None

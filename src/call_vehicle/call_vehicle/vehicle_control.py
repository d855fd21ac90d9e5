"""
Explicit mapping between (accel m/s^2, steer, speed) and CARLA controls (throttle, steer, brake).

The same longitudinal model drives the embedded simulator, so a command computed here yields
exactly the requested acceleration there; against CARLA it is the planner's best linear guess.

    a = throttle * max_throttle_accel - brake * max_brake_decel - resistance(speed)
    resistance(v) = rolling_resistance + drag_coefficient * v^2   (v > 0, else 0)

`to_control` inverts this (throttle when the net force is positive, brake otherwise), so the
round trip is exact whenever the request is inside the actuator limits.
"""
from dataclasses import dataclass, replace
import math
from typing import Any, Mapping


@dataclass(frozen=True)
class VehicleControl:
    """CARLA-style command (as carla_msgs/CarlaEgoVehicleControl): throttle, steer, brake."""

    throttle: float = 0.0
    steer: float = 0.0
    brake: float = 0.0
    hand_brake: bool = False
    reverse: bool = False


@dataclass(frozen=True)
class ControlModel:
    """Longitudinal actuator limits and road resistance of a CALL vehicle."""

    max_throttle_accel: float = 3.0
    max_brake_decel: float = 8.0
    rolling_resistance: float = 0.05
    drag_coefficient: float = 0.0005

    def __post_init__(self) -> None:
        if self.max_throttle_accel <= 0.0 or self.max_brake_decel <= 0.0:
            raise ValueError('max_throttle_accel and max_brake_decel must be positive')
        if self.rolling_resistance < 0.0 or self.drag_coefficient < 0.0:
            raise ValueError('resistance coefficients must be non-negative')

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> 'ControlModel':
        """Build from a mapping of field names (missing ones keep their defaults)."""
        return cls(**{k: float(v) for k, v in config.items()})

    def resistance(self, speed: float) -> float:
        """Deceleration (m/s^2) from rolling resistance and drag at `speed` (none at rest)."""
        if speed <= 0.0:
            return 0.0
        return self.rolling_resistance + self.drag_coefficient * speed * speed

    def to_control(self, accel: float, steer: float, speed: float) -> VehicleControl:
        """CARLA control that produces `accel` at `speed`; saturates at the actuator limits."""
        net = accel + self.resistance(speed)
        steer = min(max(steer, -1.0), 1.0)
        if net >= 0.0:
            return VehicleControl(throttle=min(net / self.max_throttle_accel, 1.0), steer=steer)
        return VehicleControl(brake=min(-net / self.max_brake_decel, 1.0), steer=steer)

    def to_accel(self, control: VehicleControl, speed: float) -> tuple[float, float]:
        """(accel, steer) that a valid CARLA control produces at `speed`."""
        brake = 1.0 if control.hand_brake else control.brake
        accel = (control.throttle * self.max_throttle_accel - brake * self.max_brake_decel
                 - self.resistance(speed))
        return accel, control.steer


def sanitize(control: VehicleControl) -> tuple[VehicleControl | None, list[str]]:
    """
    Validate a received command: reject non-finite values, clamp out-of-range ones.

    Returns (control or None if rejected, reasons); an empty reason list means it was valid.
    """
    values = {'throttle': control.throttle, 'steer': control.steer, 'brake': control.brake}
    bad = [name for name, v in values.items() if not math.isfinite(v)]
    if bad:
        return None, [f'rejected: non-finite {", ".join(bad)}']
    reasons = []
    limits = {'throttle': (0.0, 1.0), 'steer': (-1.0, 1.0), 'brake': (0.0, 1.0)}
    clamped = {}
    for name, (low, high) in limits.items():
        value = values[name]
        clamped[name] = min(max(value, low), high)
        if clamped[name] != value:
            reasons.append(f'clamped {name} {value:g} to [{low:g}, {high:g}]')
    if control.reverse:
        reasons.append('reverse gear is not simulated: ignored')
    return replace(control, reverse=False, **clamped), reasons

"""
Kinematic bicycle model (reference point = bounding-box centre), shared by sim and planner.

With slip angle beta = atan(l_r / L * tan(delta)) and l_r = L / 2:
    x' = v cos(yaw + beta),  y' = v sin(yaw + beta),  yaw' = v / l_r * sin(beta),  v' = a
integrated over one step with the mean speed and the mid-step yaw. The wheel angle is
delta = steer * max_steer_angle, where steer is the normalised CARLA command in [-1, 1].
Works element-wise on NumPy arrays so the planner can roll out many action sequences at once.
"""
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np


@dataclass(frozen=True)
class BicycleState:
    """Pose and speed of one vehicle (map frame, centre of the bounding box)."""

    x: float
    y: float
    yaw: float
    speed: float


@dataclass(frozen=True)
class BicycleModel:
    """Kinematic bicycle; every number comes from config/vehicle.yaml."""

    wheelbase: float = 2.9
    max_steer_angle: float = 0.5
    max_speed: float = 20.0
    dt: float = 0.1

    def __post_init__(self) -> None:
        if min(self.wheelbase, self.max_steer_angle, self.max_speed, self.dt) <= 0.0:
            raise ValueError(f'bicycle model parameters must be positive: {self}')

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> 'BicycleModel':
        """Build from a mapping holding (a subset of) the field names."""
        return cls(**{k: float(config[k]) for k in
                      ('wheelbase', 'max_steer_angle', 'max_speed', 'dt') if k in config})

    def wheel_angle(self, steer):
        """Front wheel angle (rad) of a normalised steer command."""
        return np.clip(steer, -1.0, 1.0) * self.max_steer_angle

    def step_arrays(self, x, y, yaw, speed, accel, steer):
        """Advance one step; all arguments broadcast as NumPy arrays (or floats)."""
        new_speed = np.clip(speed + accel * self.dt, 0.0, self.max_speed)
        mean_speed = 0.5 * (speed + new_speed)
        beta = np.arctan(0.5 * np.tan(self.wheel_angle(steer)))
        yaw_rate = mean_speed / (0.5 * self.wheelbase) * np.sin(beta)
        heading = yaw + 0.5 * yaw_rate * self.dt + beta
        new_x = x + mean_speed * np.cos(heading) * self.dt
        new_y = y + mean_speed * np.sin(heading) * self.dt
        new_yaw = np.arctan2(np.sin(yaw + yaw_rate * self.dt), np.cos(yaw + yaw_rate * self.dt))
        return new_x, new_y, new_yaw, new_speed

    def rollout_arrays(self, x: float, y: float, yaw: float, speed: float,
                       accel: np.ndarray, steer: np.ndarray) -> np.ndarray:
        """
        `step_arrays` applied K times from one pose to B action sequences (B, K) at once.

        Returns (4, B, K): x, y, yaw, speed after each step, the same floats as K calls of
        `step_arrays`. Why a second form: a planner integrates its 15 candidates (or one kept
        plan) every step, and on arrays that small the cost is NumPy's per-call overhead,
        not arithmetic. Only yaw (wrapped every step) and a clipped speed carry state from step to
        step; the slip angle depends on the steer alone, and the position, and the speed while
        no clip acts, are running sums (`np.cumsum` adds in the loop's order), so those are
        computed for all steps at once.
        """
        accel, steer = np.asarray(accel, np.float64), np.asarray(steer, np.float64)
        batch, horizon = accel.shape
        beta = np.arctan(0.5 * np.tan(self.wheel_angle(steer)))                  # (B, K)
        speeds = np.empty((batch, horizon + 1))
        speeds[:, 0] = speed
        speeds[:, 1:] = accel * self.dt
        # speed: the running sum when no step leaves (0, max_speed] (clipping an in-range
        # value returns it; a zero might be -0.0, which the clip would make +0.0), else the
        # clipped steps one by one
        speeds = np.cumsum(speeds, axis=1)
        if not ((speeds[:, 1:] > 0.0).all() and (speeds[:, 1:] <= self.max_speed).all()):
            for k in range(horizon):
                speeds[:, k + 1] = np.clip(speeds[:, k] + accel[:, k] * self.dt, 0.0,
                                           self.max_speed)
        mean_speed = 0.5 * (speeds[:, :-1] + speeds[:, 1:])
        rates = mean_speed / (0.5 * self.wheelbase) * np.sin(beta)
        turn = rates * self.dt
        yaws = np.empty((batch, horizon + 1))
        yaws[:, 0] = yaw
        for k in range(horizon):
            turned = yaws[:, k] + turn[:, k]
            yaws[:, k + 1] = np.arctan2(np.sin(turned), np.cos(turned))
        heading = yaws[:, :-1] + 0.5 * rates * self.dt + beta
        out = np.empty((4, batch, horizon))
        steps = np.empty((2, batch, horizon + 1))
        steps[0, :, 0], steps[1, :, 0] = x, y
        steps[0, :, 1:] = mean_speed * np.cos(heading) * self.dt
        steps[1, :, 1:] = mean_speed * np.sin(heading) * self.dt
        out[:2] = np.cumsum(steps, axis=2)[:, :, 1:]
        out[2], out[3] = yaws[:, 1:], speeds[:, 1:]
        return out

    def step(self, state: BicycleState, accel: float, steer: float) -> BicycleState:
        """Advance one vehicle by one step."""
        x, y, yaw, speed = self.step_arrays(state.x, state.y, state.yaw, state.speed,
                                            accel, steer)
        return BicycleState(float(x), float(y), float(yaw), float(speed))

    def rollout(self, state: BicycleState,
                actions: Sequence[tuple[float, float]]) -> np.ndarray:
        """Integrate (accel, steer) pairs; returns (K, 4) rows of x, y, yaw, speed."""
        rows = np.empty((len(actions), 4))
        for k, (accel, steer) in enumerate(actions):
            state = self.step(state, accel, steer)
            rows[k] = (state.x, state.y, state.yaw, state.speed)
        return rows

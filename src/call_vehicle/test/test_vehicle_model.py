"""The bicycle model's rollout of many action sequences is its step applied K times."""
from call_vehicle.vehicle_model import BicycleModel
import numpy as np
import pytest


def _stepped(bicycle, x, y, yaw, speed, accel, steer):
    """(4, B, K) from K calls of step_arrays: the definition `rollout_arrays` must match."""
    batch, horizon = accel.shape
    state = tuple(np.full(batch, float(v)) for v in (x, y, yaw, speed))
    out = np.empty((4, batch, horizon))
    for k in range(horizon):
        state = bicycle.step_arrays(*state, accel[:, k], steer[:, k])
        out[:, :, k] = state
    return out


@pytest.mark.parametrize('seed', range(5))
def test_rollout_arrays_gives_the_floats_of_k_steps(seed):
    rng = np.random.default_rng(seed)
    for _ in range(200):
        bicycle = BicycleModel(wheelbase=float(rng.uniform(2.0, 4.0)),
                               max_speed=float(rng.uniform(5.0, 30.0)))
        batch, horizon = int(rng.integers(1, 20)), int(rng.integers(1, 12))
        # speeds that hit 0 and max_speed within the plan, steers beyond the [-1, 1] clip
        accel = rng.choice([-8.0, -2.0, 0.0, 2.0, 8.0] if rng.random() < 0.5 else [-2.0, 0.0, 2.0],
                           (batch, horizon))
        steer = rng.uniform(-1.5, 1.5, (batch, horizon))
        start = (rng.uniform(-500, 500), rng.uniform(-500, 500), rng.uniform(-7, 7),
                 rng.uniform(0.0, 35.0))
        expected = _stepped(bicycle, *start, accel, steer)
        got = bicycle.rollout_arrays(*start, accel, steer)
        assert got.shape == (4, batch, horizon)
        assert got.tobytes() == expected.tobytes()      # bit for bit, signed zeros too

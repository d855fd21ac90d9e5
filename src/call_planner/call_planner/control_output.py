"""
From the chosen (accel, steer) to a CARLA control (throttle, steer, brake).

Uses `call_vehicle.vehicle_control.ControlModel`, the longitudinal model the embedded simulator
integrates, so the simulator realises exactly the planned acceleration; on CARLA the same
command is the linear best guess the bridge accepts (throttle, brake in [0, 1], steer in
[-1, 1]).
"""
from call_vehicle.vehicle_control import ControlModel, VehicleControl


def command_for_action(accel: float, steer: float, speed: float,
                       model: ControlModel) -> VehicleControl:
    """Throttle or brake that yields `accel` [m/s^2] at `speed` [m/s], with `steer`."""
    return model.to_control(accel, steer, max(speed, 0.0))


def stop_command(speed: float, comfortable_decel: float, model: ControlModel) -> VehicleControl:
    """
    Stop in a controlled way: decelerate at `comfortable_decel` with the wheels straight.

    At standstill the same brake holds the vehicle (no resistance to help), so repeating the
    command keeps it stopped.
    """
    if comfortable_decel <= 0.0:
        raise ValueError(f'comfortable_decel must be positive, got {comfortable_decel}')
    return model.to_control(-comfortable_decel, 0.0, max(speed, 0.0))

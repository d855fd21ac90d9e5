"""
A committed merger: a CALL vehicle whose planner's command a scripted driver replaces.

Cut-in tests (Euro NCAP's and ISO's) script the target vehicle's trajectory: it cuts in as
scripted and does not yield. The merger stays a full CALL vehicle (its perception, world
model and comm run; it shares z, h and its intention, and receives); only the command its
planner (and its TTC monitor) decided is replaced, the way the monitor's override replaces
one (`driving_eval.MonitoredFleet.step`): the world model hears the action the vehicle
drives, the kept plan is dropped, and the intention it declares is the bicycle rollout of
the scripted driver's own next K actions, so what it shares is what it does.

The driver: longitudinal, hold the scripted speed; lateral, follow the route (its scripted
lane changes included) with the teacher's pure pursuit (`call_learning.teacher.
pursuit_steer`); both quantised to the nearest of the 15 actions (App. E.1), whose exact
(accel, steer) is what the vehicle executes.
"""
from dataclasses import dataclass
from typing import Any, List

from call_learning.teacher import pursuit_steer, TeacherConfig
from call_vehicle.vehicle_control import VehicleControl
from call_vehicle.vehicle_model import BicycleState


@dataclass(frozen=True)
class CommittedDriver:
    """Hold `speed`, pursue the route: the scripted merger's driver."""

    speed: float                           # [m/s] the scripted speed it keeps
    #: [s] the speed error is closed over this time; quantised, an error below half the
    #: action set's acceleration step times this is held as it is
    speed_time: float = 1.0
    pursuit: TeacherConfig = TeacherConfig()

    def plan(self, driver: Any, pose: tuple, speed: float, route: Any, horizon: int
             ) -> List[int]:
        """
        Return the next `horizon` discrete actions, integrated along their own motion.

        Each step's action is the driver's rule at the pose the previous actions lead to
        (`driver.bicycle`, the same model the intention is drawn with), so the plan is what
        the vehicle will do if nothing else acts on it.
        """
        state = BicycleState(float(pose[0]), float(pose[1]), float(pose[2]), float(speed))
        actions = driver.actions
        out = []
        for _ in range(horizon):
            accel = (self.speed - state.speed) / self.speed_time
            steer = pursuit_steer((state.x, state.y, state.yaw), route, self.pursuit)
            action = actions.index(accel, steer)
            out.append(action)
            state = driver.bicycle.step(state, *actions.action(action))
        return out


def commit(fleet: Any, role: str, observation: Any, merger: CommittedDriver
           ) -> VehicleControl:
    """
    Replace `role`'s command for this step by the committed driver's; return its control.

    As the monitor's override: the world model hears the driven action, the declared
    intention is the driver's K actions from the current pose, the look-ahead's kept plan is
    forgotten (nothing of another vehicle changes).
    """
    pipeline = fleet.pipeline
    i = pipeline.roles.index(role)
    ego = observation.ego
    pose, speed = (ego.x, ego.y, ego.yaw), max(float(ego.speed), 0.0)
    driver = pipeline.driver
    planned = merger.plan(driver, pose, speed, observation.route, fleet.horizon)
    command = driver.drive(planned[0], planned, pose, speed)
    pipeline.models[i].action = command.action
    pipeline.plans[i] = command.waypoints
    fleet.policy.forget(i)
    return command.control

"""
The planning stage of one vehicle step (ROS-free): latent state -> action -> command.

The look-ahead (paper eq. 3, ``replanning.ReplanningPolicy``) picks the action from the
posterior (z, h); the vehicle's ``call_vehicle.driver.Driver`` turns it into the control and,
when the plan was renewed, the intention (the bicycle rollout of the K planned actions). A
state the planner must not trust (``LatentState.valid`` false: warming up or faulted) gives
the controlled stop and drops the kept plan.
"""
from typing import Any, Dict, Optional, Tuple

from call_planner.model_state import state_from_latent
from call_planner.replanning import Decision, ReplanningPolicy
from call_vehicle.driver import Command, Driver, Pose
import numpy as np


class PlanStage:
    """One vehicle's planner between steps: the kept plan and the driver rule."""

    def __init__(self, policy: ReplanningPolicy, driver: Driver,
                 imagine_kwargs: Optional[Dict[str, Any]] = None) -> None:
        """Plan with ``policy`` (its world model and actor-critic), act through ``driver``."""
        self.policy = policy
        self.driver = driver
        self.imagine_kwargs = imagine_kwargs or {}
        cfg = policy.world_model.cfg
        self.stoch, self.classes = cfg.stoch, cfg.classes

    def plan(self, z_indices: np.ndarray, h: np.ndarray, pose: Pose,
             speed: float) -> Tuple[Command, Decision]:
        """Choose and execute this step's action from a valid state (z, h)."""
        decision = self.policy.step(state_from_latent(z_indices, h, self.stoch, self.classes),
                                    self.imagine_kwargs)
        planned = decision.intention.actions if decision.refreshed else None
        return self.driver.drive(decision.action, planned, pose, speed), decision

    def stop(self, pose: Optional[Pose], speed: float) -> Command:
        """Stop in a controlled way; the next valid state starts a new plan."""
        self.policy.reset()
        return self.driver.stop(pose, speed)

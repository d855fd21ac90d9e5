"""
Episode metrics of the paper (success, average TTC, collision rate) from bridge data.

The per-step measures are ``call_sim.measures`` - the embedded backend's own functions - so
numbers from CARLA and from the embedded simulator compare directly. Vehicles are rows
(x, y, yaw, speed, length, width) in the map frame, as ``call_sim.measures`` expects.
"""
from dataclasses import dataclass, field
import math
from typing import Dict, List, Optional

from call_sim import measures
import numpy as np


@dataclass
class EpisodeMetrics:
    """Running metrics of one CALL vehicle."""

    goal_radius_m: float = 3.0
    ttc_cap_s: float = 10.0  # TTC beyond this (incl. inf) counts as the cap in the average
    steps: int = 0
    collision_steps: int = 0
    reached: bool = False
    ttc: List[float] = field(default_factory=list)

    def step(self, ego: np.ndarray, others: np.ndarray, collision_event: bool = False,
             goal: Optional[np.ndarray] = None) -> Dict[str, float]:
        """Account one simulation step; returns that step's measures."""
        others = np.asarray(others, dtype=np.float64).reshape(-1, 6)
        ttc, leader_gap = measures.time_to_collision(ego, others)
        overlap = len(measures.collisions(ego, others)) > 0
        collided = bool(collision_event or overlap)
        self.steps += 1
        self.collision_steps += int(collided)
        self.ttc.append(min(ttc, self.ttc_cap_s))
        if goal is not None and math.hypot(ego[0] - goal[0], ego[1] - goal[1]) \
                <= self.goal_radius_m:
            self.reached = True
        return {'ttc': ttc, 'leader_gap': leader_gap, 'collision': float(collided)}

    def summary(self) -> Dict[str, float]:
        """Return success (goal, no collision), mean TTC [s], collision rate [% steps]."""
        return {
            'steps': self.steps,
            'success': float(self.reached and self.collision_steps == 0),
            'average_ttc_s': float(np.mean(self.ttc)) if self.ttc else math.nan,
            'collision_rate_pct': 100.0 * self.collision_steps / max(self.steps, 1),
        }

"""The two-vehicle crossroad of the planner's sharing tests: its scene, BEV and messages."""
import math

from call_perception.bev_raster import BevConfig, BevRasterizer
from call_perception.road_map import RoadMap
from call_planner.shared_tracks import SharedState
from call_planner.ttc_monitor import BevGeometry, MonitorConfig, TtcMonitor
from call_sim.config import load_yaml
import numpy as np

#: the crossroad with hero0 and hero1 only (each test places them with reset's `starts`)
SCENARIO = {**load_yaml('scenarios/crossroad.yaml'), 'num_controlled': 2, 'num_background': 0}


def raster_and_monitor(env, bev_cfg: BevConfig, config: MonitorConfig) -> tuple:
    """Build the BEV rasterizer of `env`'s roads and a TTC monitor on that BEV's geometry."""
    raster = BevRasterizer(bev_cfg, RoadMap.from_lanes(env.lanes()))
    return raster, TtcMonitor(config, BevGeometry(bev_cfg.metres_per_pixel, bev_cfg.ego_row,
                                                  bev_cfg.ego_col))


def message_of(state, time: float) -> SharedState:
    """Build what a vehicle in `state` shares at `time`: pose, speed and 4 m of intention."""
    return SharedState(state.x, state.y, state.yaw, state.speed, time,
                       np.array([[state.x + math.cos(state.yaw) * d,
                                  state.y + math.sin(state.yaw) * d]
                                 for d in (1.0, 2.0, 3.0, 4.0)]))


def step_holding_speeds(env, control, obs) -> dict:
    """Step `env` with hero0 and hero1 both keeping their speed; the new observations."""
    obs, *_ = env.step({name: control.to_control(0.0, 0.0, obs[name].ego.speed)
                        for name in ('hero0', 'hero1')})
    return obs


def first_index(flags) -> float:
    """Index of the first true flag (inf if none)."""
    return next((k for k, flag in enumerate(flags) if flag), math.inf)

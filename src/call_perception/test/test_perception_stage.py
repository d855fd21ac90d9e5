"""The perception stage's rules: shared vehicles drawn by position, own line, intentions."""
from call_perception.bev_raster import BevConfig, CHANNEL_INDEX
from call_perception.fusion import SharedNeighbour
from call_perception.perception_stage import Box, PerceptionStage
import numpy as np

CFG = BevConfig.from_yaml()
SHARED = CHANNEL_INDEX['shared_vehicles']
OWN_LINE = CHANNEL_INDEX['ego_waypoints']
SHARED_LINE = CHANNEL_INDEX['shared_waypoints']
EGO = Box(0.0, 0.0, 0.0, 4.6, 2.0)
LINE = np.array([[20.0, 6.0], [26.0, 6.0], [32.0, 6.0]])


def neighbour(x, y, name='hero1'):
    return SharedNeighbour(name, x, y, 0.0, LINE)


def test_a_neighbour_at_a_seen_vehicle_is_not_drawn_again_and_a_hidden_one_is():
    stage = PerceptionStage(CFG, sensor_range=32.0)
    seen_car = Box(10.0, 0.0, 0.0, 4.6, 2.0)
    # 2 m from the seen car: the same vehicle (by position); 40 m ahead: beyond the sensor
    near = stage.render(EGO, [seen_car], [neighbour(12.0, 0.0)], None, None)
    far = stage.render(EGO, [seen_car], [neighbour(38.0, 0.0)], None, None)
    assert near.seen == 1 and near.shared_only == 0 and not near.bev[SHARED].any()
    assert far.shared_only == 1 and far.bev[SHARED].any()


def test_own_line_is_the_plan_once_there_is_one_else_the_route():
    stage = PerceptionStage(CFG)
    route = np.array([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]])
    plan = np.array([[0.0, 0.0], [10.0, -8.0], [20.0, -12.0]])
    by_route = stage.render(EGO, [], [], None, route).bev[OWN_LINE]
    by_plan = stage.render(EGO, [], [], plan, route).bev[OWN_LINE]
    assert by_route.any() and by_plan.any() and not np.array_equal(by_route, by_plan)
    np.testing.assert_array_equal(stage.render(EGO, [], [], np.zeros((0, 2)), route)
                                  .bev[OWN_LINE], by_route)


def test_shared_intentions_are_drawn_only_when_shared():
    with_lines = PerceptionStage(CFG).render(EGO, [], [neighbour(38.0, 0.0)], None, None)
    without = PerceptionStage(CFG, share_intention=False).render(
        EGO, [], [neighbour(38.0, 0.0)], None, None)
    assert with_lines.bev[SHARED_LINE].any() and not without.bev[SHARED_LINE].any()
    np.testing.assert_array_equal(with_lines.bev[SHARED], without.bev[SHARED])

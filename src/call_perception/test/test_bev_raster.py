"""Rasteriser geometry with hand-placed vehicles: where things land in the ego-centric BEV."""
import math
from types import SimpleNamespace

from call_perception.bev_raster import BevConfig, BevRasterizer, CHANNEL_INDEX, CHANNELS
from call_perception.lane import Lane
from call_perception.road_map import RoadMap
import numpy as np
import pytest

CFG = BevConfig.from_yaml()


def box(x, y, yaw=0.0, length=4.6, width=2.0):
    return SimpleNamespace(x=x, y=y, yaw=yaw, length=length, width=width)


def centroid(mask):
    rows, cols = np.nonzero(mask)
    return rows.mean(), cols.mean()


def four_lanes(length=400.0):
    return RoadMap.from_lanes([Lane(str(i), np.array([[-length / 2, (i - 1.5) * 3.5],
                                                      [length / 2, (i - 1.5) * 3.5]]), 3.5)
                               for i in range(4)])


def test_config_file_matches_the_paper_size():
    assert CFG.size == 128
    assert CHANNELS == ('drivable', 'lane_markings', 'ego', 'seen_vehicles', 'shared_vehicles',
                        'ego_waypoints', 'shared_waypoints')


def test_bad_config_fails_fast(tmp_path):
    path = tmp_path / 'bev.yaml'
    path.write_text('size: 128\nmetres_per_pixle: 0.5\n')
    with pytest.raises(ValueError, match='unknown'):
        BevConfig.from_yaml(path)
    path.write_text('size: 128\nmetres_per_pixel: -1\n')
    with pytest.raises(ValueError, match='metres_per_pixel'):
        BevConfig.from_yaml(path)
    with pytest.raises(ValueError, match='ego_row'):
        BevConfig(ego_row=300)


def test_output_is_binary_uint8_in_channel_order():
    bev = BevRasterizer(CFG, four_lanes()).render(box(0, -1.75), [box(10, -1.75)])
    assert bev.dtype == np.uint8 and bev.shape == (len(CHANNELS), 128, 128)
    assert set(np.unique(bev)) <= {0, 255}


@pytest.mark.parametrize('ego_yaw', [0.0, math.pi / 2, -2.5])
def test_vehicle_ten_metres_ahead_lands_on_the_expected_pixel(ego_yaw):
    ego = box(3.0, -7.0, ego_yaw)
    ahead = box(3.0 + 10 * math.cos(ego_yaw), -7.0 + 10 * math.sin(ego_yaw), ego_yaw)
    bev = BevRasterizer(CFG, None).render(ego, [ahead])
    seen = bev[CHANNEL_INDEX['seen_vehicles']]
    row = CFG.ego_row - 10.0 / CFG.metres_per_pixel  # 60
    assert seen[int(row), int(CFG.ego_col)] == 255
    assert centroid(seen) == pytest.approx((row, CFG.ego_col), abs=0.5)
    # heading-up: a car pointing along the ego is tall (length) and narrow (width)
    rows, cols = np.nonzero(seen)
    assert np.ptp(rows) + 1 == pytest.approx(4.6 / CFG.metres_per_pixel, abs=1)
    assert np.ptp(cols) + 1 == pytest.approx(2.0 / CFG.metres_per_pixel, abs=1)
    ego_mask = bev[CHANNEL_INDEX['ego']]
    assert centroid(ego_mask) == pytest.approx((CFG.ego_row, CFG.ego_col), abs=0.5)


def test_rotation_yaw_90_puts_map_east_on_the_right():
    # ego faces north (+y): a car 6 m east is to the ego's right, i.e. larger column
    ego = box(0.0, 0.0, math.pi / 2)
    bev = BevRasterizer(CFG, None).render(ego, [box(6.0, 0.0, 0.0)], [box(-6.0, 8.0, 0.0)])
    seen = bev[CHANNEL_INDEX['seen_vehicles']]
    assert centroid(seen) == pytest.approx((CFG.ego_row, CFG.ego_col + 12), abs=0.5)
    # an east-pointing car is wide in a north-up image
    rows, cols = np.nonzero(seen)
    assert np.ptp(cols) > np.ptp(rows)
    shared = bev[CHANNEL_INDEX['shared_vehicles']]
    assert centroid(shared) == pytest.approx((CFG.ego_row - 16, CFG.ego_col - 12), abs=0.5)


def test_waypoint_lines_land_where_expected():
    ego = box(0.0, 0.0, 0.0)
    straight = np.array([[0.0, 0.0], [20.0, 0.0]])  # 20 m ahead along the ego's axis
    left = np.array([[10.0, 4.0], [10.0, 8.0]])  # a sideways segment 10 m ahead, 4-8 m left
    bev = BevRasterizer(CFG, None).render(ego, ego_waypoints=straight, shared_waypoints=[left])
    ego_wp = bev[CHANNEL_INDEX['ego_waypoints']]
    col = int(CFG.ego_col)
    for metres in (0.0, 5.0, 10.0, 19.5):
        assert ego_wp[int(CFG.ego_row - metres * 2), col] == 255
    assert ego_wp[int(CFG.ego_row - 25 * 2), col] == 0  # beyond the end of the plan
    assert not ego_wp[:, col + 4:].any() and not ego_wp[:, :col - 4].any()
    shared_wp = bev[CHANNEL_INDEX['shared_waypoints']]
    rows, cols = np.nonzero(shared_wp)
    assert set(range(col - 16, col - 7)) <= set(cols.tolist())
    assert abs(rows.mean() - (CFG.ego_row - 20)) <= 1
    assert cols.max() <= col - 7


def test_road_layer_markings_and_drivable_area():
    bev = BevRasterizer(CFG, four_lanes()).render(box(0.0, -1.75, 0.0))
    drivable = bev[CHANNEL_INDEX['drivable']]
    # the road (y -7 ... 7 m, ego at y = -1.75 m) spans columns ego_col - 17.5 ... + 10.5
    col = int(CFG.ego_col)
    assert drivable[:, col - 17:col + 11].all()
    assert not drivable[:, :col - 19].any()
    assert not drivable[:, col + 12:].any()
    marking_cols = np.unique(np.nonzero(bev[CHANNEL_INDEX['lane_markings']])[1])
    # 5 boundaries (shared ones drawn once), 3.5 m = 7 px apart, ego lane edges at +-3.5 px
    expected = CFG.ego_col + np.array([-17.5, -10.5, -3.5, 3.5, 10.5])
    assert len(marking_cols) == 5
    assert np.abs(marking_cols - expected).max() <= 0.5


def test_shared_lane_boundaries_are_deduplicated():
    road = four_lanes()
    # 4 lanes -> 5 distinct boundary lines, cut into the same number of chunks each
    chunks_per_line = len(road.drivable.pieces) // 4
    assert len(road.markings.pieces) == 5 * chunks_per_line


def test_empty_inputs_give_an_empty_valid_bev():
    bev = BevRasterizer(CFG, RoadMap.empty()).render(box(0, 0), [], [], None, [])
    assert bev.shape == (len(CHANNELS), 128, 128)
    assert not np.delete(bev, CHANNEL_INDEX['ego'], axis=0).any()
    assert bev[CHANNEL_INDEX['ego']].any()
    bev = BevRasterizer(CFG, None).render(box(0, 0), [], [], np.zeros((0, 2)), [np.zeros((1, 2))])
    assert not bev[CHANNEL_INDEX['ego_waypoints']].any()


def test_out_of_map_ego_gives_no_road_and_no_error():
    road = four_lanes(length=200.0)
    bev = BevRasterizer(CFG, road).render(box(5000.0, -3000.0, 1.0), [box(1e9, 1e9)],
                                          ego_waypoints=np.array([[0.0, 0.0], [1.0, 0.0]]))
    assert not bev[CHANNEL_INDEX['drivable']].any()
    assert not bev[CHANNEL_INDEX['lane_markings']].any()
    assert not bev[CHANNEL_INDEX['seen_vehicles']].any()
    assert not bev[CHANNEL_INDEX['ego_waypoints']].any()


def test_non_finite_inputs_are_skipped_not_fatal():
    rasterizer = BevRasterizer(CFG, four_lanes())
    bev = rasterizer.render(box(0, 0), [box(float('nan'), 0.0), box(8.0, 0.0)],
                            ego_waypoints=np.array([[0, 0], [np.inf, 0], [10, 0]]))
    assert bev[CHANNEL_INDEX['seen_vehicles']].any()
    assert bev[CHANNEL_INDEX['ego_waypoints']].any()
    assert not rasterizer.render(box(float('nan'), 0.0)).any()


def test_lane_validation():
    with pytest.raises(ValueError, match='width'):
        RoadMap([Lane('a', np.array([[0.0, 0.0], [1.0, 0.0]]), 0.0)])
    with pytest.raises(ValueError, match='two distinct'):
        RoadMap([Lane('a', np.array([[0.0, 0.0], [0.0, 0.0]]), 3.5)])


def test_curved_road_has_no_gaps():
    theta = np.linspace(0, math.pi / 2, 40)
    arc = np.stack([60 * np.cos(theta), 60 * np.sin(theta)], axis=1)
    road = RoadMap.from_lanes([Lane('arc', arc, 3.5)])
    ego = box(60 * math.cos(0.7), 60 * math.sin(0.7), 0.7 + math.pi / 2)
    drivable = BevRasterizer(CFG, road).render(ego)[CHANNEL_INDEX['drivable']]
    # every row crossed by the lane is filled at the lane's centre (no holes between chunks)
    assert drivable[int(CFG.ego_row), int(CFG.ego_col)] == 255
    filled_rows = np.nonzero(drivable.any(axis=1))[0]
    assert len(filled_rows) == 128

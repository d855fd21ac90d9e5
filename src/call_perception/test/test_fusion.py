"""The updated BEV: shared information fills in what the ego's own sensors miss."""
import math
from types import SimpleNamespace

from call_perception.bev_raster import BevConfig, BevRasterizer, CHANNEL_INDEX
from call_perception.fusion import (fuse_shared, FusionConfig, neighbour_to_ego,
                                    overlay_shared_mask, parse_intention, SharedNeighbour,
                                    warp_neighbour_bev)
from call_perception.neighbour_views import add_neighbour_views, NeighbourView, unseen_vehicles
from call_perception.visibility import visible
import cv2
import numpy as np
import pytest

CFG = BevConfig.from_yaml()
SEEN = CHANNEL_INDEX['seen_vehicles']
SHARED = CHANNEL_INDEX['shared_vehicles']
EGO = CHANNEL_INDEX['ego']


def box(x, y, yaw=0.0, length=4.6, width=2.0):
    return SimpleNamespace(x=x, y=y, yaw=yaw, length=length, width=width)


def pixel(metres_ahead, metres_left=0.0):
    return (int(CFG.ego_row - metres_ahead / CFG.metres_per_pixel),
            int(CFG.ego_col - metres_left / CFG.metres_per_pixel))


def test_occluded_vehicle_is_absent_locally_and_present_after_fusion():
    ego = box(0.0, 0.0)
    truck = box(12.0, 0.0, length=12.0, width=2.6)
    hidden = box(26.0, 0.0)
    others = [truck, hidden]
    seen = [b for b, v in zip(others, visible(ego, others, 32.0)) if v]
    assert seen == [truck]
    rasterizer = BevRasterizer(CFG, None)
    local = rasterizer.render(ego, seen)
    assert local[SEEN][pixel(12.0)] == 255
    assert local[SEEN][pixel(26.0)] == 0 and local[SHARED][pixel(26.0)] == 0

    plan = np.array([[26.0, 0.0], [40.0, 0.0]])
    neighbours = [SharedNeighbour('hero1', hidden.x, hidden.y, hidden.yaw, plan)]
    layer = fuse_shared(neighbours, seen, ego)
    updated = rasterizer.render(ego, seen, layer.vehicles, None, layer.waypoints)
    assert updated[SHARED][pixel(26.0)] == 255
    assert updated[SEEN][pixel(26.0)] == 0
    assert updated[CHANNEL_INDEX['shared_waypoints']][pixel(35.0)] == 255


def test_a_neighbour_the_ego_sees_adds_only_its_waypoints():
    ego = box(0.0, 0.0)
    seen = [box(10.0, 3.5)]
    plan = np.array([[10.0, 3.5], [20.0, 3.5]])
    near = SharedNeighbour('hero1', 10.4, 3.3, 0.0, plan)  # localisation noise of 0.45 m
    layer = fuse_shared([near], seen, ego)
    assert layer.vehicles == [] and len(layer.waypoints) == 1
    # the ego's own message echoed back is not another vehicle either
    assert fuse_shared([SharedNeighbour('me', 0.1, 0.0, 0.0)], [], ego).vehicles == []
    far = SharedNeighbour('hero2', 10.0, 3.5 + 2 * FusionConfig().match_distance, 0.0)
    assert fuse_shared([far], seen, ego).vehicles == [far]
    nan = SharedNeighbour('bad', float('nan'), 0.0, 0.0)
    assert fuse_shared([nan], seen, ego).vehicles == []


def test_parse_intention():
    assert parse_intention([1.0, 2.0, 3.0, 4.0]).tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert parse_intention([]).shape == (0, 2)
    with pytest.raises(ValueError):
        parse_intention([1.0, 2.0, 3.0])
    with pytest.raises(ValueError):
        parse_intention([1.0, float('inf')])


def test_fusion_config_file_and_validation(tmp_path):
    assert FusionConfig.from_yaml().match_distance > 0
    path = tmp_path / 'fusion.yaml'
    path.write_text('match_distance: -1\n')
    with pytest.raises(ValueError):
        FusionConfig.from_yaml(path)


def test_warped_neighbour_bev_matches_a_direct_render():
    # neighbour j sits 15 m ahead-left of the ego, turned 30 deg; its BEV shows two cars
    ego = box(100.0, 50.0, yaw=0.4)
    pose_j = box(110.0, 62.0, yaw=0.4 + math.radians(30))
    cars = [box(118.0, 66.0, yaw=0.9), box(104.0, 70.0, yaw=0.2)]
    rasterizer = BevRasterizer(CFG, None)
    bev_j = rasterizer.render(pose_j, cars)
    warped = warp_neighbour_bev(bev_j, pose_j, ego, CFG)
    direct = rasterizer.render(ego, [pose_j] + cars)[SEEN]
    assert warped.dtype == np.uint8 and set(np.unique(warped)) <= {0, 255}
    both = np.logical_and(warped > 0, direct > 0).sum()
    either = np.logical_or(warped > 0, direct > 0).sum()
    assert both / either > 0.75  # nearest-neighbour resampling costs only edge pixels
    # and the identity case is exact
    assert np.array_equal(warp_neighbour_bev(bev_j[SEEN], pose_j, pose_j, CFG), bev_j[SEEN])
    assert np.allclose(neighbour_to_ego(CFG, ego, ego), np.hstack([np.eye(2), np.zeros((2, 1))]))


def test_warp_rejects_bad_shapes_and_overlay_keeps_own_pixels():
    with pytest.raises(ValueError):
        warp_neighbour_bev(np.zeros((64, 64), np.uint8), box(0, 0), box(0, 0), CFG)
    with pytest.raises(ValueError):
        warp_neighbour_bev(np.zeros((2, 3, 128, 128), np.uint8), box(0, 0), box(0, 0), CFG)
    ego = box(0.0, 0.0)
    bev = BevRasterizer(CFG, None).render(ego, [box(10.0, 0.0)])
    mask = np.zeros((128, 128), np.uint8)
    mask[pixel(10.0)] = 255  # already seen
    mask[pixel(20.0)] = 255  # new
    overlay_shared_mask(bev, mask)
    assert bev[SHARED][pixel(10.0)] == 0 and bev[SHARED][pixel(20.0)] == 255


def test_car_behind_a_truck_comes_from_the_neighbour_that_sees_it():
    ego = box(0.0, 0.0)
    truck = box(12.0, 0.0, length=12.0, width=2.6)
    hidden = box(30.0, 0.0)
    neighbour = box(22.0, 3.5)  # beside the truck, in the next lane, sees the hidden car
    others = [truck, hidden, neighbour]
    seen = [b for b, v in zip(others, visible(ego, others, 32.0)) if v]
    assert hidden not in seen and truck in seen
    rasterizer = BevRasterizer(CFG, None)
    bev = rasterizer.render(ego, seen)
    seen_j = [b for b, v in zip([ego, truck, hidden],
                                visible(neighbour, [ego, truck, hidden], 32.0)) if v]
    assert hidden in seen_j
    bev_j = rasterizer.render(neighbour, seen_j)
    view = NeighbourView('hero1', neighbour, np.maximum(bev_j[EGO], bev_j[SEEN]))
    before = bev.copy()
    added = add_neighbour_views(bev, ego, [view], CFG)
    assert added == 1  # the hidden car; truck, ego and the neighbour itself are already drawn
    assert before[SHARED][pixel(30.0)] == 0 and bev[SHARED][pixel(30.0)] == 255
    assert bev[SHARED][pixel(12.0)] == 0  # the truck stays in the seen channel only
    assert bev[SHARED][pixel(0.0)] == 0
    # only the shared channel changed, and only around the hidden car
    changed = np.argwhere(bev != before)
    assert set(changed[:, 0]) == {SHARED}
    rows = changed[:, 1]
    assert rows.min() >= pixel(33.0)[0] and rows.max() <= pixel(27.0)[0]
    # without views nothing is added
    again = before.copy()
    assert add_neighbour_views(again, ego, [], CFG) == 0 and np.array_equal(again, before)


def test_blob_touching_an_own_vehicle_is_that_vehicle():
    own = np.zeros((32, 32), np.uint8)
    own[10:14, 10:12] = 255
    mask = np.zeros_like(own)
    mask[12:16, 12:14] = 255   # overlaps the own box shifted by two pixels: same car
    mask[25:29, 20:22] = 255   # far away: a new car
    new = unseen_vehicles(mask, own, margin_px=2)
    assert new[26, 21] == 255 and not new[12:16, 12:14].any()
    assert not unseen_vehicles(np.zeros_like(own), own, 2).any()


@pytest.mark.parametrize('density, size', [(0.002, 64), (0.03, 64), (0.3, 112)])
def test_unseen_vehicles_keeps_exactly_the_whole_blobs_clear_of_own_vehicles(density, size):
    # every path of the kept mask (all blobs kept, some, none; more than 256 blobs at the
    # highest density) against the definition, blob by blob
    rng = np.random.default_rng(7)
    for trial in range(12):
        mask = (rng.random((size, size)) < density).astype(np.uint8) * (1 + 254 * (trial % 2))
        own = (rng.random((size, size)) < (0.0, 0.002, 0.02)[trial % 3]).astype(np.uint8)
        margin = trial % 3
        near = cv2.dilate(own, np.ones((2 * margin + 1,) * 2, np.uint8)) > 0
        count, labels = cv2.connectedComponents((mask > 0).astype(np.uint8), connectivity=8)
        expected = np.zeros_like(mask)
        for label in range(1, count):
            blob = labels == label
            if not (blob & near).any():
                expected[blob] = 255
        new = unseen_vehicles(mask, own, margin)
        assert new.dtype == np.uint8 and np.array_equal(new, expected), trial

"""A neighbour's view adds exactly the vehicles the ego does not see, at their place."""
from types import SimpleNamespace

from call_perception.bev_raster import BevConfig, BevRasterizer, CHANNEL_INDEX
from call_perception.neighbour_views import add_neighbour_views, NeighbourView, unseen_vehicles
from call_perception.visibility import visible
import numpy as np

CFG = BevConfig.from_yaml()
EGO, SEEN, SHARED = (CHANNEL_INDEX[c] for c in ('ego', 'seen_vehicles', 'shared_vehicles'))


def box(x, y, yaw=0.0, length=4.6, width=2.0):
    return SimpleNamespace(x=x, y=y, yaw=yaw, length=length, width=width)


def pixel(metres_ahead, metres_left=0.0):
    return (int(CFG.ego_row - metres_ahead / CFG.metres_per_pixel),
            int(CFG.ego_col - metres_left / CFG.metres_per_pixel))


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

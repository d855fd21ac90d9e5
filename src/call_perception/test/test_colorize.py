"""Fig. 8 colours: each channel maps to its colour, vehicles paint over lines and road."""
from call_perception.bev_raster import CHANNEL_INDEX, CHANNELS
from call_perception.colorize import BACKGROUND, colorize, COLOURS, PAINT_ORDER
import numpy as np
import pytest


def test_every_channel_has_its_paper_colour():
    assert set(PAINT_ORDER) == set(CHANNELS) and len(PAINT_ORDER) == len(CHANNELS)
    assert COLOURS['ego'][0] > 200 and COLOURS['ego'][1] < 50  # red
    assert COLOURS['seen_vehicles'][1] > 150 and COLOURS['seen_vehicles'][0] < 50  # green
    assert COLOURS['shared_vehicles'][0] > 200 and COLOURS['shared_vehicles'][1] > 150  # yellow
    assert COLOURS['ego_waypoints'][2] > 200 and COLOURS['ego_waypoints'][0] < 50  # blue
    bev = np.zeros((len(CHANNELS), 4, 8), dtype=np.uint8)
    for i, name in enumerate(CHANNELS):
        bev[CHANNEL_INDEX[name], 0, i] = 255
    rgb = colorize(bev)
    assert rgb.shape == (4, 8, 3) and rgb.dtype == np.uint8
    for i, name in enumerate(CHANNELS):
        assert tuple(rgb[0, i]) == COLOURS[name]
    assert tuple(rgb[1, 0]) == BACKGROUND


def test_vehicles_paint_over_waypoints_and_road():
    bev = np.zeros((len(CHANNELS), 2, 2), dtype=np.uint8)
    bev[:, 0, 0] = 255  # everything at once: the ego wins
    bev[CHANNEL_INDEX['drivable'], 1, 1] = 255
    bev[CHANNEL_INDEX['ego_waypoints'], 1, 1] = 255
    bev[CHANNEL_INDEX['shared_vehicles'], 1, 1] = 255
    rgb = colorize(bev)
    assert tuple(rgb[0, 0]) == COLOURS['ego']
    assert tuple(rgb[1, 1]) == COLOURS['shared_vehicles']


def test_rejects_wrong_shape():
    with pytest.raises(ValueError):
        colorize(np.zeros((3, 4, 4), dtype=np.uint8))

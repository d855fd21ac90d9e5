"""The documented example command writes a readable colour BEV with every class in it."""
from call_perception import render_example
from call_perception.bev_raster import CHANNEL_INDEX, CHANNELS
from call_perception.colorize import COLOURS
import cv2
import numpy as np


def test_example_scene_shows_occlusion_and_sharing():
    bev, summary = render_example.example_scene()
    for name in CHANNELS:
        assert bev[CHANNEL_INDEX[name]].any(), name
    # the car behind the truck is hidden but shares; the one that shares nothing stays unknown
    assert summary['seen'][1] is False and summary['seen'][2] is False
    assert summary['shared_only'] == ['hero1', 'hero2']


def test_command_writes_the_png(tmp_path):
    out = tmp_path / 'images' / 'bev.png'
    render_example.main(['--out', str(out), '--scale', '2'])
    image = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    assert image.shape[0] == 256
    colours = {tuple(c) for c in image[:, :256].reshape(-1, 3)}
    for name in ('ego', 'seen_vehicles', 'shared_vehicles', 'ego_waypoints', 'drivable'):
        assert COLOURS[name] in colours, name
    assert np.array_equal(image[0, -1], [255, 255, 255])  # legend strip

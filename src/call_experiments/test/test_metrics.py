"""Metric definitions on hand-made arrays (Table 1 and Table 6 numbers, EMA smoothing)."""
from call_experiments import metrics
from call_learning.evaluate_prediction import frame_scores
from call_perception.bev_raster import CHANNEL_INDEX
import numpy as np
import pytest
import torch

VEHICLES = [CHANNEL_INDEX['seen_vehicles'], CHANNEL_INDEX['shared_vehicles']]


def _frames():
    """2 frames of 7 x 4 x 4 masks: truth has 4 vehicle pixels, prediction 3 (2 overlap)."""
    truth = np.zeros((2, 7, 4, 4), bool)
    pred = np.zeros((2, 7, 4, 4), bool)
    truth[0, CHANNEL_INDEX['seen_vehicles'], 0, 0:2] = True     # pixels (0,0) (0,1)
    truth[1, CHANNEL_INDEX['shared_vehicles'], 3, 2:4] = True   # pixels (3,2) (3,3)
    pred[0, CHANNEL_INDEX['seen_vehicles'], 0, 1] = True        # hit (0,1)
    pred[1, CHANNEL_INDEX['seen_vehicles'], 3, 3] = True        # hit (3,3) in another channel
    pred[1, CHANNEL_INDEX['seen_vehicles'], 2, 0] = True        # false positive
    pred[0, CHANNEL_INDEX['drivable'], 1, 1] = True             # wrong road pixel
    return pred, truth


def test_pixel_accuracy_counts_every_channel_pixel():
    pred, truth = _frames()
    # differing pixels: (0,0) miss, (3,2) miss, (3,3) channel mismatch x2, (2,0) FP, road = 6
    assert metrics.pixel_accuracy(pred, truth) == pytest.approx(1.0 - 6 / (2 * 7 * 16))


def test_vehicle_iou_is_the_union_of_vehicle_channels_pooled_over_frames():
    pred, truth = _frames()
    # intersection: (0,1) and (3,3) = 2; union: 4 truth + 1 false positive = 5
    assert metrics.vehicle_iou(pred, truth, VEHICLES) == pytest.approx(2 / 5)


def test_vehicle_iou_of_two_empty_frames_is_undefined():
    empty = np.zeros((1, 7, 4, 4), bool)
    assert np.isnan(metrics.vehicle_iou(empty, empty, VEHICLES))


def test_definitions_equal_the_scores_reported_by_call_world_model():
    pred, truth = _frames()
    reported = frame_scores(torch.from_numpy(pred), torch.from_numpy(truth))
    assert reported['pixel_accuracy'] == pytest.approx(metrics.pixel_accuracy(pred, truth))
    assert reported['vehicle_iou'] == pytest.approx(metrics.vehicle_iou(pred, truth, VEHICLES))


def test_collision_rate_is_the_percentage_of_colliding_vehicle_steps():
    assert metrics.collision_rate([False, True, False, False]) == pytest.approx(25.0)
    assert np.isnan(metrics.collision_rate([]))


def test_average_ttc_caps_infinite_values():
    ttc = [1.0, float('inf'), 3.0, 30.0]
    assert metrics.average_ttc(ttc, cap=10.0) == pytest.approx((1 + 10 + 3 + 10) / 4)
    assert metrics.average_finite_ttc(ttc) == pytest.approx((1 + 3 + 30) / 3)


def test_success_rate_excludes_trips_cut_short():
    outcomes = ['reached', 'collision', 'reached', 'cut_short', 'timeout']
    assert metrics.success_rate(outcomes) == pytest.approx(50.0)
    with pytest.raises(ValueError):
        metrics.success_rate(['crashed'])


def test_ema_matches_a_hand_computed_case():
    smoothed, spread = metrics.ema_smooth([1.0, 3.0, 2.0], weight=0.5)
    # debiased: s1 = 0.5 / 0.5 = 1; s2 = (0.25 + 1.5) / 0.75 = 7/3; s3 = (0.875 + 1) / 0.875
    assert smoothed == pytest.approx([1.0, 7 / 3, 1.875 / 0.875])
    v2 = 0.5 * 0.0 + 0.5 * (3.0 - 7 / 3) ** 2
    assert spread[0] == pytest.approx(0.0)
    assert spread[1] == pytest.approx(np.sqrt(v2 / 0.75))


def test_ema_rejects_a_weight_of_one():
    with pytest.raises(ValueError):
        metrics.ema_smooth([1.0], 1.0)

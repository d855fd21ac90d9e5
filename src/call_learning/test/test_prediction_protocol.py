"""The evaluation protocol scores every mode against one privileged ground truth."""
import math

from call_learning.prediction_protocol import (EpisodeViews, evaluate_seed, main,
                                               ProtocolConfig, record_episode)
from call_perception.bev_raster import BevConfig, CHANNEL_INDEX
from call_world_model.bev_motion import BevMotionHead, MotionHeadConfig
from call_world_model.config import load_config
from call_world_model.prediction_metrics import (aggregate, classes_of, CSV_COLUMNS,
                                                 frame_scores, mean_interval, METRICS,
                                                 read_csv, write_csv)
from call_world_model.world_model import WorldModel
import numpy as np
import pytest
import torch

SHARED = CHANNEL_INDEX['shared_vehicles']
CONFIG = ProtocolConfig(scenario='four_lane_platoon', seeds=(0,), steps=40, windows=6,
                        horizons=(0, 1, 5), warmup=3, context=3)


@pytest.fixture(scope='module')
def episode():
    return record_episode(CONFIG.scenario, 0, CONFIG)


def test_frame_scores_by_hand():
    truth = np.zeros((3, 4, 4), bool)
    truth[2, 0, :2] = True          # a visible vehicle (2 px)
    truth[2, 3, 2:] = True          # a hidden vehicle (2 px)
    hidden = np.zeros((4, 4), bool)
    hidden[3, 2:] = True
    predicted = np.zeros_like(truth)
    predicted[2, 3, 3] = True       # half the hidden vehicle
    predicted[2, 1, 1] = True       # a vehicle where there is none
    s = frame_scores(predicted, truth, hidden)
    assert s['vehicle_iou'] == pytest.approx(1 / 5)
    assert s['hidden_recall'] == pytest.approx(1 / 2)
    assert s['hidden_iou'] == pytest.approx(1 / 3)
    assert s['pixel_accuracy'] == pytest.approx(1 - 4 / 48)
    assert math.isnan(frame_scores(predicted, truth, np.zeros((4, 4), bool))['hidden_recall'])
    assert math.isnan(s['shared_recall'])              # no shared pixels given
    shared = np.zeros((4, 4), bool)
    shared[3, 2:] = True    # the hidden vehicle, as the fused BEV's shared channel holds it
    assert frame_scores(predicted, truth, hidden, shared)['shared_recall'] == pytest.approx(1 / 2)
    mean, low, high, n = mean_interval([1.0, 2.0, 3.0, math.nan])
    assert (mean, n) == (2.0, 3) and low == pytest.approx(2 - 4.303 / math.sqrt(3))
    assert high == pytest.approx(2 + 4.303 / math.sqrt(3))


def test_truth_holds_every_vehicle_and_nothing_shared(episode):
    frames, lanes = episode
    views = EpisodeViews(frames, lanes, BevConfig.from_yaml().resized(64), CONFIG, 8)
    found_hidden = False
    for t in range(1, len(frames)):
        for role in views.roles:
            truth = views.truth(role, t)
            assert not truth[SHARED].any()
            own = views.own(role, t)
            hidden_ids = set(frames[t].states) - frames[t].seen[role] \
                - {frames[t].egos[role].actor_id}
            hidden = views.boxes_mask(role, t, hidden_ids) & (truth[CHANNEL_INDEX[
                'seen_vehicles']] > 0)
            fused = views.fused(role, t, [views.oracle_view(s, t - 1)
                                          for s in views.neighbours(role, t)])
            if not (hidden.any() and fused[SHARED].any()):
                continue
            # the fused BEV's shared vehicles are scored against the same truth as the own BEV
            true_classes = classes_of(truth, CHANNEL_INDEX)
            own_s = frame_scores(classes_of(own, CHANNEL_INDEX), true_classes, hidden)
            fused_s = frame_scores(classes_of(fused, CHANNEL_INDEX), true_classes, hidden)
            assert own_s['hidden_recall'] == 0.0
            if fused_s['hidden_recall'] > 0.0:
                found_hidden = True
    assert found_hidden


def test_every_mode_is_scored_on_the_same_windows(episode, tmp_path):
    torch.manual_seed(0)
    model = WorldModel(load_config('tiny')).eval()
    bev = BevConfig.from_yaml().resized(model.cfg.bev_size)
    records = evaluate_seed(model, CONFIG, 0, bev)
    modes = {'model_local', 'model_shared', 'copy_last_own', 'copy_last_fused',
             'const_velocity_fused'}
    assert {r[0] for r in records} == modes
    for k in CONFIG.horizons:
        counts = {m: sum(1 for r in records if r[0] == m and r[1] == k) for m in modes}
        assert set(counts.values()) == {CONFIG.windows}
        # hidden vehicles come from the truth and the window, not from the mode: every mode
        # has a hidden score on exactly the same windows
        hidden = {m: [not math.isnan(r[3]['hidden_recall']) for r in records
                      if r[0] == m and r[1] == k] for m in modes}
        assert len({tuple(v) for v in hidden.values()}) == 1
        # recall of what only the shared channel holds: the posterior's reconstruction only
        shared = [r[3]['shared_recall'] for r in records if r[1] == k]
        assert k == 0 or all(math.isnan(v) for v in shared)
    rows = aggregate(records)
    path = tmp_path / 'out.csv'
    write_csv(rows, str(path))
    lines = path.read_text().splitlines()
    assert lines[0] == ','.join(CSV_COLUMNS)
    assert len(lines) == 1 + len(modes) * len(CONFIG.horizons) * len(METRICS)


def test_motion_head_is_scored_on_the_same_ground_truth(episode):
    # at k = 0 the motion head returns the window's last input BEV: its model_* scores must
    # equal copy_last_* on every window, which holds only if it reads the same input (own /
    # fused) of the same window and is scored against the same truth; the decoder's
    # predictions stay, as decoder_*
    torch.manual_seed(0)
    model = WorldModel(load_config('tiny')).eval()
    head = BevMotionHead(MotionHeadConfig.for_world_model(model.cfg, context=CONFIG.context,
                                                          width=8))
    bev = BevConfig.from_yaml().resized(model.cfg.bev_size)
    records = evaluate_seed(model, CONFIG, 0, bev, head)
    modes = {'model_local', 'model_shared', 'decoder_local', 'decoder_shared',
             'copy_last_own', 'copy_last_fused', 'const_velocity_fused'}
    assert {r[0] for r in records} == modes

    def scores(mode):
        return [(r[1], r[3]) for r in records if r[0] == mode]
    assert len(scores('model_shared')) == CONFIG.windows * len(CONFIG.horizons)
    for model_mode, baseline in (('model_shared', 'copy_last_fused'),
                                 ('model_local', 'copy_last_own')):
        compared = 0
        for (k, ours), (k_base, theirs) in zip(scores(model_mode), scores(baseline)):
            assert k == k_base
            if k == 0:
                compared += 1
                assert {m: ours[m] for m in METRICS if not math.isnan(ours[m])} == \
                    {m: theirs[m] for m in METRICS if not math.isnan(theirs[m])}
        assert compared == CONFIG.windows
    # sharing reaches the head: with it, hidden vehicles are found at k = 0
    hidden = [r[3]['hidden_recall'] for r in records if r[0] == 'model_shared' and r[1] == 0
              and not math.isnan(r[3]['hidden_recall'])]
    assert hidden and max(hidden) > 0.0
    # the head's k = 0 is the input itself, the decoder's the posterior's reconstruction
    assert scores('decoder_shared') != scores('model_shared')


def _read(path):
    lines = path.read_text().splitlines()
    return {tuple(line.split(',')[:3]): line for line in lines[1:]}


def test_per_seed_rows_are_each_seeds_own(tmp_path):
    # baselines only (perfect neighbour decoder): cheap, and the bookkeeping is the same
    argv = ['--scenario', 'four_lane_platoon', '--steps', '40', '--windows', '4',
            '--horizons', '0', '1', '--bev-size', '32']
    main(argv + ['--seeds', '0', '1', '--per-seed', '--out', str(tmp_path / 'both.csv')])
    main(argv + ['--seeds', '1', '--out', str(tmp_path / 'one.csv')])
    seed1, alone = _read(tmp_path / 'both_seed1.csv'), _read(tmp_path / 'one.csv')
    assert seed1 == alone
    seed0 = _read(tmp_path / 'both_seed0.csv')
    assert seed0 != seed1  # other episodes, other windows
    assert set(seed0) == set(_read(tmp_path / 'both.csv'))
    # seeds evaluated apart (e.g. in parallel) combine into the mean of the seeds' means
    main(['--combine', str(tmp_path / 'both_seed0.csv'), str(tmp_path / 'one.csv'),
          '--out', str(tmp_path / 'combined.csv')])
    tables = [read_csv(str(tmp_path / name)) for name in ('both_seed0.csv', 'one.csv')]
    combined = read_csv(str(tmp_path / 'combined.csv'))
    assert len(combined) == len(tables[0])
    both_finite = 0
    for row in combined:
        means = [r['mean'] for t in tables for r in t
                 if (r['mode'], r['k'], r['metric']) == (row['mode'], row['k'], row['metric'])
                 and math.isfinite(r['mean'])]
        assert row['seeds'] == len(means)
        if means:
            assert row['mean'] == pytest.approx(np.mean(means), abs=1e-5)
        both_finite += len(means) == 2 and means[0] != means[1]
    assert both_finite > 0

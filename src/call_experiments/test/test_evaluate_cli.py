"""`call_evaluate` end to end on tiny random models: every artefact, missing rows stated."""
import csv
import os
from pathlib import Path
import subprocess
import sys

from call_experiments.plots import PNG_FILES
from call_experiments.report import FILES
from call_world_model import checkpoint
from call_world_model.actor_critic import ActorCritic
from call_world_model.config import load_config
from call_world_model.world_model import WorldModel
import pytest
import torch
from torch.utils.tensorboard import SummaryWriter
import yaml

torch.set_num_threads(1)

TINY = {
    'seeds': [5],
    'driving': {'overrides': {'episode_steps': 30}, 'episodes': 1, 'max_env_steps': 30},
    'prediction': {'overrides': {'episode_steps': 40}, 'horizons': [2, 4], 'context': 2,
                   'windows': 4, 'env_steps': 24},
    'threshold_sweep': {'thresholds': [0, 50, float('inf')], 'episodes': 1,
                        'max_env_steps': 12},
    'generalisation': {'scenarios': {'two_lane': {'episode_steps': 20},
                                     'crossroad': {'episode_steps': 20}},
                       'episodes': 1, 'max_env_steps': 12},
}


def _save_tiny(path: Path, mode: str, seed: int) -> str:
    cfg = load_config('tiny')
    torch.manual_seed(seed)
    checkpoint.save(str(path), WorldModel(cfg), ActorCritic(cfg, cfg.feat_dim, cfg.num_actions),
                    cfg, 0, extra={'mode': mode, 'c': 50.0, 'preset': 'tiny'})
    return str(path)


def _run(args, timeout=240):
    return subprocess.run([sys.executable, '-m', 'call_experiments.evaluate', *args],
                          capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


def _rows(path: Path):
    with open(path, newline='') as stream:
        return list(csv.DictReader(stream))


@pytest.fixture(scope='module')
def evaluated(tmp_path_factory):
    """One CLI run: lsi and local checkpoints, no fallback, a learning curve for lsi only."""
    tmp = tmp_path_factory.mktemp('evaluate')
    lsi = _save_tiny(tmp / 'lsi.pt', 'lsi', 0)
    local = _save_tiny(tmp / 'local.pt', 'local', 1)
    config = tmp / 'tiny.yaml'
    config.write_text(yaml.safe_dump(TINY))
    logdir = tmp / 'tb_lsi'
    writer = SummaryWriter(str(logdir))
    for step, value in enumerate([1.0, 3.0, 2.0, 5.0]):
        writer.add_scalar('env/episode_return', value, 100 * step)
    writer.close()
    out = tmp / 'results'
    proc = _run(['--checkpoints', f'lsi={lsi}', '--checkpoints', f'local={local}',
                 '--config', str(config), '--out', str(out), '--logdirs', f'lsi={logdir}'])
    return proc, out


def test_cli_writes_every_artefact(evaluated):
    proc, out = evaluated
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in FILES + PNG_FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name


def test_tables_hold_the_modes_with_checkpoints_and_name_the_missing_ones(evaluated):
    _, out = evaluated
    driving = _rows(out / 'table6_driving.csv')
    assert sorted(r['mode'] for r in driving) == ['local', 'lsi']
    assert all(r['substitute'] == 'False' for r in driving)
    assert all(int(r['vehicle_steps']) > 0 for r in driving)
    prediction = _rows(out / 'table1_prediction.csv')
    assert sorted({(r['mode'], r['k']) for r in prediction}) == [
        ('local', '2'), ('local', '4'), ('lsi', '2'), ('lsi', '4')]
    for row in prediction:
        assert 0.0 <= float(row['model_pixel_accuracy']) <= 1.0
    sweep = _rows(out / 'fig19_20_threshold.csv')
    assert [r['threshold'] for r in sweep] == ['0', '50', 'inf']
    # c = 0 shares with every other CALL vehicle, c = inf with nobody
    assert float(sweep[0]['call_bytes_per_ego_step']) > 0.0
    assert float(sweep[2]['call_bytes_per_ego_step']) == 0.0
    assert {r['scenario'] for r in _rows(out / 'generalisation_driving.csv')} == {
        'two_lane', 'crossroad'}
    curves = _rows(out / 'learning_curves.csv')
    assert [float(r['return']) for r in curves] == [1.0, 3.0, 2.0, 5.0]
    report = (out / 'report.md').read_text()
    assert 'Table 6: no checkpoint for mode full and no --checkpoint' in report
    assert 'Table 6: no checkpoint for mode lss and no --checkpoint' in report
    assert 'Learning curve local: no TensorBoard run given' in report
    recorded = yaml.safe_load((out / 'config.yaml').read_text())
    assert recorded['settings']['seeds'] == [5]
    assert len(recorded['checkpoints']) == 2 and recorded['git_commit']


def test_bad_checkpoint_fails_fast_with_the_reason(tmp_path):
    bad = tmp_path / 'bad.pt'
    bad.write_bytes(b'not a checkpoint')
    proc = _run(['--checkpoint', str(bad), '--config', 'smoke', '--out', str(tmp_path / 'r')],
                timeout=120)
    assert proc.returncode == 2
    assert 'corrupt or truncated' in proc.stderr


def test_unknown_setting_fails_fast(tmp_path):
    good = _save_tiny(tmp_path / 'x.pt', 'lsi', 0)
    proc = _run(['--checkpoint', good, '--config', 'smoke', '--set', 'driving.episodez=1',
                 '--out', str(tmp_path / 'r')], timeout=120)
    assert proc.returncode == 2
    assert 'episodez' in proc.stderr

"""End-to-end `call_train` (tiny preset, real simulator), resume, and k-step evaluation."""
import math
import os

from call_learning.evaluate_prediction import evaluate, format_table, frame_scores
from call_learning.pipeline import PipelineConfig
from call_learning.train import build_parser, export_checkpoint, main, resolve_settings, run
from call_sim.env import MultiVehicleEnv
from call_world_model import checkpoint
from call_world_model.config import load_config
from call_world_model.world_model import WorldModel
import pytest
import torch

SCENARIO = {'map': 'four_lane', 'num_controlled': 2, 'num_background': 60, 'seed': 4}


def settings_for(logdir, steps, resume=None):
    args = build_parser().parse_args([
        '--preset', 'tiny', '--scenario', 'unused', '--mode', 'lsi', '--c', '20',
        '--steps', str(steps), '--prefill', '4', '--batch', '2', '--length', '6',
        '--train-ratio', '3', '--logdir', str(logdir), '--checkpoint-every', '5',
        '--log-every', '1', '--threads', '1', '--no-progress'])
    settings = resolve_settings(args)
    settings['resume'] = resume
    return settings


def test_train_writes_checkpoint_and_resume_continues(tmp_path):
    torch.set_num_threads(1)
    env = MultiVehicleEnv.from_scenario(SCENARIO)
    try:
        first = run(settings_for(tmp_path, 10), env)
        # 2 agents x ratio 3 / (2 x 6) = 0.5 updates per env step after 4 prefill steps
        assert first['step'] == 10 and first['updates'] == 3
        assert 'world_model/model_loss' in first['metrics']
        assert 'actor_critic/actor_loss' in first['metrics']
        path = os.path.join(tmp_path, 'checkpoint.pt')
        loaded = checkpoint.load(path)
        assert loaded.step == 10 and loaded.meta['extra']['updates'] == 3
        assert loaded.meta['extra']['mode'] == 'lsi'
        assert any(name.startswith('events.out.tfevents') for name in os.listdir(tmp_path))
        second = run(settings_for(tmp_path, 16, resume='auto'), env)
        assert second['step'] == 16 and second['updates'] > 3
        assert checkpoint.load(path).step == 16
        # the shippable copy drops optimiser states, stores float16, and loads the same model
        slim = os.path.join(tmp_path, 'slim.pt')
        export_checkpoint(path, slim)
        assert os.path.getsize(slim) < 0.4 * os.path.getsize(path)
        full, half = checkpoint.load(path), checkpoint.load(slim)
        assert half.step == 16 and half.meta['extra']['storage'] == 'float16'
        for (name, a), b in zip(full.world_model.state_dict().items(),
                                half.world_model.state_dict().values()):
            assert b.dtype == a.dtype and torch.allclose(a.float(), b.float(), atol=1e-2), name
    finally:
        env.close()


def test_world_model_only_skips_the_actor_critic(tmp_path):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    settings = settings_for(tmp_path, 8)
    assert settings['world_model_only'] is False
    args = build_parser().parse_args(['--scenario', 'unused', '--logdir', str(tmp_path),
                                      '--world-model-only'])
    settings['world_model_only'] = resolve_settings(args)['world_model_only']
    assert settings['world_model_only'] is True
    env = MultiVehicleEnv.from_scenario(SCENARIO)
    try:
        summary = run(settings, env)
    finally:
        env.close()
    assert summary['updates'] == 2
    assert 'world_model/model_loss' in summary['metrics']
    assert not any(k.startswith('actor_critic/') for k in summary['metrics'])
    loaded = checkpoint.load(os.path.join(tmp_path, 'checkpoint.pt'))
    assert loaded.meta['extra']['world_model_only'] is True
    # the world model's Adam stepped, the actor's and critic's never did
    assert loaded.world_model.optimizer.state
    assert not loaded.actor_critic.actor_opt.state
    assert not loaded.actor_critic.critic_opt.state


def test_a_frozen_world_model_stays_bit_for_bit_while_the_actor_critic_learns(tmp_path):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    env = MultiVehicleEnv.from_scenario(SCENARIO)
    try:
        run(settings_for(tmp_path / 'base', 6), env)
        start = os.path.join(tmp_path, 'base', 'checkpoint.pt')
        settings = settings_for(tmp_path / 'ac', 16, resume=start)
        settings['freeze_world_model'] = True
        summary = run(settings, env)
    finally:
        env.close()
    assert summary['updates'] > 0
    assert 'actor_critic/critic_loss' in summary['metrics']
    assert not any(k.startswith('world_model/') for k in summary['metrics'])
    before = checkpoint.load(start)
    after = checkpoint.load(os.path.join(tmp_path, 'ac', 'checkpoint.pt'))
    assert after.meta['extra']['freeze_world_model'] is True
    for (name, a), b in zip(before.world_model.state_dict().items(),
                            after.world_model.state_dict().values()):
        assert torch.equal(a, b), name
    assert not all(torch.equal(a, b) for a, b in zip(
        before.actor_critic.state_dict().values(), after.actor_critic.state_dict().values()))


@pytest.mark.parametrize('extra', [['--freeze-world-model'],
                                   ['--freeze-world-model', '--world-model-only', '--resume']])
def test_freezing_needs_a_resumed_model_and_an_actor_critic_to_train(tmp_path, extra, capsys):
    assert main(['--scenario', 'four_lane_30', '--logdir', str(tmp_path), '--no-progress',
                 '--preset', 'tiny', '--steps', '1'] + extra) == 2
    assert 'call_train: error:' in capsys.readouterr().err


def test_resume_with_a_different_model_fails_clearly(tmp_path):
    cfg = load_config('tiny', {'deter': 16})
    model = WorldModel(cfg)
    checkpoint.save(os.path.join(tmp_path, 'checkpoint.pt'), model, None, cfg, 3)
    code = main(['--preset', 'tiny', '--scenario', 'four_lane_30', '--logdir', str(tmp_path),
                 '--resume', '--steps', '5', '--no-progress'])
    assert code == 2


@pytest.mark.parametrize('argv', [
    ['--batch', '0'], ['--steps', '-1'], ['--preset', 'huge'], ['--set', 'deter'],
    ['--scenario', 'no_such_scenario'], ['--set', 'unknown_key=3']])
def test_bad_arguments_exit_with_status_2(tmp_path, argv, capsys):
    base = ['--scenario', 'four_lane_30', '--logdir', str(tmp_path), '--no-progress',
            '--preset', 'tiny', '--steps', '1']
    assert main(base + argv) == 2
    assert 'call_train: error:' in capsys.readouterr().err


def test_frame_scores_hand_computed():
    truth = torch.zeros(1, 7, 4, 4, dtype=torch.bool)
    truth[0, 3, 0, :2] = True  # two seen-vehicle pixels
    predicted = torch.zeros_like(truth)
    predicted[0, 3, 0, 1:3] = True  # one right, one wrong
    scores = frame_scores(predicted, truth)
    assert scores['pixel_accuracy'] == pytest.approx(1 - 2 / (7 * 16))
    assert scores['vehicle_iou'] == pytest.approx(1 / 3)


def test_evaluate_prediction_reports_both_metrics_for_model_and_baseline():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = load_config('tiny')
    env = MultiVehicleEnv.from_scenario(SCENARIO)
    try:
        results = evaluate(WorldModel(cfg), env, PipelineConfig(mode='lsi', c=20.0),
                           horizons=(0, 2, 4), context=3, windows=4, env_steps=12)
    finally:
        env.close()
    assert sorted(results) == [0, 2, 4]
    # k = 0 is the reconstruction of the last context frame; its "baseline" is that frame
    baseline_iou = results[0]['copy_last']['vehicle_iou']
    assert results[0]['copy_last']['pixel_accuracy'] == 1.0
    assert baseline_iou == 1.0 or math.isnan(baseline_iou)      # nan: no vehicle in view
    assert 0.0 <= results[0]['model']['pixel_accuracy'] < 1.0   # an untrained decoder
    for k in (2, 4):
        for who in ('model', 'copy_last'):
            assert 0.0 <= results[k][who]['pixel_accuracy'] <= 1.0
            assert set(results[k][who]) == {'pixel_accuracy', 'vehicle_iou'}
    # copy-last of a continuous drive is close but not identical to the truth
    assert 0.5 < results[2]['copy_last']['pixel_accuracy'] < 1.0
    table = format_table(results)
    assert 'pixel acc model' in table and len(table.splitlines()) == 5

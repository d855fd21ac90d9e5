"""Training plans: one call_train run per setting; a curriculum resumes stage after stage."""
from pathlib import Path

from call_experiments.experiment_config import load_experiment_config
from call_experiments.training_plan import plan


def test_curriculum_runs_resume_with_growing_background_and_cumulative_steps():
    runs = plan(load_experiment_config('cpu'), Path('/runs'), ['local'])
    assert [r['name'] for r in runs] == ['local_seed0']
    commands = runs[0]['commands']
    assert len(commands) == 3
    assert [c[c.index('--steps') + 1] for c in commands] == ['10000', '20000', '30000']
    assert ['--resume' in c for c in commands] == [False, True, True]
    backgrounds = [s['num_background'] for s in runs[0]['scenarios'].values()]
    assert backgrounds == [50, 150, 250]
    assert '--export' in commands[-1]


def test_every_mode_and_every_extra_threshold_gets_a_run():
    runs = plan(load_experiment_config('cpu'), Path('/runs'))
    names = [r['name'] for r in runs]
    assert {'local_seed0', 'lss_seed0', 'lsi_seed0', 'full_seed0', 'lsi_cinf_seed0',
            'lsi_c0_seed0'} <= set(names)
    single = plan(load_experiment_config('smoke'), Path('/runs'), ['lss'])[0]['commands']
    assert len(single) == 1 and '--resume' not in single[0]


def test_dry_run_prints_runnable_commands(tmp_path, capsys):
    from call_experiments.training_plan import main
    assert main(['--config', 'smoke', '--modes', 'lss', '--root', str(tmp_path)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[1].startswith('python -m call_learning.train --preset small --mode lss')
    assert not any(tmp_path.iterdir())  # a dry run writes nothing
    assert main(['--config', 'no-such-config']) == 2

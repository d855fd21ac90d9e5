"""Named experiment configs resolve; typos and bad numbers fail fast."""
from call_experiments.experiment_config import load_experiment_config, parse_sets
import pytest


@pytest.mark.parametrize('name', ['smoke', 'cpu', 'paper'])
def test_named_configs_resolve(name):
    settings = load_experiment_config(name)
    assert settings['threshold_sweep']['thresholds'][-1] == float('inf')
    assert settings['prediction']['horizons'] == [5, 30, 60]
    assert set(settings['driving']['modes']) == {'full', 'lsi', 'lss', 'local'}


def test_cpu_and_paper_configs_carry_the_curriculum():
    for name, last in (('cpu', 250), ('paper', 250)):
        stages = load_experiment_config(name)['training']['curriculum']
        assert [s['num_background'] for s in stages][0] == 50
        assert stages[-1]['num_background'] == last


def test_set_overrides_one_key():
    settings = load_experiment_config('smoke', ['driving.episodes=7', 'seeds=[1, 2]'])
    assert settings['driving']['episodes'] == 7
    assert settings['seeds'] == [1, 2]


@pytest.mark.parametrize('sets', [['driving.episodez=1'], ['nonsense=1'],
                                  ['learning_curves.ema=1.0'], ['seeds=[]']])
def test_bad_settings_fail(sets):
    with pytest.raises(ValueError):
        load_experiment_config('smoke', sets)


def test_unknown_config_name_fails():
    with pytest.raises(ValueError, match='neither'):
        load_experiment_config('gpu-please')


def test_parse_sets_builds_nested_mappings():
    assert parse_sets(['a.b.c=3']) == {'a': {'b': {'c': 3}}}
    with pytest.raises(ValueError):
        parse_sets(['novalue'])

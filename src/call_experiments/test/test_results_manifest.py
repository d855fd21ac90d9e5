"""results/config.yaml lists the sha256 of every shipped checkpoint and result file."""
import os
import shutil

from call_experiments import manifest
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))


def test_the_repository_is_here():
    assert os.path.isfile(os.path.join(ROOT, manifest.CONFIG)), (
        f'{ROOT} has no {manifest.CONFIG}: run the tests from the source tree')


def test_manifest_matches_the_files_on_disk():
    listed = manifest.load(ROOT)
    checkpoints = [p for p in listed if p.endswith('.pt')]
    assert 'src/call_world_model/checkpoints/call_small.pt' in checkpoints
    assert 'src/call_world_model/checkpoints/wm_small64g8.pt' in checkpoints
    assert any(p.startswith('results/') and p.endswith('.csv') for p in listed)
    assert manifest.differences(ROOT) == []


@pytest.fixture
def copy_of_results(tmp_path):
    """Copy results/ into a repository-shaped tmp dir (checkpoints left out: they are large)."""
    shutil.copytree(os.path.join(ROOT, 'results'), tmp_path / 'results')
    return str(tmp_path)


def test_a_changed_missing_or_unlisted_file_is_reported(copy_of_results):
    root = copy_of_results
    assert manifest.write(root)
    assert manifest.differences(root) == []
    csv = os.path.join(root, 'results', 'table6_driving.csv')
    with open(csv, 'a', encoding='utf-8') as stream:
        stream.write('\n')
    os.remove(os.path.join(root, 'results', 'report.md'))
    with open(os.path.join(root, 'results', 'extra.csv'), 'w', encoding='utf-8') as stream:
        stream.write('a\n')
    assert manifest.differences(root) == [
        'not in the manifest: results/extra.csv',
        'listed but missing: results/report.md',
        'sha256 differs: results/table6_driving.csv']
    assert manifest.main(['--root', root, '--check']) == 1
    assert manifest.main(['--root', root]) == 0
    assert manifest.main(['--root', root, '--check']) == 0

"""
The results manifest: sha256 of every shipped checkpoint and committed result file.

Why: a figure in ``results/`` or a checkpoint README is only reproducible if the file it was
made from is the file in the repository. ``results/config.yaml`` (written by
``call_evaluate``) gets a ``manifest`` section, ``{path relative to the repository: sha256}``,
and ``test_results_manifest`` checks it against the files on disk. After changing a result
or a checkpoint, refresh it with ``python -m call_experiments.manifest``; ``--check`` only
compares and exits 1 on a mismatch.
"""
import argparse
import glob
import hashlib
import os
import sys
from typing import Dict, List, Optional

import yaml

MANIFEST_KEY = 'manifest'
CONFIG = os.path.join('results', 'config.yaml')
# what ships: the packages' checkpoints and everything under results/ but the manifest itself
PATTERNS = ('src/*/checkpoints/*.pt', 'results/**/*')


def sha256(path: str) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as stream:
        for block in iter(lambda: stream.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def shipped_files(root: str) -> List[str]:
    """Repository-relative paths the manifest must cover (sorted)."""
    found = set()
    for pattern in PATTERNS:
        for path in glob.glob(os.path.join(root, pattern), recursive=True):
            relative = os.path.relpath(path, root)
            parts = relative.split(os.sep)
            if os.path.isfile(path) and relative != CONFIG and 'runs' not in parts \
                    and 'tmp' not in parts:
                found.add(relative)
    return sorted(found)


def compute(root: str) -> Dict[str, str]:
    """{relative path: sha256} of every shipped file under ``root``."""
    return {path: sha256(os.path.join(root, path)) for path in shipped_files(root)}


def load(root: str) -> Dict[str, str]:
    """Read the manifest section of ``results/config.yaml`` ({} when it has none)."""
    with open(os.path.join(root, CONFIG), encoding='utf-8') as stream:
        config = yaml.safe_load(stream) or {}
    return dict(config.get(MANIFEST_KEY) or {})


def differences(root: str) -> List[str]:
    """Human-readable mismatches between the manifest and the files (empty: they agree)."""
    listed, actual = load(root), compute(root)
    problems = [f'not in the manifest: {p}' for p in sorted(set(actual) - set(listed))]
    problems += [f'listed but missing: {p}' for p in sorted(set(listed) - set(actual))]
    problems += [f'sha256 differs: {p}' for p in sorted(set(listed) & set(actual))
                 if listed[p] != actual[p]]
    return problems


def write(root: str) -> Dict[str, str]:
    """Replace the manifest section of ``results/config.yaml``; keeps every other key."""
    path = os.path.join(root, CONFIG)
    with open(path, encoding='utf-8') as stream:
        config = yaml.safe_load(stream) or {}
    config[MANIFEST_KEY] = compute(root)
    with open(path, 'w', encoding='utf-8') as stream:
        yaml.safe_dump(config, stream, sort_keys=False, width=99)
    return config[MANIFEST_KEY]


def main(argv: Optional[List[str]] = None) -> int:
    """Write (default) or check the manifest of the repository at ``--root``."""
    parser = argparse.ArgumentParser(prog='call_manifest', description=__doc__.splitlines()[1])
    parser.add_argument('--root', default='.', help='repository root (default: cwd)')
    parser.add_argument('--check', action='store_true', help='compare only; exit 1 on mismatch')
    args = parser.parse_args(argv)
    if not os.path.isfile(os.path.join(args.root, CONFIG)):
        print(f'call_manifest: no {CONFIG} under {os.path.abspath(args.root)}', file=sys.stderr)
        return 2
    if args.check:
        problems = differences(args.root)
        print('\n'.join(problems) or 'manifest matches the files')
        return 1 if problems else 0
    for path, digest in write(args.root).items():
        print(f'{digest}  {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

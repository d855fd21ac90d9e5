"""
`call_train_experiments`: the call_train runs behind the tables, one per setting.

For every mode (local, lss, lsi, full), extra LSI thresholds c (Fig. 19) and seed of the
experiment config's ``training`` section this prints (or, with ``--run``, executes in turn)
the ``call_train`` commands (as ``python -m call_world_model.train``). A curriculum (paper:
50 -> 150 -> 250 background vehicles) becomes one scenario YAML per stage and one call_train
call per stage, each resuming the previous stage's checkpoint up to the cumulative step count.
"""
import argparse
import math
from pathlib import Path
import shlex
import subprocess
import sys
from typing import Any, Dict, List, Optional

from call_experiments.experiment_config import load_experiment_config
from call_sim.scenario import load_scenario
import yaml


def _tag(mode: str, threshold: Optional[float], seed: int) -> str:
    c = '' if threshold is None else ('_cinf' if math.isinf(threshold) else f'_c{threshold:g}')
    return f'{mode}{c}_seed{seed}'


def plan(settings: Dict[str, Any], root: Path, modes: Optional[List[str]] = None
         ) -> List[Dict[str, Any]]:
    """List the runs: {name, mode, logdir, scenarios: {path: dict}, commands}."""
    t = settings['training']
    runs = []
    settings_list = [(m, None) for m in (modes or t['modes'])]
    if modes is None or 'lsi' in modes:
        settings_list += [('lsi', float(c)) for c in t['thresholds']]
    for mode, threshold in settings_list:
        for seed in t['seeds']:
            name = _tag(mode, threshold, int(seed))
            logdir = root / name
            base = ['python', '-m', 'call_world_model.train', '--preset', str(t['preset']),
                    '--mode', mode,
                    '--train-ratio', str(t['train_ratio']), '--prefill', str(t['prefill']),
                    '--threads', str(t['threads']), '--seed', str(seed),
                    '--logdir', str(logdir), '--no-progress']
            if threshold is not None:
                base += ['--c', 'inf' if math.isinf(threshold) else f'{threshold:g}']
            stages = t['curriculum'] or [{'num_background': None, 'steps': t['steps']}]
            scenarios, commands, total = {}, [], 0
            for i, stage in enumerate(stages):
                total += int(stage['steps'])
                scenario: Any = t['scenario']
                if stage['num_background'] is not None:
                    path = logdir / f'stage{i}_bg{stage["num_background"]}.yaml'
                    scenarios[str(path)] = dict(load_scenario(t['scenario']),
                                                num_background=int(stage['num_background']))
                    scenario = str(path)
                cmd = base + ['--scenario', scenario, '--steps', str(total)]
                if i > 0:
                    cmd.append('--resume')
                commands.append(cmd)
            commands[-1] += ['--export', str(logdir / 'export.pt')]
            runs.append({'name': name, 'mode': mode, 'logdir': str(logdir),
                         'scenarios': scenarios,
                         'commands': commands})
    return runs


def main(argv: Optional[List[str]] = None) -> int:
    """Print the plan; ``--run`` writes the stage scenarios and runs the commands in turn."""
    parser = argparse.ArgumentParser(prog='call_train_experiments', description=__doc__)
    parser.add_argument('--config', default='cpu', help='smoke | cpu | paper or a YAML path')
    parser.add_argument('--set', dest='sets', action='append', default=[])
    parser.add_argument('--root', default='runs', help='one TensorBoard logdir per run here')
    parser.add_argument('--modes', nargs='+', choices=('local', 'lss', 'lsi', 'full'))
    parser.add_argument('--run', action='store_true', help='execute (default: print only)')
    args = parser.parse_args(argv)
    try:
        runs = plan(load_experiment_config(args.config, args.sets), Path(args.root),
                    args.modes)
    except (ValueError, FileNotFoundError) as exc:
        print(f'call_train_experiments: error: {exc}', file=sys.stderr)
        return 2
    for run in runs:
        print(f'# {run["name"]} (evaluate with '
              f'--checkpoints {run["mode"]}={run["logdir"]}/export.pt '
              f'--logdirs {run["mode"]}={run["logdir"]})')
        for cmd in run['commands']:
            print(shlex.join(cmd))
        if not args.run:
            continue
        for path, scenario in run['scenarios'].items():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(yaml.safe_dump(scenario, sort_keys=False))
        for cmd in run['commands']:
            code = subprocess.run([sys.executable] + cmd[1:]).returncode
            if code != 0:
                print(f'call_train_experiments: {run["name"]} failed with status {code}',
                      file=sys.stderr)
                return code
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""
The command line the driving diagnostics share: seeds driven as `driving_eval` drives them.

Why: a diagnostic must see the same fleet, planner.yaml and shipped model as the evaluation
whose figures it explains; only what it records differs (its `diagnose`).
"""
import argparse
import json
from typing import Any, Callable, List, Optional, Sequence, Tuple

from call_experiments import driving_eval


def drive_seeds(description: str, diagnose: Callable[..., Any],
                argv: Optional[Sequence[str]], seeds: Sequence[int]
                ) -> Tuple[argparse.Namespace, List[Any]]:
    """
    Parse the shared options and run `diagnose` on each seed.

    `diagnose(loaded, mode, scenario, seed, steps, planner, c)` gets the shipped model, the
    planner's parameters with the --set overrides and c. Returns the options and the per-seed
    results, which are also written to --out.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('--scenario', default='crossroad_occluded')
    parser.add_argument('--mode', default='lsi')
    parser.add_argument('--seeds', nargs='+', type=int, default=list(seeds))
    parser.add_argument('--steps', type=int, default=700)
    parser.add_argument('--c', type=float, default=driving_eval.DEFAULT_C)
    parser.add_argument('--set', dest='sets', action='append', default=[],
                        help='planner.yaml override, key=value (repeatable)')
    parser.add_argument('--out', default=None, help='JSON of the per-seed results')
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    from call_planner.plan_stage import planner_params
    planner = planner_params(dict(item.split('=', 1) for item in args.sets))
    loaded = driving_eval.load_policy_models(driving_eval.shipped_checkpoint())
    results = [diagnose(loaded, args.mode, args.scenario, seed, args.steps, planner, args.c)
               for seed in args.seeds]
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(results, f, indent=1)
    return args, results

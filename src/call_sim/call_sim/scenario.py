"""
Scenario files: which map, how many CALL/background vehicles, seed, K, speeds, ...

A scenario is config/sim.yaml (all defaults) overridden by a scenario YAML or dict.
"""
from pathlib import Path
from typing import Any, Mapping

from call_sim.config import config_dir, load_yaml, merge

MAX_BACKGROUND = 250


def load_scenario(path_or_dict: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """Resolve a scenario (dict, YAML path or name in config/scenarios) and validate it."""
    if isinstance(path_or_dict, Mapping):
        overrides = dict(path_or_dict)
    else:
        path = Path(path_or_dict)
        if not path.is_file():
            named = config_dir() / 'scenarios' / f'{path_or_dict}.yaml'
            if not named.is_file():
                known = sorted(p.stem for p in named.parent.glob('*.yaml'))
                raise FileNotFoundError(f'scenario {path_or_dict!r} is neither a file nor one '
                                        f'of {known}')
            path = named
        overrides = load_yaml(path)
    scenario = merge(load_yaml(config_dir() / 'sim.yaml'), overrides)
    _validate(scenario)
    return scenario


def _validate(s: Mapping[str, Any]) -> None:
    checks = [
        (int(s['num_controlled']) >= 1, 'num_controlled must be >= 1'),
        (0 <= int(s['num_background']) <= MAX_BACKGROUND,
         f'num_background must be in [0, {MAX_BACKGROUND}]'),
        (int(s['K']) >= 1, 'K (re-planning period in steps) must be >= 1'),
        (int(s['episode_steps']) >= 1, 'episode_steps must be >= 1'),
        (float(s['dt']) > 0.0, 'dt must be positive'),
        (float(s['route']['length']) > 0.0, 'route.length must be positive'),
        (float(s['route']['spacing']) > 0.0, 'route.spacing must be positive'),
        (s['route']['start_window'] is None
         or (len(s['route']['start_window']) == 2
             and 0.0 <= float(s['route']['start_window'][0])
             <= float(s['route']['start_window'][1])),
         'route.start_window must be null or [from, to] with 0 <= from <= to'),
        (len(s['speeds']['controlled_initial']) == 2
         and 0.0 <= s['speeds']['controlled_initial'][0] <= s['speeds']['controlled_initial'][1],
         'speeds.controlled_initial must be [low, high] with 0 <= low <= high'),
    ]
    for ok, reason in checks:
        if not ok:
            raise ValueError(f'invalid scenario: {reason}')
    _validate_vehicle_types(s['background']['types'])


VEHICLE_TYPE_KEYS = {'name', 'length', 'width', 'share', 'max_speed'}


def _validate_vehicle_types(types: Any) -> None:
    """Background vehicle types: unique names, positive sizes, shares that sum to <= 1."""
    if not isinstance(types, list):
        raise ValueError('invalid scenario: background.types must be a list')
    names = set()
    for entry in types:
        if not isinstance(entry, Mapping) or set(entry) != VEHICLE_TYPE_KEYS:
            raise ValueError(f'invalid scenario: background.types entries need exactly the keys '
                             f'{sorted(VEHICLE_TYPE_KEYS)}, got {entry!r}')
        if entry['name'] in names:
            raise ValueError(f"invalid scenario: background type {entry['name']!r} twice")
        names.add(entry['name'])
        if not (float(entry['length']) > 0 and float(entry['width']) > 0
                and float(entry['max_speed']) > 0 and 0 <= float(entry['share']) <= 1):
            raise ValueError(f'invalid scenario: background type {entry!r} needs positive sizes '
                             f'and speed and a share in [0, 1]')
    if sum(float(e['share']) for e in types) > 1.0 + 1e-9:
        raise ValueError('invalid scenario: background.types shares sum to more than 1')

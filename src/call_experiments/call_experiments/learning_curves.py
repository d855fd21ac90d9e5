"""Return vs environment steps from call_train's TensorBoard event files (paper Fig. 2, 11)."""
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

Curve = Tuple[str, np.ndarray, np.ndarray]  # (run dir, steps, values)


def read_scalar(logdir: str, tag: str) -> Tuple[np.ndarray, np.ndarray]:
    """Return (steps, values) of one scalar tag of a TensorBoard run (all events kept)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    if not Path(logdir).is_dir():
        raise FileNotFoundError(f'TensorBoard run {logdir!r} does not exist')
    accumulator = EventAccumulator(str(logdir), size_guidance={'scalars': 0})
    accumulator.Reload()
    if tag not in accumulator.Tags().get('scalars', []):
        raise KeyError(f'{logdir} has no scalar {tag!r} (has '
                       f'{sorted(accumulator.Tags().get("scalars", []))})')
    events = accumulator.Scalars(tag)
    return (np.array([e.step for e in events], dtype=np.int64),
            np.array([e.value for e in events], dtype=np.float64))


def read_curves(logdirs: Dict[str, List[str]], tag: str, modes: Sequence[str]
                ) -> Tuple[Dict[str, List[Curve]], List[str]]:
    """Curves per mode and the reasons for every mode without one."""
    curves: Dict[str, List[Curve]] = {}
    missing: List[str] = []
    for mode in modes:
        for logdir in logdirs.get(mode, []):
            try:
                steps, values = read_scalar(logdir, tag)
            except (FileNotFoundError, KeyError) as exc:
                missing.append(f'Learning curve {mode}: {exc}')
                continue
            if len(values) == 0:
                missing.append(f'Learning curve {mode}: {logdir} has no {tag} events yet')
                continue
            curves.setdefault(mode, []).append((str(logdir), steps, values))
        if mode not in curves and not logdirs.get(mode):
            missing.append(f'Learning curve {mode}: no TensorBoard run given '
                           f'(--logdirs {mode}=DIR of a call_train --mode {mode} run)')
    return curves, missing

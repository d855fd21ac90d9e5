"""
Read the model config a checkpoint carries without torch (for the tools that start the nodes).

`call_bringup` derives node parameters from the fleet's checkpoint (e.g. the BEV size the
perception nodes render at) before any node starts; importing torch and loading the weights
there would cost the launcher seconds for a dozen numbers. A `torch.save` file is a zip
archive whose `*/data.pkl` pickles the payload dict, tensors as persistent references; this
module unpickles it with every tensor and storage replaced by None and keeps the `config`
entry and whether an actor-critic is stored. Only plain containers and numbers are built: any
other class is refused.
"""
from dataclasses import dataclass
import io
import os
import pickle
from typing import Any, Dict
import zipfile

from call_world_model.config import WorldModelConfig


class _Skipped:
    """Stands in for a tensor, a storage or a torch class: the config needs none of them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Accept whatever the pickled rebuild call passes."""

    def __call__(self, *args: Any, **kwargs: Any) -> '_Skipped':
        """Rebuild calls (torch._utils._rebuild_tensor_v2(...)) return another stand-in."""
        return _Skipped()


_PLAIN = {('collections', 'OrderedDict'), ('builtins', 'set'), ('builtins', 'frozenset'),
          ('builtins', 'slice')}


class _ConfigUnpickler(pickle.Unpickler):
    """Unpickle a checkpoint payload: torch objects become `_Skipped`, nothing else runs."""

    def find_class(self, module: str, name: str) -> Any:
        if module.split('.')[0] == 'torch':
            return _Skipped
        if (module, name) in _PLAIN:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f'a checkpoint payload holds no {module}.{name}')

    def persistent_load(self, pid: Any) -> Any:
        return _Skipped()


@dataclass(frozen=True)
class Summary:
    """What a checkpoint holds, without its weights."""

    cfg: WorldModelConfig
    has_actor_critic: bool      # False: a world model alone (nothing the planner can drive)


def read_summary(path: str) -> Summary:
    """
    Return the WorldModelConfig stored in the checkpoint at `path` and its contents.

    ValueError with the reason for a missing file, a file that is no zip-format torch
    checkpoint, or a payload without a valid config (`checkpoint.load` gives the same
    reasons with the weights).
    """
    if not os.path.isfile(path):
        raise ValueError(f'checkpoint {path!r} does not exist')
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith('/data.pkl')]
            if len(names) != 1:
                raise ValueError(f'checkpoint {path!r} is not a torch.save archive')
            payload = _ConfigUnpickler(io.BytesIO(archive.read(names[0]))).load()
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError) as exc:
        raise ValueError(f'checkpoint {path!r} is corrupt or not a CALL checkpoint: '
                         f'{exc}') from exc
    config: Dict[str, Any] = payload.get('config') if isinstance(payload, dict) else None
    if not isinstance(config, dict):
        raise ValueError(f'checkpoint {path!r} carries no model config')
    try:
        cfg = WorldModelConfig.from_dict(config)
    except (TypeError, ValueError) as exc:
        raise ValueError(f'checkpoint {path!r} carries an invalid config: {exc}') from exc
    return Summary(cfg, payload.get('actor_critic') is not None)

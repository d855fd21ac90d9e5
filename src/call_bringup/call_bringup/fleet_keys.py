"""Fleet keys for one run: every CALL vehicle signs its V2V messages (call_comm.auth)."""
import os
from pathlib import Path

from call_bringup.graph import fleet_key_paths
import yaml


def ensure_fleet_keys(keys_dir: str, roles: list[str]) -> str:
    """Create keys for `roles` in `keys_dir` unless a fleet covering them is there already."""
    paths = fleet_key_paths(keys_dir, roles)
    if all(os.path.isfile(path) for path in paths.values()):
        with open(paths['fleet'], encoding='utf-8') as stream:
            fleet = (yaml.safe_load(stream) or {}).get('vehicles', {})
        if set(roles) <= set(fleet):
            return paths['fleet']
    from call_comm.keygen import write_fleet
    return str(write_fleet(roles, Path(keys_dir)))

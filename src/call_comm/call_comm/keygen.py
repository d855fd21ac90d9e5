"""
Generate a fleet key file and one private key file per vehicle.

    python -m call_comm.keygen --vehicles hero0 hero1 --out keys/ [--embed-private]

writes keys/fleet.yaml (public keys; with --embed-private also the private keys, for demos)
and keys/<vehicle>.key.yaml (private key, mode 0600).
"""
import argparse
import base64
import os
from pathlib import Path
from typing import Iterable, List, Optional

from call_comm.auth import private_raw, public_raw
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
import yaml


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode('ascii')


def write_fleet(vehicles: Iterable[str], out_dir: Path, embed_private: bool = False) -> Path:
    """Create keys for `vehicles` under `out_dir`; return the fleet file path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = {}
    for vehicle_id in vehicles:
        key = Ed25519PrivateKey.generate()
        entries[vehicle_id] = {'public_key': _b64(public_raw(key))}
        if embed_private:
            entries[vehicle_id]['private_key'] = _b64(private_raw(key))
        key_path = out_dir / f'{vehicle_id}.key.yaml'
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as stream:
            yaml.safe_dump({'vehicle_id': vehicle_id, 'private_key': _b64(private_raw(key))},
                           stream)
    fleet_path = out_dir / 'fleet.yaml'
    fleet_path.write_text(yaml.safe_dump({'vehicles': entries}, sort_keys=True))
    if embed_private:
        os.chmod(fleet_path, 0o600)
    return fleet_path


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--vehicles', nargs='+', required=True, help='role names, e.g. hero0')
    parser.add_argument('--out', required=True, type=Path, help='output directory')
    parser.add_argument('--embed-private', action='store_true',
                        help='also store private keys in fleet.yaml (demo only)')
    args = parser.parse_args(argv)
    if len(set(args.vehicles)) != len(args.vehicles):
        parser.error('vehicle ids must be unique')
    path = write_fleet(args.vehicles, args.out, args.embed_private)
    print(f'wrote {path} and {len(args.vehicles)} private key files')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

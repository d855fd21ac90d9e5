"""
carla-ros-bridge hook-up: the bridge's parameters file and the spawn-objects file.

The bridge turns a vehicle into an ego (control subscription, vehicle status) only if its role
name is in ``ego_vehicle_role_name``; odometry and objects exist only as pseudo-sensors listed
under the vehicle in the ``objects_definition_file`` read by ``carla_spawn_objects``. Spawn
points go into that file, because per-id spawn-point parameters are partly broken upstream
(carla-simulator/ros-bridge#697). Poses in the file are ROS ``map`` poses (the bridge negates y
and yaw into CARLA's frame), i.e. exactly our map frame; yaw in degrees.
"""
import argparse
from dataclasses import dataclass
import json
import math
import os
import sys
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from call_carla.topics import role_names, vehicle_sensors
import yaml

PARAMS_FILE = 'carla_bridge_params.yaml'
OBJECTS_FILE = 'carla_objects.json'


@dataclass(frozen=True)
class SpawnPoint:
    """A spawn pose in the map frame (x east, y north, yaw degrees counter-clockwise)."""

    x: float
    y: float
    z: float
    yaw: float
    roll: float = 0.0
    pitch: float = 0.0

    def __post_init__(self) -> None:
        values = (self.x, self.y, self.z, self.yaw, self.roll, self.pitch)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f'spawn point must be finite, got {values}')

    def as_json(self) -> dict:
        """Return the carla_spawn_objects "spawn_point" entry."""
        return {'x': self.x, 'y': self.y, 'z': self.z,
                'roll': self.roll, 'pitch': self.pitch, 'yaw': self.yaw}

    @classmethod
    def from_carla(cls, x: float, y: float, z: float, yaw_deg: float) -> 'SpawnPoint':
        """Convert a CARLA (left-handed) location and yaw to the map frame."""
        return cls(float(x), -float(y), float(z), -float(yaw_deg))

    def to_carla(self) -> Tuple[float, float, float, float]:
        """(x, y, z, yaw_deg) in CARLA's left-handed frame."""
        return self.x, -self.y, self.z, -self.yaw


def bridge_parameters(roles: Sequence[str], town: str = 'Town04', host: str = 'localhost',
                      port: int = 2000, timeout: float = 10.0,
                      fixed_delta_seconds: float = 0.1) -> Dict[str, object]:
    """Parameters of the carla_ros_bridge node for the paper's synchronous 0.1 s setting."""
    if not roles:
        raise ValueError('at least one ego role name is needed')
    if not fixed_delta_seconds > 0.0:
        raise ValueError(f'fixed_delta_seconds must be positive, got {fixed_delta_seconds}')
    return {
        'use_sim_time': True,
        'host': str(host),
        'port': int(port),
        'timeout': float(timeout),
        'passive': False,  # the bridge ticks the world
        'synchronous_mode': True,
        'synchronous_mode_wait_for_vehicle_control_command': True,
        'fixed_delta_seconds': float(fixed_delta_seconds),
        'town': str(town),
        'register_all_sensors': True,
        'ego_vehicle_role_name': list(roles),
    }


def spawn_objects(roles: Sequence[str], blueprint: str,
                  spawn_points: Optional[Mapping[str, SpawnPoint]] = None,
                  children_key: str = 'sensors') -> dict:
    """
    Build the objects_definition_file: one vehicle per role with its sensors.

    ``children_key`` names the list of attached sensors: ``sensors`` in the released ROS 2
    carla_spawn_objects; newer example files nest them under ``objects``. The global
    ``sensor.pseudo.actor_list`` lets ``spawn_sensors_only:=true`` attach the sensors to
    vehicles our scenario tool spawned itself (matched by blueprint id and role name).
    """
    objects: List[dict] = [{'type': 'sensor.pseudo.actor_list', 'id': 'actor_list'}]
    for role in roles:
        vehicle = {'type': blueprint, 'id': role}
        if spawn_points is not None:
            if role not in spawn_points:
                raise ValueError(f'no spawn point for {role}')
            vehicle['spawn_point'] = spawn_points[role].as_json()
        vehicle[children_key] = vehicle_sensors()
        objects.append(vehicle)
    return {'objects': objects}


def write_bridge_files(out_dir: str, roles: Sequence[str], blueprint: str,
                       spawn_points: Optional[Mapping[str, SpawnPoint]] = None,
                       children_key: str = 'sensors', **bridge_kwargs) -> Tuple[str, str]:
    """Write the parameters YAML (``/**: ros__parameters``) and the objects JSON; return paths."""
    os.makedirs(out_dir, exist_ok=True)
    params_path = os.path.join(out_dir, PARAMS_FILE)
    objects_path = os.path.join(out_dir, OBJECTS_FILE)
    params = {'/**': {'ros__parameters': bridge_parameters(roles, **bridge_kwargs)}}
    with open(params_path, 'w', encoding='utf-8') as handle:
        yaml.safe_dump(params, handle, sort_keys=False)
    with open(objects_path, 'w', encoding='utf-8') as handle:
        json.dump(spawn_objects(roles, blueprint, spawn_points, children_key), handle, indent=2)
    return params_path, objects_path


def load_spawn_points(path: str) -> Dict[str, SpawnPoint]:
    """Read ``{role: {x, y, z, yaw}}`` (YAML or JSON; map frame, yaw in degrees)."""
    with open(path, encoding='utf-8') as handle:
        data = yaml.safe_load(handle)
    if not isinstance(data, dict):
        raise ValueError(f'{path}: expected a mapping role -> {{x, y, z, yaw}}')
    try:
        return {str(role): SpawnPoint(float(p['x']), float(p['y']), float(p.get('z', 0.5)),
                                      float(p.get('yaw', 0.0))) for role, p in data.items()}
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f'{path}: bad spawn point ({err})') from None


def main(argv: Optional[List[str]] = None) -> int:
    """Console script ``call_carla_bridge_config``: write both bridge files for N vehicles."""
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--vehicles', type=int, default=4, help='number of CALL vehicles')
    parser.add_argument('--role-prefix', default='hero')
    parser.add_argument('--blueprint', default='vehicle.tesla.model3')
    parser.add_argument('--spawn-points', help='YAML/JSON {role: {x, y, z, yaw}} (map frame)')
    parser.add_argument('--children-key', default='sensors', choices=('sensors', 'objects'))
    parser.add_argument('--town', default='Town04')
    parser.add_argument('--host', default='localhost')
    parser.add_argument('--port', type=int, default=2000)
    parser.add_argument('--timeout', type=float, default=10.0)
    parser.add_argument('--fixed-delta-seconds', type=float, default=0.1)
    parser.add_argument('--out', default='.', help='output directory')
    args = parser.parse_args(argv)
    try:
        roles = role_names(args.vehicles, args.role_prefix)
        points = load_spawn_points(args.spawn_points) if args.spawn_points else None
        paths = write_bridge_files(args.out, roles, args.blueprint, points, args.children_key,
                                   town=args.town, host=args.host, port=args.port,
                                   timeout=args.timeout,
                                   fixed_delta_seconds=args.fixed_delta_seconds)
    except (OSError, ValueError) as err:
        print(f'call_carla_bridge_config: {err}', file=sys.stderr)
        return 2
    print('\n'.join(paths))
    return 0


if __name__ == '__main__':
    sys.exit(main())

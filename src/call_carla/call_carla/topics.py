"""
The one table of simulator topics, and who provides each one on either backend.

Our nodes only know the ``/carla/...`` names of DEVELOPERS.md. The embedded simulator publishes
them itself; with CARLA, carla-ros-bridge does: the odometry and objects topics exist only
because the spawn-objects file attaches pseudo-sensors with exactly these ids, vehicle status
and the control subscription belong to every ego vehicle, and the waypoints come from our
scenario tool (as carla_waypoint_publisher would).
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

# provider kinds on the CARLA backend
SENSOR = 'bridge pseudo-sensor'  # needs an entry in the spawn-objects file
EGO = 'bridge ego vehicle'  # built into carla_ros_bridge's EgoVehicle
BRIDGE = 'bridge world'  # published by carla_ros_bridge itself
SCENARIO = 'call_carla scenario tool'
STACK = 'CALL planner'  # our node publishes, the simulator subscribes


@dataclass(frozen=True)
class VehicleTopic:
    """A per-vehicle topic ``/carla/<role>/<suffix>`` and its CARLA-side provider."""

    suffix: str
    msg_type: str
    provider: str
    sensor_type: Optional[str] = None  # CARLA blueprint id when provider is SENSOR
    in_contract: bool = True  # listed in DEVELOPERS.md (False: extra topic for metrics)

    def name(self, role: str) -> str:
        """Return the absolute topic name for one vehicle."""
        return f'/carla/{role}/{self.suffix}'


VEHICLE_TOPICS: Sequence[VehicleTopic] = (
    VehicleTopic('odometry', 'nav_msgs/msg/Odometry', SENSOR, 'sensor.pseudo.odom'),
    VehicleTopic('vehicle_status', 'carla_msgs/msg/CarlaEgoVehicleStatus', EGO),
    VehicleTopic('objects', 'derived_object_msgs/msg/ObjectArray', SENSOR,
                 'sensor.pseudo.objects'),
    VehicleTopic('waypoints', 'nav_msgs/msg/Path', SCENARIO),
    VehicleTopic('vehicle_control_cmd', 'carla_msgs/msg/CarlaEgoVehicleControl', STACK),
    VehicleTopic('speedometer', 'std_msgs/msg/Float32', SENSOR, 'sensor.pseudo.speedometer',
                 in_contract=False),
    VehicleTopic('collision', 'carla_msgs/msg/CarlaCollisionEvent', SENSOR,
                 'sensor.other.collision', in_contract=False),
)

GLOBAL_TOPICS: Dict[str, str] = {
    '/clock': 'rosgraph_msgs/msg/Clock',
    '/carla/world_info': 'carla_msgs/msg/CarlaWorldInfo',
    '/carla/status': 'carla_msgs/msg/CarlaStatus',
}


def role_names(count: int, prefix: str = 'hero') -> List[str]:
    """Return the CARLA role names of the CALL vehicles: hero0 .. hero<count-1>."""
    if count < 1:
        raise ValueError(f'need at least one CALL vehicle, got {count}')
    return [f'{prefix}{i}' for i in range(count)]


def topic(role: str, suffix: str) -> str:
    """Return the absolute name of a per-vehicle topic from the table (else KeyError)."""
    for entry in VEHICLE_TOPICS:
        if entry.suffix == suffix:
            return entry.name(role)
    raise KeyError(f'no per-vehicle topic {suffix!r} in call_carla.topics.VEHICLE_TOPICS')


def vehicle_sensors() -> List[dict]:
    """List the sensors a CALL vehicle needs in the spawn-objects file (id = topic suffix)."""
    sensors = []
    for entry in VEHICLE_TOPICS:
        if entry.provider == SENSOR:
            sensor = {'type': entry.sensor_type, 'id': entry.suffix}
            if not entry.sensor_type.startswith('sensor.pseudo.'):
                sensor['spawn_point'] = {'x': 0.0, 'y': 0.0, 'z': 0.0,
                                         'roll': 0.0, 'pitch': 0.0, 'yaw': 0.0}
            sensors.append(sensor)
    return sensors

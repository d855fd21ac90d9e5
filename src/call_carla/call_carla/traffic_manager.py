"""
Traffic Manager settings for the background vehicles, built from the scenario YAML.

The settings become an explicit list of ``carla.TrafficManager`` method calls, so a scenario
file can be checked (names, ranges) without a server and the same calls are applied to a live
Traffic Manager. Per-vehicle lane-change percentages are applied to each background vehicle.
"""
from dataclasses import dataclass, fields
import math
from typing import Any, List, Mapping, Tuple

Call = Tuple[str, tuple]


@dataclass(frozen=True)
class TrafficManagerSettings:
    """Global and per-vehicle Traffic Manager behaviour of the background traffic."""

    global_distance_to_leading_vehicle: float = 2.5  # [m]
    global_percentage_speed_difference: float = 10.0  # [%] below the limit; < 0 = faster
    auto_lane_change: bool = True
    random_left_lanechange_percentage: float = 0.0  # [%]
    random_right_lanechange_percentage: float = 0.0  # [%]
    seed: int = 0
    hybrid_physics: bool = True
    hybrid_physics_radius: float = 70.0  # [m]
    respawn_dormant_vehicles: bool = False

    def __post_init__(self) -> None:
        numbers = {f.name: getattr(self, f.name) for f in fields(self)
                   if f.type in (float, 'float')}
        bad = [name for name, value in numbers.items() if not math.isfinite(value)]
        if bad:
            raise ValueError(f'traffic_manager: non-finite {", ".join(bad)}')
        if self.global_distance_to_leading_vehicle < 0.0:
            raise ValueError('traffic_manager.global_distance_to_leading_vehicle must be >= 0')
        if not -100.0 <= self.global_percentage_speed_difference <= 100.0:
            raise ValueError('traffic_manager.global_percentage_speed_difference must lie in '
                             '[-100, 100]')
        for name in ('random_left_lanechange_percentage', 'random_right_lanechange_percentage'):
            if not 0.0 <= getattr(self, name) <= 100.0:
                raise ValueError(f'traffic_manager.{name} must lie in [0, 100]')
        if self.hybrid_physics_radius <= 0.0:
            raise ValueError('traffic_manager.hybrid_physics_radius must be positive')

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> 'TrafficManagerSettings':
        """Build from the scenario's ``traffic_manager`` mapping; unknown keys fail fast."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise ValueError(f'traffic_manager: unknown keys {unknown}; known: {sorted(known)}')
        kwargs = {}
        for name, value in config.items():
            kind = known[name].type
            kind = {'float': float, 'int': int, 'bool': bool}.get(kind, kind)
            if kind is bool and not isinstance(value, bool):
                raise ValueError(f'traffic_manager.{name} must be true or false, got {value!r}')
            try:
                kwargs[name] = kind(value)
            except (TypeError, ValueError):
                raise ValueError(f'traffic_manager.{name}: cannot read {value!r} as '
                                 f'{kind.__name__}') from None
        return cls(**kwargs)

    def global_calls(self) -> List[Call]:
        """List the calls on the Traffic Manager itself (sync mode is set with the world)."""
        return [
            ('set_global_distance_to_leading_vehicle', (self.global_distance_to_leading_vehicle,)),
            ('global_percentage_speed_difference', (self.global_percentage_speed_difference,)),
            ('set_random_device_seed', (self.seed,)),
            ('set_hybrid_physics_mode', (self.hybrid_physics,)),
            ('set_hybrid_physics_radius', (self.hybrid_physics_radius,)),
            ('set_respawn_dormant_vehicles', (self.respawn_dormant_vehicles,)),
        ]

    def vehicle_calls(self) -> List[Call]:
        """List the calls per background vehicle; each gets the actor as its first argument."""
        return [
            ('auto_lane_change', (self.auto_lane_change,)),
            ('random_left_lanechange_percentage', (self.random_left_lanechange_percentage,)),
            ('random_right_lanechange_percentage', (self.random_right_lanechange_percentage,)),
        ]

    def apply(self, traffic_manager: Any, vehicles: List[Any]) -> None:
        """Apply to a live ``carla.TrafficManager`` and the background vehicles."""
        for method, args in self.global_calls():
            getattr(traffic_manager, method)(*args)
        for vehicle in vehicles:
            for method, args in self.vehicle_calls():
                getattr(traffic_manager, method)(vehicle, *args)


def background_count(config: Mapping[str, Any], override: int = -1) -> int:
    """Return the number of background vehicles: the override (>= 0) or ``background.count``."""
    count = int(config.get('count', 0)) if override < 0 else int(override)
    if count < 0:
        raise ValueError(f'background vehicle count must be >= 0, got {count}')
    return count

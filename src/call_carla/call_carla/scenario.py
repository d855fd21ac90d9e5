"""
A CARLA Town04 episode: world settings, CALL vehicles, background traffic, and clean-up.

``CarlaScenario`` is a context manager around a connected ``carla.Client``: entering it loads
the town, switches to synchronous mode at the configured step, plans the routes, spawns the
CALL vehicles (role names hero0..) and the background vehicles under the Traffic Manager;
leaving it - normally, on an exception or on Ctrl-C - destroys every actor it spawned and
restores the world's previous settings, so no actor leaks into the next run.
"""
from dataclasses import dataclass
import math
import random
from typing import Any, Dict, List, Mapping, Optional

from call_carla.routes import choose_section, plan_routes, Route, SectionConfig
from call_carla.topics import role_names
from call_carla.traffic_manager import background_count, TrafficManagerSettings
import yaml

LOAD_WORLD_TIMEOUT_S = 60.0  # loading a town takes far longer than an RPC round trip


class ScenarioError(RuntimeError):
    """The scenario cannot be set up (no server, bad configuration, no room to spawn)."""


@dataclass
class ScenarioConfig:
    """The scenario YAML, validated."""

    host: str
    port: int
    timeout_s: float
    town: str
    fixed_delta_seconds: float
    tm_port: int
    vehicles: int
    role_prefix: str
    blueprint: str
    spawned_by: str
    background: int
    background_filter: str
    four_wheels_only: bool
    min_distance_to_call_m: float
    traffic_manager: TrafficManagerSettings
    section: SectionConfig
    seed: int

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> 'ScenarioConfig':
        """Validate a parsed scenario YAML (ValueError with the offending key)."""
        try:
            carla_cfg, call_cfg = data['carla'], data['call_vehicles']
            background = data.get('background', {})
            config = cls(
                host=str(carla_cfg['host']), port=int(carla_cfg['port']),
                timeout_s=float(carla_cfg['timeout_s']), town=str(carla_cfg['town']),
                fixed_delta_seconds=float(carla_cfg['fixed_delta_seconds']),
                tm_port=int(carla_cfg.get('tm_port', 8000)),
                vehicles=int(call_cfg['count']), role_prefix=str(call_cfg['role_prefix']),
                blueprint=str(call_cfg['blueprint']),
                spawned_by=str(call_cfg.get('spawned_by', 'tool')),
                background=background_count(background),
                background_filter=str(background.get('blueprint_filter', 'vehicle.*')),
                four_wheels_only=bool(background.get('four_wheels_only', True)),
                min_distance_to_call_m=float(background.get('min_distance_to_call_m', 15.0)),
                traffic_manager=TrafficManagerSettings.from_config(
                    data.get('traffic_manager', {})),
                section=SectionConfig.from_config(data.get('section', {})),
                seed=int(data.get('seed', 0)))
        except KeyError as err:
            raise ValueError(f'scenario: missing key {err}') from None
        except (TypeError, AttributeError) as err:
            raise ValueError(f'scenario: malformed ({err})') from None
        if config.spawned_by not in ('tool', 'bridge'):
            raise ValueError("call_vehicles.spawned_by must be 'tool' or 'bridge'")
        if not 0.0 < config.fixed_delta_seconds <= 0.5:
            raise ValueError('carla.fixed_delta_seconds must lie in (0, 0.5]')
        if config.timeout_s <= 0.0:
            raise ValueError('carla.timeout_s must be positive')
        role_names(config.vehicles, config.role_prefix)
        return config

    @classmethod
    def from_file(cls, path: str) -> 'ScenarioConfig':
        """Read and validate a scenario YAML file."""
        with open(path, encoding='utf-8') as handle:
            data = yaml.safe_load(handle)
        if not isinstance(data, dict):
            raise ValueError(f'{path}: a scenario file is a YAML mapping')
        return cls.from_mapping(data)

    @property
    def roles(self) -> List[str]:
        """Return the role names of the CALL vehicles."""
        return role_names(self.vehicles, self.role_prefix)


def connect(host: str, port: int, timeout_s: float) -> Any:
    """Return a ``carla.Client`` that answered; ScenarioError after ~timeout_s if none."""
    import carla  # the client library is only needed when a server is used
    client = carla.Client(host, int(port))
    client.set_timeout(float(timeout_s))
    try:
        server = client.get_server_version()
    except RuntimeError as err:
        raise ScenarioError(
            f'no CARLA server answered at {host}:{port} within {timeout_s:g} s '
            f'(start one, e.g. docker compose -f docker/docker-compose.yml up carla): {err}'
        ) from None
    client_version = client.get_client_version()
    if server.split('-')[0] != client_version.split('-')[0]:
        print(f'[call_carla] warning: CARLA server {server} != client {client_version}; '
              'the 0.9.15/0.9.16 APIs used here are compatible')
    return client


class CarlaScenario:
    """World settings + actors of one episode, restored/destroyed on exit."""

    def __init__(self, client: Any, config: ScenarioConfig,
                 background: Optional[int] = None) -> None:
        """Keep the client and configuration; nothing touches the server before enter."""
        self.client = client
        self.config = config
        self.background = config.background if background is None else int(background)
        self.rng = random.Random(config.seed)
        self.world = None
        self.traffic_manager = None
        self.routes: List[Route] = []
        self.call_actors: Dict[str, Any] = {}
        self.spawned_ids: List[int] = []
        self._original_settings = None

    def __enter__(self) -> 'CarlaScenario':
        """Set up the episode; on any failure undo what was done and re-raise."""
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        """Destroy the actors and restore the settings, whatever ended the episode."""
        self.close()

    def _setup(self) -> None:
        import carla
        cfg = self.config
        world = self.client.get_world()
        if not world.get_map().name.endswith(cfg.town):
            self.client.set_timeout(LOAD_WORLD_TIMEOUT_S)
            world = self.client.load_world(cfg.town)
            self.client.set_timeout(cfg.timeout_s)
        self.world = world
        self._original_settings = world.get_settings()
        settings = world.get_settings()
        settings.synchronous_mode = True
        settings.fixed_delta_seconds = cfg.fixed_delta_seconds
        world.apply_settings(settings)
        self.traffic_manager = self.client.get_trafficmanager(cfg.tm_port)
        self.traffic_manager.set_synchronous_mode(True)
        carla_map = world.get_map()
        try:
            section = choose_section(carla_map, cfg.section, self.rng)
            self.routes = plan_routes(section, cfg.roles, cfg.section, self.rng)
        except ValueError as err:
            raise ScenarioError(str(err)) from None
        library = world.get_blueprint_library()
        if cfg.spawned_by == 'tool':
            self._spawn_call_vehicles(carla, library)
        self._spawn_background(carla, library, carla_map)
        world.tick()  # materialise the spawns before anyone reads the world

    def _spawn_call_vehicles(self, carla: Any, library: Any) -> None:
        batch = []
        for route in self.routes:
            blueprint = library.find(self.config.blueprint)
            blueprint.set_attribute('role_name', route.role)
            x, y, z, yaw = route.spawn.to_carla()
            transform = carla.Transform(carla.Location(x=x, y=y, z=z), carla.Rotation(yaw=yaw))
            batch.append(carla.command.SpawnActor(blueprint, transform))
        for route, response in zip(self.routes, self.client.apply_batch_sync(batch, False)):
            if response.error:
                raise ScenarioError(f'cannot spawn {route.role}: {response.error}')
            self.spawned_ids.append(response.actor_id)
        for actor in self.world.get_actors(self.spawned_ids):
            self.call_actors[actor.attributes.get('role_name', '')] = actor

    def _spawn_background(self, carla: Any, library: Any, carla_map: Any) -> None:
        cfg = self.config
        blueprints = [bp for bp in library.filter(cfg.background_filter)
                      if not cfg.four_wheels_only
                      or int(bp.get_attribute('number_of_wheels').as_int()) == 4]
        if not blueprints:
            raise ScenarioError(f'no vehicle blueprint matches {cfg.background_filter!r}')
        call_xy = [route.spawn.to_carla()[:2] for route in self.routes]  # CARLA frame
        points = [p for p in carla_map.get_spawn_points()
                  if all(math.hypot(p.location.x - x, p.location.y - y)
                         >= cfg.min_distance_to_call_m for x, y in call_xy)]
        self.rng.shuffle(points)
        if len(points) < self.background:
            print(f'[call_carla] warning: only {len(points)} free spawn points for '
                  f'{self.background} background vehicles')
        batch = []
        for point in points[:self.background]:
            blueprint = self.rng.choice(blueprints)
            if blueprint.has_attribute('role_name'):
                blueprint.set_attribute('role_name', 'background')
            batch.append(carla.command.SpawnActor(blueprint, point).then(
                carla.command.SetAutopilot(carla.command.FutureActor, True, cfg.tm_port)))
        background_ids = []
        for response in self.client.apply_batch_sync(batch, False):
            if not response.error:
                background_ids.append(response.actor_id)
        self.spawned_ids.extend(background_ids)
        cfg.traffic_manager.apply(self.traffic_manager,
                                  list(self.world.get_actors(background_ids)))

    def close(self) -> None:
        """Destroy every spawned actor and restore the previous world settings (idempotent)."""
        if self.spawned_ids:
            import carla
            ids, self.spawned_ids = self.spawned_ids, []
            self.client.apply_batch_sync([carla.command.DestroyActor(i) for i in ids], False)
            self.call_actors = {}
        if self.traffic_manager is not None:
            self.traffic_manager.set_synchronous_mode(False)
            self.traffic_manager = None
        if self.world is not None and self._original_settings is not None:
            self.world.apply_settings(self._original_settings)
            self._original_settings = None

    def tick(self) -> int:
        """Advance one step (only when no bridge ticks the world); returns the frame."""
        return self.world.tick()

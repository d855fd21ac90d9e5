"""
Console script ``call_carla_scenario``: run the paper's Town04 scenario on a CARLA server.

Connects (failing fast with a clear message when no server answers), loads Town04, switches
to synchronous mode at 0.1 s, spawns the CALL vehicles hero0.. and the background traffic under
the Traffic Manager, writes the carla-ros-bridge files with the planned spawn points, publishes
each vehicle's waypoints on ``/carla/<role>/waypoints``, and on exit (Ctrl-C, SIGTERM, error)
destroys everything it spawned and restores the world's settings.

``--xodr FILE`` plans the same routes on a local OpenDRIVE file without any server (the
bridge files and waypoints are produced; nothing is spawned).
"""
import argparse
import os
import signal
import sys
import time
from typing import List, Optional

from call_carla.bridge_config import write_bridge_files
from call_carla.routes import choose_section, plan_routes, Route
from call_carla.scenario import CarlaScenario, connect, ScenarioConfig, ScenarioError
import yaml

ROUTES_FILE = 'call_routes.yaml'


def default_config_path() -> str:
    """Return the installed config/town04.yaml (falls back to the source tree)."""
    try:
        from ament_index_python.packages import get_package_share_directory
        return os.path.join(get_package_share_directory('call_carla'), 'config', 'town04.yaml')
    except (ImportError, LookupError):
        here = os.path.dirname(os.path.abspath(__file__))
        return os.path.join(here, '..', 'config', 'town04.yaml')


def write_routes(out_dir: str, routes: List[Route]) -> str:
    """Write the planned routes (map frame) for logs and for the metrics."""
    path = os.path.join(out_dir, ROUTES_FILE)
    data = {r.role: {'spawn': r.spawn.as_json(), 'lane_change_at_m': list(r.lane_change_at_m),
                     'waypoints': [[round(float(x), 3), round(float(y), 3)]
                                   for x, y in r.waypoints]} for r in routes}
    with open(path, 'w', encoding='utf-8') as handle:
        yaml.safe_dump(data, handle, sort_keys=False)
    return path


def plan_offline(xodr_path: str, config: ScenarioConfig) -> List[Route]:
    """Plan routes on a local OpenDRIVE file with CARLA's client-side map (no server)."""
    import carla
    import random
    with open(xodr_path, encoding='utf-8') as handle:
        carla_map = carla.Map(os.path.basename(xodr_path), handle.read())
    rng = random.Random(config.seed)
    try:
        section = choose_section(carla_map, config.section, rng)
        return plan_routes(section, config.roles, config.section, rng)
    except ValueError as err:
        raise ScenarioError(str(err)) from None


def _parse(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--config', default=None, help='scenario YAML (default: town04.yaml)')
    parser.add_argument('--host')
    parser.add_argument('--port', type=int)
    parser.add_argument('--timeout', type=float, help='connection timeout [s]')
    parser.add_argument('--vehicles', type=int, help='number of CALL vehicles')
    parser.add_argument('--background', type=int, help='background vehicles (50..250)')
    parser.add_argument('--spawned-by', choices=('tool', 'bridge'),
                        help='who spawns the CALL vehicles')
    parser.add_argument('--seed', type=int)
    parser.add_argument('--xodr', help='plan on this OpenDRIVE file; no server is used')
    parser.add_argument('--out', default='.', help='directory for the bridge and route files')
    parser.add_argument('--children-key', default='sensors', choices=('sensors', 'objects'))
    parser.add_argument('--no-ros', action='store_true', help='do not publish waypoints')
    parser.add_argument('--tick', action='store_true',
                        help='tick the world here (only without carla-ros-bridge)')
    parser.add_argument('--duration', type=float, default=0.0,
                        help='seconds to keep running (0: until Ctrl-C)')
    return parser.parse_args(argv)


def _load_config(args: argparse.Namespace) -> ScenarioConfig:
    config = ScenarioConfig.from_file(args.config or default_config_path())
    overrides = {'host': args.host, 'port': args.port, 'timeout_s': args.timeout,
                 'vehicles': args.vehicles, 'background': args.background,
                 'spawned_by': args.spawned_by, 'seed': args.seed}
    for name, value in overrides.items():
        if value is not None:
            setattr(config, name, value)
    if config.background < 0 or config.vehicles < 1 or config.timeout_s <= 0:
        raise ValueError('need --vehicles >= 1, --background >= 0 and --timeout > 0')
    return config


def _serve(routes: List[Route], args: argparse.Namespace,
           scenario: Optional[CarlaScenario]) -> None:
    """Publish waypoints and (optionally) tick until Ctrl-C, SIGTERM or --duration."""
    node = None
    if not args.no_ros:
        from call_carla import waypoint_publisher
        node = waypoint_publisher.start(routes)
    end = time.monotonic() + args.duration if args.duration > 0 else None
    try:
        while end is None or time.monotonic() < end:
            if scenario is not None and args.tick:
                scenario.tick()
            if node is not None:
                import rclpy
                from rclpy.executors import ExternalShutdownException
                try:
                    rclpy.spin_once(node, timeout_sec=0.05)
                except ExternalShutdownException:
                    break
            else:
                time.sleep(0.05)
    finally:
        if node is not None:
            import rclpy
            node.destroy_node()
            if rclpy.ok():
                rclpy.shutdown()


def _terminate(signum, frame) -> None:
    raise SystemExit(128 + signum)  # unwinds through the scenario's clean-up


def main(argv: Optional[List[str]] = None) -> int:
    """Run the tool; exit 2 with a one-line reason on any setup error."""
    args = _parse(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        config = _load_config(args)
        if args.xodr:
            routes = plan_offline(args.xodr, config)
            files = write_bridge_files(args.out, config.roles, config.blueprint,
                                       {r.role: r.spawn for r in routes}, args.children_key,
                                       town=config.town, host=config.host, port=config.port,
                                       fixed_delta_seconds=config.fixed_delta_seconds)
            print('\n'.join([*files, write_routes(args.out, routes)]), flush=True)
            _serve(routes, args, None)
            return 0
        client = connect(config.host, config.port, config.timeout_s)
        with CarlaScenario(client, config) as scenario:
            files = write_bridge_files(args.out, config.roles, config.blueprint,
                                       {r.role: r.spawn for r in scenario.routes},
                                       args.children_key, town=config.town, host=config.host,
                                       port=config.port,
                                       fixed_delta_seconds=config.fixed_delta_seconds)
            print('\n'.join([*files, write_routes(args.out, scenario.routes)]), flush=True)
            _serve(scenario.routes, args, scenario)
        return 0
    except KeyboardInterrupt:
        return 0
    except (ScenarioError, ValueError, OSError) as err:
        print(f'call_carla_scenario: error: {err}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())

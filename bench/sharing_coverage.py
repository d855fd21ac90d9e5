"""
How often sharing can reveal a vehicle the ego does not see (paper Fig. 4c), per scenario.

For each CALL vehicle (ego) and step, a vehicle "only sharing reveals" lies in the ego's BEV
window, is not seen by the ego's own sensors (range + occlusion, ``call_perception.visibility``)
but is seen by a CALL neighbour within the communication range. Counted separately: frames with
such a vehicle that is a background vehicle (what only the decoded neighbour views add) and
frames where the neighbour itself is the only hidden vehicle (what the neighbours' boxes add).
The CALL vehicles follow their routes by pure pursuit at the scenario's speeds.

    python bench/sharing_coverage.py --scenarios four_lane_250 four_lane_platoon \
        highway_merge crossroad_occluded --steps 300 --out results/sharing_coverage.csv
"""
import argparse
import math

import numpy as np


def pursue(observation, speed: float, lookahead: float = 12.0):
    """Throttle/brake towards `speed`, steer towards the route point `lookahead` m ahead."""
    from call_vehicle.vehicle_control import VehicleControl
    ego = observation.ego
    route = np.asarray(observation.route, dtype=np.float64).reshape(-1, 2)
    steer = 0.0
    if len(route):
        d = route - (ego.x, ego.y)
        ahead = np.flatnonzero(np.hypot(d[:, 0], d[:, 1]) >= lookahead)
        tx, ty = d[ahead[0]] if len(ahead) else d[-1]
        err = math.atan2(ty, tx) - ego.yaw
        steer = float(np.clip(math.atan2(math.sin(err), math.cos(err)) / 0.5, -1.0, 1.0))
    if ego.speed < speed - 0.5:
        return VehicleControl(throttle=0.5, steer=steer)
    if ego.speed > speed + 0.5:
        return VehicleControl(brake=0.3, steer=steer)
    return VehicleControl(throttle=0.15, steer=steer)


def in_window(config, ego, vehicle) -> bool:
    """Whether the vehicle's centre falls inside the ego's BEV image."""
    from call_perception.bev_raster import map_to_pixel
    col, row = map_to_pixel(config, ego) @ np.array([vehicle.x, vehicle.y, 1.0])
    return 0 <= col < config.size and 0 <= row < config.size


def coverage(scenario: str, steps: int, comm_range: float, sensor_range: float,
             speed: float, seed: int) -> dict:
    """Run one episode, return frame counts."""
    from call_perception.bev_raster import BevConfig
    from call_perception.visibility import visible
    from call_sim.env import MultiVehicleEnv
    config = BevConfig.from_yaml()
    counts = {'frames': 0, 'any': 0, 'background': 0, 'neighbour_only': 0}
    with MultiVehicleEnv.from_scenario(scenario) as env:
        obs, _ = env.reset(seed=seed)
        for _ in range(steps):
            states = env.vehicle_states()
            heroes = [s for s in states if s.role_name in obs]
            seen_by = {}
            for hero in heroes:
                others = [s for s in states if s.actor_id != hero.actor_id]
                mask = visible(hero, others, sensor_range)
                seen_by[hero.actor_id] = {o.actor_id for o, v in zip(others, mask) if v}
            for ego in heroes:
                neighbours = [h for h in heroes if h.actor_id != ego.actor_id
                              and math.hypot(h.x - ego.x, h.y - ego.y) <= comm_range]
                revealed = set()
                for n in neighbours:
                    revealed |= seen_by[n.actor_id] | {n.actor_id}
                own = seen_by[ego.actor_id] | {ego.actor_id}
                hidden = {s.actor_id for s in states if s.actor_id in revealed
                          and s.actor_id not in own and in_window(config, ego, s)}
                hero_ids = {h.actor_id for h in heroes}
                counts['frames'] += 1
                counts['any'] += bool(hidden)
                counts['background'] += bool(hidden - hero_ids)
                counts['neighbour_only'] += bool(hidden) and not (hidden - hero_ids)
            controls = {role: pursue(o, speed) for role, o in obs.items()}
            obs, _, terminations, truncations, _ = env.step(controls)
            if not obs:
                break
    return counts


def seed_summary(rows: list) -> list:
    """
    Per scenario and measure: mean over seeds with a 95 % Student-t interval.

    ``rows`` are this script's CSV lines (header first); no claim rests on one seed.
    """
    from call_learning.evaluate_prediction import mean_interval
    header = rows[0].split(',')
    measures = header[3:]
    by_scenario: dict = {}
    for line in rows[1:]:
        values = line.split(',')
        by_scenario.setdefault(values[0], []).append([float(v) for v in values[3:]])
    out = ['scenario,metric,mean,ci_low,ci_high,seeds']
    for name, per_seed in by_scenario.items():
        for i, measure in enumerate(measures):
            column = [seed_values[i] for seed_values in per_seed]
            mean, half = mean_interval(column)
            out.append(f'{name},{measure},{mean:.3f},{mean - half:.3f},{mean + half:.3f},'
                       f'{len(column)}')
    return out


def main() -> int:
    """Print one line per scenario."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--scenarios', nargs='+', default=[
        'four_lane_250', 'four_lane_platoon', 'highway_merge', 'crossroad_occluded'])
    parser.add_argument('--steps', type=int, default=300)
    parser.add_argument('--comm-range', type=float, default=50.0,
                        help='m; the range gate grows from 20 m in 5 m steps up to 100 m')
    parser.add_argument('--sensor-range', type=float, default=32.0)
    parser.add_argument('--speed', type=float, default=8.0)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--out', default='', help='also write these rows to a CSV file')
    args = parser.parse_args()
    print(f'{args.steps} steps per seed, comm range {args.comm_range} m, sensor range '
          f'{args.sensor_range} m, seeds {args.seeds}')
    header = ('scenario,seed,frames,frac_only_sharing,frac_background_hidden,'
              'frac_neighbour_only')
    print(header)
    rows = [header]
    for name in args.scenarios:
        for seed in args.seeds:
            c = coverage(name, args.steps, args.comm_range, args.sensor_range, args.speed,
                         seed)
            n = max(c['frames'], 1)
            rows.append(f"{name},{seed},{c['frames']},{c['any'] / n:.3f},"
                        f"{c['background'] / n:.3f},{c['neighbour_only'] / n:.3f}")
            print(rows[-1])
    summary = seed_summary(rows)
    print('\n'.join(summary))
    if args.out:
        with open(args.out, 'w') as f:
            f.write('\n'.join(rows) + '\n')
        with open(args.out.replace('.csv', '_summary.csv'), 'w') as f:
            f.write('\n'.join(summary) + '\n')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

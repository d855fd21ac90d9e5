"""
Median ms per MultiVehicleEnv.step: 8 CALL vehicles + 50/150/250 background, rendering off.

Includes everything a step does: bicycle model + moveToXY for the CALL vehicles, the SUMO step,
reading every vehicle's state, collision/TTC/off-road/jerk measures, rewards, observations.
Usage: python bench/bench_sim.py [--steps 300] [--map four_lane]
"""
import argparse
import statistics
import time

from call_sim.env import MultiVehicleEnv
from call_vehicle.vehicle_control import VehicleControl
from machine_reference import print_reference


def bench(map_name: str, background: int, steps: int,
          warmup: int = 50) -> tuple[float, float, float]:
    """
    Return (median wall, p90 wall, median CPU of this process) ms per step.

    CPU time is printed too because the 2-core machine is shared with other work.
    """
    scenario = {'map': map_name, 'num_controlled': 8, 'num_background': background,
                'seed': 1, 'episode_steps': steps + warmup + 10, 'respawn_done': True,
                'termination': {'on_collision': False, 'on_off_road': False}}
    with MultiVehicleEnv.from_scenario(scenario) as env:
        env.reset()
        command = VehicleControl(throttle=0.05)
        times, cpu = [], []
        for k in range(warmup + steps):
            start, start_cpu = time.perf_counter(), time.process_time()
            env.step({role: command for role in env.agents})
            if k >= warmup:
                times.append((time.perf_counter() - start) * 1000.0)
                cpu.append((time.process_time() - start_cpu) * 1000.0)
        times.sort()
        return statistics.median(times), times[int(0.9 * len(times))], statistics.median(cpu)


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--steps', type=int, default=300)
    parser.add_argument('--map', default='four_lane')
    args = parser.parse_args()
    print_reference()
    print(f'map={args.map} controlled=8 steps={args.steps} (rendering off)')
    print('| background | vehicles | median ms/step | p90 ms/step | median CPU ms/step |')
    print('|---|---|---|---|---|')
    for background in (50, 150, 250):
        median, p90, cpu = bench(args.map, background, args.steps)
        print(f'| {background} | {background + 8} | {median:.2f} | {p90:.2f} | {cpu:.2f} |')


if __name__ == '__main__':
    main()

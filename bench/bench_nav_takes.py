"""
Executor-thread CPU per odometry or plan message taken, typed against raw (`call_common.nav_cdr`).

Each vehicle's perception, world model, comm and planner take the bridge's Odometry every
step, and perception, world model and comm the planner's plan (a nav_msgs/Path of its
waypoints), which the planner publishes. This bench runs one subscription at a time on the
executor the containers use (`call_bringup.compose.make_executor`), publishes N messages to it
and charges the executor thread's CPU for taking and handling all N: the typed subscription
builds rclpy's message and reads the fields (`odometry_fields`, `path_xy`), the raw one reads
the same fields from the bytes. Typed and raw alternate, rounds of N, and the medians are
printed; then the plan's publish as the planner did it (M PoseStamped built, rclpy serialises)
against its CDR bytes (`serialize_path_xy`).

    python bench/bench_nav_takes.py [--messages 400] [--rounds 6] [--waypoints 5 10]
"""
import argparse
import time

from machine_reference import print_reference
import numpy as np


def main() -> int:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--messages', type=int, default=400)
    parser.add_argument('--rounds', type=int, default=6)
    parser.add_argument('--waypoints', type=int, nargs='+', default=[5, 10])
    args = parser.parse_args()
    print_reference()

    from builtin_interfaces.msg import Time
    from call_bringup.compose import make_executor
    from call_common.nav_cdr import (odometry_fields, path_xy, read_odometry, read_path_xy,
                                     serialize_path_xy)
    from geometry_msgs.msg import PoseStamped
    from nav_msgs.msg import Odometry, Path
    import rclpy
    from std_msgs.msg import Header

    def odometry() -> Odometry:
        msg = Odometry()
        msg.header.frame_id, msg.child_frame_id = 'map', 'hero3'
        msg.pose.pose.position.x, msg.pose.pose.orientation.w = 12.5, 1.0
        msg.twist.twist.linear.x = 8.0
        return msg

    def path(count: int, stamp: Time) -> Path:
        header = Header(stamp=stamp, frame_id='map')
        msg = Path(header=header)
        for i in range(count):                  # as the planner built it
            pose = PoseStamped(header=header)
            pose.pose.position.x, pose.pose.position.y = float(i), 0.5 * i
            pose.pose.orientation.w = 1.0
            msg.poses.append(pose)
        return msg

    rclpy.init()
    node = rclpy.create_node('bench_nav_takes')
    executor = make_executor()
    executor.add_node(node)
    counter = [0]

    def take_cpu_us(msg_type, msg, raw: bool, read) -> float:
        got = []
        counter[0] += 1
        topic = f'bench_nav_takes_{counter[0]}'
        sub = node.create_subscription(msg_type, topic, lambda m: got.append(read(m)),
                                       args.messages + 10, raw=raw)
        pub = node.create_publisher(msg_type, topic, args.messages + 10)
        deadline = time.monotonic() + 10.0
        while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.01)
        for _ in range(args.messages):
            pub.publish(msg)
        time.sleep(0.2)                         # delivered before the clock starts
        start = time.thread_time()
        while len(got) < args.messages and time.monotonic() < deadline + 20.0:
            executor.spin_once(timeout_sec=0.2)
        cpu = time.thread_time() - start
        node.destroy_subscription(sub)
        node.destroy_publisher(pub)
        return 1e6 * cpu / max(1, len(got))

    stamp = Time(sec=100, nanosec=50_000_000)
    cases = [('Odometry', Odometry, odometry(), read_odometry, odometry_fields)]
    cases += [(f'Path of {n}', Path, path(n, stamp), lambda raw: read_path_xy(raw)[2], path_xy)
              for n in args.waypoints]
    print(f'take and read, executor-thread CPU per message [us], median of {args.rounds} '
          f'rounds of {args.messages} ({type(executor).__name__}):')
    for name, msg_type, msg, raw_read, typed_read in cases:
        typed, raw = [], []
        for round_index in range(args.rounds):
            order = [(False, typed_read, typed), (True, raw_read, raw)]
            for is_raw, read, store in order[::1 if round_index % 2 == 0 else -1]:
                store.append(take_cpu_us(msg_type, msg, is_raw, read))
        print(f'  {name:<12} typed {np.median(typed):7.1f}   raw {np.median(raw):7.1f}   '
              f'saved {np.median(typed) - np.median(raw):7.1f}')
    print('publish the plan, CPU per message [us]:')
    pub = node.create_publisher(Path, 'bench_nav_takes_publish', 10)
    for n in args.waypoints:
        points = np.stack([np.arange(n, dtype=np.float64), 0.5 * np.arange(n)], 1)
        typed, raw = [], []

        def publish_typed() -> None:
            pub.publish(path(n, stamp))

        def publish_raw() -> None:
            pub.publish(serialize_path_xy(stamp.sec, stamp.nanosec, 'map', points))

        for round_index in range(args.rounds):
            order = [(publish_typed, typed), (publish_raw, raw)]
            for publish, store in order[::1 if round_index % 2 == 0 else -1]:
                start = time.thread_time()
                for _ in range(args.messages):
                    publish()
                store.append(1e6 * (time.thread_time() - start) / args.messages)
        print(f'  Path of {n:<4} typed {np.median(typed):7.1f}   bytes {np.median(raw):7.1f}   '
              f'saved {np.median(typed) - np.median(raw):7.1f}')
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

"""call_comm benchmarks: bytes received per ego per step vs c, and V2V latency over DDS.

    python bench/bench_comm.py bytes     [--steps 300] [--h-dim 2048]
    python bench/bench_comm.py latency   [--vehicles 8] [--seconds 10] [--content-filter]
    python bench/bench_comm.py h-error

bytes: 30 vehicles of call_sim's `four_lane_30` scenario (SUMO; every vehicle, CALL or
background, is a communicating agent) if call_sim is importable, else a seeded synthetic
30-vehicle highway; each vehicle's range gate is driven by a seeded synthetic prediction-error
trace (E = 40 * lognormal(0, 0.6): no trained world model is involved). Per-message bytes are the
exact serialized LatentMessage sizes from call_comm.wire_codec.
latency: N vehicle processes, each publishing a signed LatentMessage at 10 Hz on /v2v/latents
and receiving everyone else's over Fast DDS on loopback; publish->callback latency p50/p99.
"""
import argparse
import json
import math
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PAPER_CALL_MB, PAPER_SHARE_ALL_MB = 0.106, 5.417
C_VALUES = (0.0, 10.0, 50.0, 80.0, math.inf)


def _message_size(sender_id: str, h_dim: int, encoding: int, waypoints: int) -> int:
    from call_comm import wire_codec as wc
    rng = np.random.default_rng(0)
    pts = np.cumsum(np.full((waypoints, 2), 2.0), axis=0)
    # v2 names the sender by a 4-byte key id: `sender_id` no longer changes the size
    wire = wc.encode(0, 1, 0, 0, (0.0, 0.0, 0.0, 8.0), rng.integers(0, 32, 32),
                     np.tanh(rng.normal(size=h_dim)), 0, pts, encoding, waypoints)
    wire.signature = bytes(wc.SIGNATURE_BYTES)
    return wc.serialized_size(wire)


def _trajectories(steps: int, seed: int):
    """Positions (steps, 30, 2) and ids of 30 vehicles; the source is returned as text."""
    sys.path.insert(0, str(ROOT / 'src' / 'call_sim'))
    try:
        from call_sim.env import MultiVehicleEnv
    except ImportError:
        return _synthetic(steps, seed) + ('synthetic 30-vehicle highway (call_sim absent)',)
    env = MultiVehicleEnv.from_scenario('four_lane_30')
    try:
        env.reset(seed=seed)
        ids = None
        frames = []
        for _ in range(steps):
            env.step(dict.fromkeys(env.agents, 7))  # keep speed, go straight
            states = {s.role_name or str(s.actor_id): (s.x, s.y) for s in env.vehicle_states()}
            ids = ids or sorted(states)[:30]
            frames.append([states.get(v, (math.nan, math.nan)) for v in ids])
    finally:
        env.close()
    return np.array(frames), ids, 'call_sim four_lane_30 (SUMO, seed %d)' % seed


def _synthetic(steps: int, seed: int):
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(0, 400, 30)
    lane = rng.integers(0, 4, 30) * 3.5
    speed = rng.uniform(8, 14, 30)
    t = np.arange(steps)[:, None] * 0.1
    xy = np.stack([x0 + speed * t, np.broadcast_to(lane, (steps, 30))], axis=2)
    return xy, [f'veh{i}' for i in range(30)]


def bench_bytes(args) -> None:
    """Print mean bytes received per ego per step for each c."""
    from call_comm import wire_codec as wc
    from call_comm.neighbours import within
    from call_comm.range_gate import RangeGate
    xy, ids, source = _trajectories(args.steps, args.seed)
    n = len(ids)
    errors = 40.0 * np.random.default_rng(args.seed + 1).lognormal(0.0, 0.6, (args.steps, n))
    print(f'scenario: {source}; {n} vehicles, {args.steps} steps of 0.1 s')
    p90 = np.percentile(errors, 90)
    print(f'prediction error: synthetic E = 40 * lognormal(0, 0.6) (median 40, p90 {p90:.0f}); '
          f'gate initial {args.initial_range} m, +{args.step} m, max {args.max_range} m')
    for encoding_name in ('fp16', 'int8'):
        enc = wc.H_ENCODINGS[encoding_name]
        sizes = np.array([_message_size(v, args.h_dim, enc, args.waypoints) for v in ids])
        print(f'\nh = {args.h_dim} x {encoding_name}, {args.waypoints} waypoints: '
              f'{int(sizes.mean())} B per message (paper: h alone 2048 x 4 = 8192 B)')
        print(f'{"c":>6} {"B/ego/step":>12} {"MB/ego/step":>12} {"MB fleet/step":>14} '
              f'{"neighbours":>11} {"final range m":>14}')
        for c in C_VALUES:
            gates = [RangeGate(args.initial_range, args.range_step, args.max_range, c) for _ in ids]
            per_ego, counts = [], []
            for t in range(args.steps):
                ranges = [g.update(errors[t, i]) for i, g in enumerate(gates)]
                d = np.linalg.norm(xy[t][:, None, :] - xy[t][None, :, :], axis=2)
                for i in range(n):
                    got = [j for j in range(n) if j != i and np.isfinite(d[i, j])
                           and within(d[i, j], ranges[i])]
                    per_ego.append(int(sizes[got].sum()))
                    counts.append(len(got))
            mean = float(np.mean(per_ego))
            final = np.mean([g.comm_range for g in gates])
            print(f'{c:>6} {mean:>12.0f} {mean / 1e6:>12.4f} {mean * n / 1e6:>14.3f} '
                  f'{np.mean(counts):>11.1f} {final:>14.1f}')
    print(f'\npaper (230 vehicles, 2048-dim float32 h): CALL {PAPER_CALL_MB} MB, '
          f'share-all {PAPER_SHARE_ALL_MB} MB per 0.1 s step')


def bench_h_error(args) -> None:
    """Print the h reconstruction error of fp16 vs int8 (the quantisation choice)."""
    from call_comm import wire_codec as wc
    rng = np.random.default_rng(0)
    cases = {'tanh(2 N(0,1)) GRU-like': np.tanh(2 * rng.normal(size=(64, 2048))),
             'N(0,1)': rng.normal(size=(64, 2048))}
    for name, hs in cases.items():
        for enc in ('fp16', 'int8'):
            errs = np.array([wc.h_reconstruction_error(h, wc.H_ENCODINGS[enc]) for h in hs])
            print(f'{name:>24} {enc}: max abs {errs[:, 0].max():.2e}  RMS {errs[:, 1].mean():.2e}'
                  f'  bytes/dim {2 if enc == "fp16" else 1}')


# ------------------------------------------------------------------------------- latency
def _worker(args) -> None:
    import resource

    import rclpy
    from call_comm import wire_codec as wc
    from call_comm.auth import Fleet, Signer
    from call_comm.comm_node import CONTENT_FILTER, to_msg
    from call_msgs.msg import LatentMessage
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    role = f'hero{args.index}'
    fleet = Fleet.load(Path(args.keys) / 'fleet.yaml')
    signer = Signer.load(role, Path(args.keys) / f'{role}.key.yaml', fleet)
    x = 30.0 * args.index  # vehicles on a line 30 m apart; filter range 40 m -> <= 2 senders
    rclpy.init()
    node = rclpy.create_node(f'bench_{role}')
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=64,
                     reliability=ReliabilityPolicy.BEST_EFFORT)
    latencies = []

    def on_msg(msg):
        if msg.sender_key_id != signer.key_id:
            sent = msg.stamp.sec + msg.stamp.nanosec * 1e-9
            latencies.append(time.time() - sent)

    kwargs = {}
    if args.content_filter:
        from rclpy.subscription_content_filter_options import ContentFilterOptions
        kwargs['content_filter_options'] = ContentFilterOptions(
            CONTENT_FILTER, [repr(x - 40.0), repr(x + 40.0), '-40.0', '40.0'])
    node.create_subscription(LatentMessage, '/v2v/latents', on_msg, qos, **kwargs)
    pub = node.create_publisher(LatentMessage, '/v2v/latents', qos)
    rng = np.random.default_rng(args.index)
    seq = [0]

    def publish():
        now = time.time()
        sec = int(now)
        wire = wc.encode(signer.key_id, seq[0], sec, int((now - sec) * 1e9),
                         (x, 0.0, 0.0, 8.0), rng.integers(0, 32, 32),
                         np.tanh(rng.normal(size=args.h_dim)), 0, np.array([[x + 2.0, 0.0]]),
                         wc.H_FP16, 5)
        seq[0] += 1
        wire.signature = signer.sign(wc.signed_payload(wire))
        pub.publish(to_msg(wire))

    time.sleep(args.warmup)
    end_warm = time.monotonic() + 2.0
    while time.monotonic() < end_warm:
        rclpy.spin_once(node, timeout_sec=0.05)
    latencies.clear()
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    node.create_timer(0.1, publish)
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    print(json.dumps({'role': role, 'latencies': latencies, 'cpu_s': cpu,
                      'published': seq[0]}), flush=True)
    node.destroy_node()
    rclpy.shutdown()


def bench_latency(args) -> None:
    """Run N vehicle processes and print publish->receive latency percentiles."""
    from call_comm.keygen import write_fleet
    keys = tempfile.mkdtemp(prefix='call_comm_bench_')
    roles = [f'hero{i}' for i in range(args.vehicles)]
    write_fleet(roles, Path(keys))
    env = dict(os.environ, ROS_DOMAIN_ID=str(args.domain),
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    procs = []
    try:
        for i in range(args.vehicles):
            cmd = [sys.executable, __file__, 'worker', '--index', str(i), '--keys', keys,
                   '--seconds', str(args.seconds), '--h-dim', str(args.h_dim),
                   '--warmup', '2.0'] + (['--content-filter'] if args.content_filter else [])
            procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE))
        results = []
        for proc in procs:
            out, _ = proc.communicate(timeout=args.seconds + 60)
            results.append(json.loads(out.decode().strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    lat = np.concatenate([r['latencies'] for r in results]) * 1e3
    published = sum(r['published'] for r in results)
    print(f'{args.vehicles} vehicle processes, {args.seconds} s at 10 Hz, h {args.h_dim} fp16, '
          f'content filter {"on (+-40 m box)" if args.content_filter else "off"}')
    print(f'messages published {published}, delivered to callbacks {lat.size}')
    if lat.size:
        print(f'publish->receive latency ms: p50 {np.percentile(lat, 50):.2f}  '
              f'p99 {np.percentile(lat, 99):.2f}  max {lat.max():.2f}')
    cpu = [r['cpu_s'] for r in results]
    print(f'CPU per vehicle process: mean {np.mean(cpu):.2f} s over {args.seconds} s')


def main() -> None:
    """Parse the sub-command and run it."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    b = sub.add_parser('bytes')
    b.add_argument('--steps', type=int, default=300)
    b.add_argument('--seed', type=int, default=11)
    b.add_argument('--h-dim', type=int, default=2048)
    b.add_argument('--waypoints', type=int, default=5)  # the planner's K (horizon)
    b.add_argument('--initial-range', '--initial_range', type=float, default=20.0)
    b.add_argument('--range-step', '--range_step', type=float, default=5.0)
    b.add_argument('--max-range', type=float, default=100.0)
    sub.add_parser('h-error')
    lat = sub.add_parser('latency')
    lat.add_argument('--vehicles', type=int, default=8)
    lat.add_argument('--seconds', type=float, default=10.0)
    lat.add_argument('--h-dim', type=int, default=512)
    lat.add_argument('--domain', type=int, default=97)
    lat.add_argument('--content-filter', action='store_true')
    w = sub.add_parser('worker')
    w.add_argument('--index', type=int, required=True)
    w.add_argument('--keys', required=True)
    w.add_argument('--seconds', type=float, required=True)
    w.add_argument('--h-dim', type=int, required=True)
    w.add_argument('--warmup', type=float, default=2.0)
    w.add_argument('--content-filter', action='store_true')
    args = parser.parse_args()
    {'bytes': bench_bytes, 'h-error': bench_h_error, 'latency': bench_latency,
     'worker': _worker}[args.cmd](args)


if __name__ == '__main__':
    main()

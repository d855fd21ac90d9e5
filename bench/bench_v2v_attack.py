"""
A hostile peer against the real 3-vehicle graph: every attack counted, nothing accepted.

    python bench/bench_v2v_attack.py [--kinds flood big ...] [--before 5] [--during 10]
                                     [--after 5] [--rate 100] [--flood-rate 2000]
                                     [--big-seconds 10] [--checkpoint PATH]
                                     [--comm-param NAME=VALUE ...]

Starts the embedded simulator and 3 x (perception, world model, comm, planner) with the
call_bringup runner (one process per node; c = 0, so every vehicle is every other's
neighbour and legitimate delivery is 2 messages per receiver and step), and a hostile
publisher in its own process. The bench generates the fleet keys, so the attacker holds them
too: kinds that exercise checks after the signature (NaN, 10 km, timestamps, keyframe
requests) are signed by an insider (hero2), the strongest attacker there is; forgeries and
the unknown key are not. Every hostile latent carries the marker speed 123.25 m/s, so an
accepted one would show up in a vehicle's shared_info.

For each attack kind: `before` s idle, `during` s of attack, `after` s idle. One line per
kind: messages sent, the receivers' counters that moved (summed over the 3 comm nodes, from
the start of the attack to the end of `after`; each message reaches 3 receivers, and the
vehicles' own traffic adds its accepted/own_id/superseded counts), hostile messages accepted
(marker seen in shared_info), legitimate delivery during the attack relative to before
(accepted messages per receiver-step), the graph's tick rate (/clock ticks per wall second)
before / during / after, and the comm nodes' summed RSS before and after (and each node's).
`big` (512 KB payloads at 10 Hz) runs `--big-seconds` (600 for the 10-minute RSS figure).
`--comm-param` sets comm node parameters (e.g. `v2v_drain=0`, the receive path without
draining, for a before/after comparison in one session). Forgeries (`forged`, `flood`) are patched copies
of one serialized template per sender and clock tick (new sequence, random signature), so
the hostile process reaches 2000 msgs/s on a loaded machine. Asserts nothing.
"""
import argparse
import multiprocessing
import os
import random
import signal
import struct
import sys
import tempfile
import threading
import time

from call_bringup.demo import demo_checkpoint
from call_bringup.fleet_keys import ensure_fleet_keys
from call_bringup.graph import build_graph
from call_bringup.runner import process_units, Supervisor
from call_msgs.msg import CommStats, SharedInformation
from machine_reference import print_reference
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

ROLES = ('hero0', 'hero1', 'hero2')
MARKER_SPEED = 123.25
STEP_SECONDS = 0.1      # the simulator's step: senders count their sequence up once per step
KINDS = ('forged', 'zero_signature', 'nan_inf', 'wrong_length', 'far_10km', 'replay_exact',
         'replay_modified', 'flood', 'unknown_key', 'own_id', 'future_stamp', 'past_stamp',
         'request_flood', 'big')
COUNTERS = ('accepted_total', 'superseded', 'own_id', 'dropped_unsigned',
            'dropped_bad_signature', 'dropped_unknown_sender', 'dropped_replay',
            'dropped_malformed', 'dropped_implausible', 'dropped_out_of_range',
            'dropped_oversize', 'dropped_rate_limited', 'keyframe_requests_received',
            'requests_not_for_us', 'requests_own', 'requests_unknown_requester',
            'requests_rate_limited', 'requests_bad_signature', 'requests_replay',
            'requests_malformed', 'keyframes_sent')
BEST_EFFORT = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.BEST_EFFORT)


# ------------------------------------------------------------------------ hostile process
class Attacker:
    """Builds one attack kind's messages from the live traffic it overhears."""

    def __init__(self, node, keys_dir: str) -> None:
        """Load the fleet the bench generated; listen to the clock and the live latents."""
        from call_comm.auth import Fleet, Signer
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from call_comm.auth import key_id, private_raw, public_raw
        self.fleet = Fleet.load(os.path.join(keys_dir, 'fleet.yaml'))
        self.insider = Signer.load('hero2', os.path.join(keys_dir, 'hero2.key.yaml'))
        outsider = Ed25519PrivateKey.generate()
        self.outsider = Signer('mallory', private_raw(outsider))
        self.outsider_id = key_id(public_raw(outsider))
        self.now = 0.0
        self.captured = {}              # key id -> latest legit raw sample
        self.seq = 10 ** 6
        node.create_subscription(Clock, '/clock', self._on_clock, BEST_EFFORT)
        from call_msgs.msg import LatentMessage
        self.listener = node.create_subscription(
            LatentMessage, '/v2v/latents', self._on_latent,
            QoSProfile(depth=64, history=HistoryPolicy.KEEP_LAST,
                       reliability=ReliabilityPolicy.BEST_EFFORT), raw=True)
        self.replays = []
        self._forgeries = {}            # role -> (clock, template bytes, sequence)

    def _on_clock(self, msg) -> None:
        self.now = max(self.now, msg.clock.sec + msg.clock.nanosec * 1e-9)

    def _on_latent(self, raw) -> None:
        from call_comm import wire_codec
        try:
            wire = wire_codec.decode_cdr(raw)
        except wire_codec.CodecError:
            return
        if wire.speed != MARKER_SPEED and self.fleet.vehicle_for_key_id(wire.sender_key_id):
            self.captured[wire.sender_key_id] = bytes(raw)[:wire_codec.message_size(raw)]
            self.replays.append(bytes(raw))
            del self.replays[:-200]

    def ready(self) -> bool:
        """Whether the clock runs and every vehicle was overheard (templates exist)."""
        return self.now > 0.0 and all(self.fleet.key_id(r) in self.captured for r in ROLES)

    def _template(self, role: str):
        from call_comm import wire_codec
        wire = wire_codec.decode_cdr(self.captured[self.fleet.key_id(role)])
        self.seq += 1
        # the sender's sequence now: +1 per 0.1 s step since the captured message, then a
        # little ahead, so the message passes the replay window
        steps = max(0, round((self.now - wire.stamp) / STEP_SECONDS))
        wire.sequence = (wire.sequence + steps + 1 + self.seq % 7) & 0xFFFFFFFF
        sec = int(self.now)
        wire.stamp_sec, wire.stamp_nanosec = sec, int((self.now - sec) * 1e9)
        wire.speed = MARKER_SPEED
        return wire

    @staticmethod
    def _raw(wire) -> bytes:
        from call_comm.comm_node import to_msg
        from rclpy.serialization import serialize_message
        return serialize_message(to_msg(wire))

    def _sign(self, wire, signer) -> bytes:
        from call_comm import wire_codec
        wire.signature = signer.sign(wire_codec.signed_payload(wire))
        return self._raw(wire)

    def forgery(self) -> bytes:
        """A forged LatentMessage under a random fleet member's key id, serialized."""
        from call_comm import wire_codec
        role = random.choice(ROLES)
        clock, raw, sequence = self._forgeries.get(role, (None, None, 0))
        if clock != self.now:       # a fresh template per tick: the stamp stays current
            wire = self._template(role)
            wire.x += 0.5
            wire.signature = bytes(64)
            raw, sequence = bytearray(self._raw(wire)), wire.sequence
            self._forgeries[role] = (self.now, raw, sequence)
        self.seq += 1
        # the header is stamp_sec, stamp_nanosec, key id, sequence (wire_codec.peek_header)
        struct.pack_into(wire_codec._endian(raw) + 'I', raw, 16,
                         (sequence + self.seq % 7) & 0xFFFFFFFF)
        end = wire_codec.message_size(bytes(raw))
        raw[end - wire_codec.SIGNATURE_BYTES:end] = os.urandom(wire_codec.SIGNATURE_BYTES)
        return bytes(raw)

    def latent(self, kind: str) -> bytes:
        """One hostile LatentMessage of `kind`, serialized."""
        from call_comm import wire_codec
        if kind in ('forged', 'flood'):
            return self.forgery()
        role = random.choice(ROLES)
        wire = self._template(role)
        if kind == 'zero_signature':
            wire.signature = bytes(64)
            return self._raw(wire)
        if kind == 'nan_inf':
            wire.x, wire.speed = random.choice(((float('nan'), MARKER_SPEED),
                                                (wire.x, float('inf'))))
            return self._sign(wire, self.insider) if role == 'hero2' else self._raw(wire)
        if kind == 'wrong_length':
            raw = bytearray(self._sign(wire, self.insider))
            cut = random.choice(('truncated', 'h_length', 'intention'))
            if cut == 'truncated':
                return bytes(raw[:random.randrange(4, len(raw))])
            wire = wire_codec.decode_cdr(bytes(raw))
            if cut == 'h_length':
                wire.h_encoding, wire.h_data = wire_codec.H_FP16, bytes(7)
            else:
                wire.intention_packed = bytes(len(wire.intention_packed) + 1)
            return self._sign(wire, self.insider)
        if kind == 'far_10km':
            wire = self._template('hero2')
            wire.x += 10_000.0
            return self._sign(wire, self.insider)
        if kind == 'replay_exact':
            return random.choice(self.replays)
        if kind == 'replay_modified':
            wire = wire_codec.decode_cdr(random.choice(self.replays))
            wire.x += 1.0
            return self._raw(wire)
        if kind == 'unknown_key':
            wire.sender_key_id = self.outsider_id
            return self._sign(wire, self.outsider)
        if kind == 'own_id':      # every receiver sees its own key id a third of the time
            wire.signature = os.urandom(64)
            return self._raw(wire)
        if kind in ('future_stamp', 'past_stamp'):
            wire = self._template('hero2')
            shifted = self.now + (10.0 if kind == 'future_stamp' else -10.0)
            sec = int(max(shifted, 0.0))
            wire.stamp_sec, wire.stamp_nanosec = sec, int((max(shifted, 0.0) - sec) * 1e9)
            return self._sign(wire, self.insider)
        if kind == 'big':
            wire.h_encoding, wire.h_data = wire_codec.H_INT8_CHUNK, os.urandom(512 * 1024)
            return self._sign(wire, self.insider)
        raise ValueError(kind)

    def request(self):
        """One keyframe request to hero0: insider-signed, forged, or from an unknown name."""
        from call_comm.comm_node import request_to_msg
        from call_comm.keyframes import KeyframeRequestWire, request_payload
        self.seq += 1
        sec = int(self.now)
        req = KeyframeRequestWire('hero2', 'hero0', self.seq, 0, sec,
                                  int((self.now - sec) * 1e9))
        variant = self.seq % 4
        if variant == 0:
            req.signature = os.urandom(64)                  # forged
        elif variant == 1:
            req.requester_id = 'mallory'                    # unknown requester
            req.signature = os.urandom(64)
        else:
            req.signature = self.insider.sign(request_payload(req))   # insider, valid
        return request_to_msg(req)


def _spin_until_shutdown(executor) -> None:
    try:
        executor.spin()
    except Exception:  # noqa: B902 - the context was shut down: the attack is over
        pass


def hostile_process(keys_dir: str, kind: str, rate: float, duration: float, sent) -> None:
    """Entry point of the hostile publisher's own process: publish `rate` msgs/s of `kind`."""
    from call_msgs.msg import KeyframeRequest, LatentMessage
    rclpy.init()
    node = rclpy.create_node('hostile_peer')
    attacker = Attacker(node, keys_dir)
    latents = node.create_publisher(LatentMessage, '/v2v/latents', BEST_EFFORT)
    requests = node.create_publisher(KeyframeRequest, '/v2v/keyframe_requests', BEST_EFFORT)
    deadline = time.monotonic() + 60.0
    while not attacker.ready() and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    if attacker.ready():    # the first build imports call_comm (torch): not in the attack's time
        attacker.request() if kind == 'request_flood' else attacker.latent(kind)
    sent.value = -1 if not attacker.ready() else 0
    # overhear no more (the attack's own messages would cost this process its rate); the
    # clock keeps spinning in a thread so stamps stay fresh
    node.destroy_subscription(attacker.listener)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=_spin_until_shutdown, args=(executor,), daemon=True)
    spinner.start()
    start = time.monotonic()
    count = 0
    while attacker.ready() and time.monotonic() - start < duration:
        now = time.monotonic()
        due = int((now - start) * rate) - count
        if due <= 0:
            time.sleep(min(0.002, 1.0 / rate))
            continue
        for _ in range(min(due, 100)):
            if kind == 'request_flood':
                requests.publish(attacker.request())
            else:
                latents.publish(attacker.latent(kind))
            count += 1
        sent.value = count
    rclpy.shutdown()            # wakes the spinner, which then returns
    spinner.join(timeout=5.0)
    executor.shutdown()
    node.destroy_node()


# -------------------------------------------------------------------------- measurement
def rss_mb(pid: int) -> float:
    """Resident set size of a process [MB] (0 when it is gone)."""
    try:
        with open(f'/proc/{pid}/status', encoding='ascii') as stream:
            for line in stream:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


class Observer:
    """The bench's own node: ticks, every receiver's CommStats and shared_info."""

    def __init__(self, context) -> None:
        """Subscribe in `context` (the bench's own)."""
        self.node = rclpy.create_node('bench_v2v_attack', context=context)
        self.ticks = []                 # wall time of each new /clock
        self.clock = -1.0
        self.stats = {}                 # role -> latest CommStats
        self.steps = dict.fromkeys(ROLES, 0)
        self.marker_accepted = 0
        self.node.create_subscription(Clock, '/clock', self._on_clock, BEST_EFFORT)
        for role in ROLES:
            self.node.create_subscription(CommStats, f'/{role}/comm_stats',
                                          self._on_stats, 100)
            self.node.create_subscription(SharedInformation, f'/{role}/shared_info',
                                          self._on_shared, 10)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)

    def _on_clock(self, msg: Clock) -> None:
        now = msg.clock.sec + msg.clock.nanosec * 1e-9
        if now > self.clock:
            self.clock = now
            self.ticks.append(time.monotonic())

    def _on_stats(self, msg: CommStats) -> None:
        self.stats[msg.vehicle_id] = msg
        self.steps[msg.vehicle_id] += 1

    def _on_shared(self, msg: SharedInformation) -> None:
        self.marker_accepted += sum(n.speed == MARKER_SPEED for n in msg.neighbours)

    def spin(self, seconds: float) -> None:
        """Process callbacks for `seconds` of wall time."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.05)

    def snapshot(self) -> dict:
        """Counters summed over the receivers, and their CommStats count (steps)."""
        out = {name: sum(getattr(s, name) for s in self.stats.values()) for name in COUNTERS}
        out['steps'] = sum(self.steps.values())
        return out

    def tick_rate(self, since: float, until: float) -> float:
        """Count simulator ticks per wall second between two monotonic times."""
        n = sum(since <= t < until for t in self.ticks)
        return n / (until - since) if until > since else 0.0


def run_kind(observer: Observer, supervisor: Supervisor, keys_dir: str, kind: str,
             args) -> str:
    """One attack kind: before / during / after; the printed line."""
    comm_pids = [u.process.pid for u in supervisor.units
                 if u.process is not None and 'comm' in u.label]
    rate = {'flood': args.flood_rate, 'big': 10.0}.get(kind, args.rate)
    during = args.big_seconds if kind == 'big' else args.during
    t0 = time.monotonic()
    start = observer.snapshot()
    observer.spin(args.before)
    base = observer.snapshot()
    rss_nodes_before = [rss_mb(pid) for pid in comm_pids]
    rss_before = sum(rss_nodes_before)
    marker_before = observer.marker_accepted
    sent = multiprocessing.get_context('spawn').Value('q', 0)
    proc = multiprocessing.get_context('spawn').Process(
        target=hostile_process, args=(keys_dir, kind, rate, during, sent))
    proc.start()
    while sent.value == 0 and proc.is_alive():
        observer.spin(0.1)
    t1 = time.monotonic()
    while proc.is_alive():
        observer.spin(0.2)
    t2 = time.monotonic()
    during_snap = observer.snapshot()
    observer.spin(args.after)
    t3 = time.monotonic()
    final = observer.snapshot()
    rss_nodes_after = [rss_mb(pid) for pid in comm_pids]
    rss_after = sum(rss_nodes_after)
    per_node = ', '.join(f'{a:.1f}->{b:.1f}' for a, b in zip(rss_nodes_before, rss_nodes_after))
    delta = {name: final[name] - base[name] for name in COUNTERS}
    moved = ' '.join(f'{name.replace("dropped_", "")}={value}' for name, value in delta.items()
                     if value)
    steps_before = max(base['steps'] - start['steps'], 1)
    legit_before = (base['accepted_total'] - start['accepted_total']) / steps_before
    steps_during = max(during_snap['steps'] - base['steps'], 1)
    legit_during = (during_snap['accepted_total'] - base['accepted_total']) / steps_during
    delivery = 100.0 * legit_during / legit_before if legit_before else float('nan')
    return (f'{kind:15} sent={max(sent.value, 0):6d} accepted_hostile='
            f'{observer.marker_accepted - marker_before} legit_delivery={delivery:5.1f}% '
            f'ticks/s={observer.tick_rate(t0, t1):4.1f}/{observer.tick_rate(t1, t2):4.1f}/'
            f'{observer.tick_rate(t2, t3):4.1f} rss_MB={rss_before:6.1f}->{rss_after:6.1f} '
            f'({per_node}) '
            f'| {moved}')


def main() -> int:
    """Start the graph, run every attack kind, print one line per kind."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--kinds', nargs='+', default=list(KINDS), choices=KINDS)
    parser.add_argument('--before', type=float, default=5.0)
    parser.add_argument('--during', type=float, default=10.0)
    parser.add_argument('--after', type=float, default=5.0)
    parser.add_argument('--rate', type=float, default=100.0, help='[msgs/s] most kinds')
    parser.add_argument('--flood-rate', type=float, default=2000.0)
    parser.add_argument('--big-seconds', type=float, default=10.0,
                        help='512 KB payloads at 10 Hz for this long (600: the 10-min RSS)')
    parser.add_argument('--background', type=int, default=10)
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument('--timeout', type=float, default=300.0, help='[s] graph start-up')
    parser.add_argument('--comm-param', nargs='*', default=[], metavar='NAME=VALUE',
                        help='comm node parameters (YAML values), e.g. v2v_drain=0')
    args = parser.parse_args()
    import yaml
    comm_params = {name: yaml.safe_load(value) for name, value in
                   (item.split('=', 1) for item in args.comm_param)}
    print_reference()
    work = tempfile.mkdtemp(prefix='bench_v2v_attack_')
    keys = os.path.join(work, 'keys')
    checkpoint = demo_checkpoint(args.checkpoint, work)
    specs = build_graph(num_vehicles=len(ROLES), checkpoint=checkpoint, keys_dir=keys, c=0.0,
                        scenario_changes={'num_background': args.background,
                                          'episode_steps': 10 ** 6}, work_dir=work,
                        overrides={'call_comm': comm_params} if comm_params else None)
    ensure_fleet_keys(keys, list(ROLES))
    log = open(os.path.join(work, 'nodes.log'), 'w', encoding='utf-8')
    supervisor = Supervisor(process_units(specs, workdir=work), output=log)
    context = rclpy.Context()
    rclpy.init(context=context)
    # Ctrl-C raises here, so `finally` stops the graph (rclpy's handler would only shut down)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    observer = Observer(context)
    load = os.getloadavg()
    print(f'3 vehicles, {args.background} background, one process per node; comm '
          f'{comm_params or "defaults"}; '
          f'load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs; '
          f'log {log.name}', flush=True)
    print('kind            sent, hostile accepted, legit delivery during/before, '
          'ticks/s before/during/after, comm RSS sum before->after | counters moved '
          '(3 receivers)', flush=True)
    try:
        supervisor.start()
        started = time.monotonic()
        while len(observer.stats) < len(ROLES) and time.monotonic() - started < args.timeout:
            observer.spin(0.5)
            if supervisor.new_exits():
                print('a node died during start-up; see the log', file=sys.stderr)
                return 1
        observer.spin(5.0)                      # replicas synchronised, keyframes settled
        for kind in args.kinds:
            print(run_kind(observer, supervisor, keys, kind, args), flush=True)
            dead = supervisor.new_exits()
            if dead:
                print(dead[0].describe(), flush=True)
                return 1
    finally:
        supervisor.stop()
        observer.executor.shutdown()
        observer.node.destroy_node()
        rclpy.shutdown(context=context)
        log.close()
    load = os.getloadavg()
    print(f'load average after: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

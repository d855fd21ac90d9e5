"""
`call_inspect`: what the CALL vehicles say to each other, for the pip environment (no rqt).

Commands:
- `call_inspect list`: topics of the run with types and publisher/subscriber counts.
- `call_inspect latents [-d 3] [--fleet keys/fleet.yaml]`: decode /v2v/latents and
  /<role>/comm_stats for d seconds; per sender: messages/s, bytes/message (serialized CDR),
  bytes/s, position, decoded z, and its range and prediction error from its own CommStats
  (LatentMessage v2 carries neither); per receiver: whom it hears, its range, E vs c, drops.
  Senders appear by role name when the fleet key file is given (the wire only carries their
  key id), else as `#<key id in hex>`.
- `call_inspect latents --watch`: the same, refreshed every d seconds until Ctrl-C.
"""
import argparse
from collections import defaultdict
from dataclasses import dataclass, field
import sys
import time
from typing import Optional

from call_msgs.msg import CommStats, LatentMessage
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message

DROP_REASONS = ('unsigned', 'bad_signature', 'unknown_sender', 'replay', 'malformed',
                'implausible', 'out_of_range', 'oversize', 'rate_limited')


def decode_z(packed: bytes) -> Optional[list[int]]:
    """
    Decode a packed z of the `small` model's layout (32 x 32); None for another length.

    The inspector loads no model, so it cannot know another fleet's layout.
    """
    from call_comm.wire_codec import CodecError, DEFAULT_LAYOUT, unpack_z
    try:
        return [int(v) for v in unpack_z(bytes(packed), DEFAULT_LAYOUT)]
    except CodecError:
        return None


def key_id_names(fleet_file: str) -> dict:
    """Map each fleet member's key id to its role name (empty without a fleet file)."""
    if not fleet_file:
        return {}
    from call_comm.auth import Fleet
    fleet = Fleet.load(fleet_file)
    return {fleet.key_id(role): role for role in fleet.members()}


@dataclass
class SenderDigest:
    """What one sender put on /v2v/latents during the window."""

    messages: int = 0
    total_bytes: int = 0
    first_sequence: Optional[int] = None
    last: Optional[LatentMessage] = None
    sequences: set = field(default_factory=set)


@dataclass
class LatentDigest:
    """Aggregates latents and comm stats over a window; ROS-message in, text out."""

    names: dict = field(default_factory=dict)               # key id -> role name
    senders: dict = field(default_factory=lambda: defaultdict(SenderDigest))
    receivers: dict = field(default_factory=dict)          # role -> last CommStats
    received_bytes: dict = field(default_factory=lambda: defaultdict(int))
    started: float = field(default_factory=time.monotonic)

    def add_latent(self, msg: LatentMessage, size: int) -> None:
        """One message seen on the V2V topic, `size` = its serialized bytes."""
        name = self.names.get(msg.sender_key_id, f'#{msg.sender_key_id:08x}')
        digest = self.senders[name]
        digest.messages += 1
        digest.total_bytes += size
        digest.sequences.add(msg.sequence)
        if digest.first_sequence is None:
            digest.first_sequence = msg.sequence
        digest.last = msg

    def add_stats(self, stats: CommStats) -> None:
        """One CommStats of a receiver."""
        self.receivers[stats.vehicle_id] = stats
        self.received_bytes[stats.vehicle_id] += stats.bytes_received

    def report(self, now: Optional[float] = None) -> str:
        """Format the two tables: senders on the channel and who hears whom."""
        elapsed = max((now or time.monotonic()) - self.started, 1e-6)
        lines = [f'/v2v/latents over {elapsed:.1f} s: {len(self.senders)} sender(s)',
                 f'{"sender":8} {"msgs":>5} {"msg/s":>6} {"B/msg":>6} {"B/s":>8} {"gaps":>4} '
                 f'{"x":>8} {"y":>8} {"v":>5} {"range":>6} {"E":>7}  z[:8]  h']
        for sender in sorted(self.senders):
            d = self.senders[sender]
            last = d.last
            span = max(d.sequences) - min(d.sequences) + 1
            z = (decode_z(last.z_packed) or ['?'])[:8]
            own = self.receivers.get(sender)        # the sender's own CommStats, if heard
            gate = f'{own.comm_range:6.1f} {own.prediction_error:7.2f}' if own is not None \
                else f'{"-":>6} {"-":>7}'
            lines.append(
                f'{sender:8} {d.messages:5d} {d.messages / elapsed:6.1f} '
                f'{d.total_bytes / d.messages:6.0f} {d.total_bytes / elapsed:8.0f} '
                f'{span - len(d.sequences):4d} {last.x:8.1f} {last.y:8.1f} {last.speed:5.1f} '
                f'{gate}  {z}  enc{last.h_encoding}/{len(last.h_data)}B')
        lines.append('')
        lines.append(f'{"receiver":8} {"range":>6} {"E":>7} {"c":>6} {"E>c":>4} '
                     f'{"rx B/s":>8}  hears                    drops')
        for role in sorted(self.receivers):
            s = self.receivers[role]
            drops = {r: getattr(s, 'dropped_' + r) for r in DROP_REASONS}
            drop_text = ' '.join(f'{r}={n}' for r, n in drops.items() if n) or '-'
            lines.append(
                f'{role:8} {s.comm_range:6.1f} {s.prediction_error:7.2f} {s.threshold:6.1f} '
                f'{"yes" if s.error_above_threshold else "no":>4} '
                f'{self.received_bytes[role] / elapsed:8.0f}  '
                f'{",".join(s.neighbours) or "-":24} {drop_text}')
        return '\n'.join(lines)


class LatentInspector(Node):
    """Listens to /v2v/latents and every /<role>/comm_stats (discovered as they appear)."""

    def __init__(self, v2v_topic: str = '/v2v/latents', names: Optional[dict] = None):
        super().__init__('call_inspect')
        self.names = dict(names or {})
        self.digest = LatentDigest(self.names)
        qos = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.BEST_EFFORT)
        self.received = 0          # V2V and CommStats messages so far (for --messages)
        self.create_subscription(LatentMessage, v2v_topic, self._on_latent, qos)
        self.stats_topics: set = set()
        self.create_timer(0.5, self._discover)
        self._discover()

    def _on_latent(self, msg: LatentMessage) -> None:
        self.received += 1
        self.digest.add_latent(msg, len(serialize_message(msg)))

    def _on_stats(self, stats: CommStats) -> None:
        self.received += 1
        self.digest.add_stats(stats)

    def _discover(self) -> None:
        for topic, types in self.get_topic_names_and_types():
            if topic.endswith('/comm_stats') and 'call_msgs/msg/CommStats' in types and \
                    topic not in self.stats_topics:
                self.stats_topics.add(topic)
                self.create_subscription(CommStats, topic, self._on_stats, 10)


def list_topics(node: Node, settle: float) -> str:
    """List topics with types and publisher/subscriber counts once discovery settles."""
    end = time.monotonic() + settle
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.1)
    lines = [f'{"topic":40} {"pub":>3} {"sub":>3}  type']
    for topic, types in sorted(node.get_topic_names_and_types()):
        lines.append(f'{topic:40} {node.count_publishers(topic):3d} '
                     f'{node.count_subscribers(topic):3d}  {", ".join(types)}')
    return '\n'.join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of `call_inspect`."""
    parser = argparse.ArgumentParser(prog='call_inspect',
                                     description=__doc__.strip().splitlines()[0])
    parser.add_argument('command', choices=('list', 'latents'), nargs='?', default='latents')
    parser.add_argument('-d', '--duration', type=float, default=3.0, help='window [s]')
    parser.add_argument('--watch', action='store_true', help='repeat until Ctrl-C')
    parser.add_argument('--messages', type=int, default=None,
                        help='latents: report as soon as this many messages (V2V and '
                             'CommStats) have arrived, at the latest when the window ends')
    parser.add_argument('--v2v-topic', default='/v2v/latents')
    parser.add_argument('--fleet', default='', help='fleet key file: show senders by role')
    args, ros_args = parser.parse_known_args(argv)
    try:
        names = key_id_names(args.fleet) if args.command == 'latents' else {}
    except ValueError as error:             # call_comm.auth.KeyFileError
        print(f'call_inspect: {error}', file=sys.stderr)
        return 2
    rclpy.init(args=ros_args)
    node = None
    try:
        if args.command == 'list':
            node = Node('call_inspect')
            print(list_topics(node, args.duration))
            return 0
        node = LatentInspector(args.v2v_topic, names)
        while True:
            end = time.monotonic() + args.duration
            while time.monotonic() < end and (args.messages is None
                                              or node.received < args.messages):
                rclpy.spin_once(node, timeout_sec=0.05)
            print(node.digest.report(), flush=True)
            if not args.watch:
                return 0
            print()
            node.digest = LatentDigest(node.names)
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    except RuntimeError:
        if rclpy.ok():
            raise
        # Ctrl-C shut the context down while the executor was taking a message
        return 0
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    sys.exit(main())

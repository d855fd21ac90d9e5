"""
`call_record`: record every topic of a CALL run to MCAP (ros2 profile, CDR messages).

The file opens in Foxglove Studio and replays with `ros2 bag play` (rosbag2's MCAP storage
reads the same schema encoding `ros2msg` + message encoding `cdr`). Messages are taken raw
(serialized) from DDS, so what is stored is byte for byte what was on the wire. Topics are
discovered while recording; latched topics (e.g. /carla/world_info) are subscribed
transient-local so late subscription still gets them.
"""
import argparse
import importlib
import os
import re
import signal
import sys
import time
from typing import Callable, Optional

from mcap.writer import Writer
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

PRIMITIVES = {'bool', 'byte', 'char', 'float32', 'float64', 'int8', 'uint8', 'int16',
              'uint16', 'int32', 'uint32', 'int64', 'uint64', 'string', 'wstring'}
SEPARATOR = '=' * 80


def message_class(type_name: str) -> type:
    """`pkg/msg/Type` -> the generated Python class."""
    package, _, name = type_name.split('/')
    return getattr(importlib.import_module(f'{package}.msg'), name)


def _msg_file(package: str, name: str) -> str:
    from ament_index_python.packages import get_package_share_directory
    return os.path.join(get_package_share_directory(package), 'msg', name + '.msg')


def _field_types(text: str, package: str) -> list[str]:
    """`pkg/Type` of every non-primitive field of a .msg text."""
    found = []
    for raw in text.splitlines():
        tokens = raw.split('#', 1)[0].split()
        if len(tokens) < 2:
            continue                      # constants have primitive types: skipped below
        base = re.sub(r'\[.*\]$', '', tokens[0])
        base = re.sub(r'<=\d+', '', base)
        if base in PRIMITIVES:
            continue
        if base == 'Header':
            base = 'std_msgs/Header'
        if '/' not in base:
            base = f'{package}/{base}'
        found.append(base.replace('/msg/', '/'))
    return found


def message_definition(type_name: str,
                       read: Callable[[str, str], str] = None) -> str:
    """Full ros2msg definition of `pkg/msg/Type` with its dependencies (rosbag2 layout)."""
    read = read or (lambda package, name: open(_msg_file(package, name),
                                               encoding='utf-8').read())
    package, _, name = type_name.split('/')
    root = read(package, name)
    parts, seen, queue = [root.rstrip('\n')], set(), _field_types(root, package)
    while queue:
        dependency = queue.pop(0)
        if dependency in seen:
            continue
        seen.add(dependency)
        dep_package, dep_name = dependency.split('/')
        text = read(dep_package, dep_name)
        parts.append(f'{SEPARATOR}\nMSG: {dependency}\n{text.rstrip(chr(10))}')
        queue.extend(_field_types(text, dep_package))
    return '\n'.join(parts) + '\n'


class McapRecorder(Node):
    """Subscribes (raw) to every matching topic and appends the bytes to an MCAP file."""

    def __init__(self, path: str, topic_pattern: str = '.*', discovery_period: float = 0.5):
        super().__init__('call_record')
        self.pattern = re.compile(topic_pattern)
        self.stream = open(path, 'wb')
        self.writer = Writer(self.stream)
        self.writer.start(profile='ros2', library='call_record')
        self.schemas: dict[str, int] = {}
        self.channels: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self.sequence = 0
        self.subscriptions_by_topic: dict = {}
        self.create_timer(discovery_period, self.discover)
        self.discover()

    def _qos(self, topic: str) -> QoSProfile:
        infos = self.get_publishers_info_by_topic(topic)
        latched = bool(infos) and all(
            info.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for info in infos)
        if latched:
            return QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                              reliability=ReliabilityPolicy.RELIABLE,
                              durability=DurabilityPolicy.TRANSIENT_LOCAL)
        return QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                          reliability=ReliabilityPolicy.BEST_EFFORT)

    def discover(self) -> None:
        """Subscribe to topics that appeared since the last look."""
        for topic, types in self.get_topic_names_and_types():
            if topic in self.subscriptions_by_topic or not self.pattern.fullmatch(topic):
                continue
            type_name = types[0]
            try:
                cls = message_class(type_name)
                definition = message_definition(type_name)
            except (ImportError, AttributeError, LookupError, OSError) as err:
                self.get_logger().warning(f'not recording {topic} ({type_name}): {err}')
                self.subscriptions_by_topic[topic] = None
                continue
            if type_name not in self.schemas:
                self.schemas[type_name] = self.writer.register_schema(
                    name=type_name, encoding='ros2msg', data=definition.encode())
            self.channels[topic] = self.writer.register_channel(
                topic=topic, message_encoding='cdr', schema_id=self.schemas[type_name])
            self.counts[topic] = 0
            self.subscriptions_by_topic[topic] = self.create_subscription(
                cls, topic, lambda data, topic=topic: self._write(topic, data),
                self._qos(topic), raw=True)

    def _write(self, topic: str, data: bytes) -> None:
        now = time.time_ns()
        self.writer.add_message(channel_id=self.channels[topic], log_time=now, data=data,
                                publish_time=now, sequence=self.sequence)
        self.sequence += 1
        self.counts[topic] += 1

    def close(self) -> None:
        """Finish the MCAP file (summary, index); safe to call twice."""
        if not self.stream.closed:
            self.writer.finish()
            self.stream.close()


def main(argv: Optional[list[str]] = None) -> int:
    """Record until Ctrl-C, --duration or --max-messages; print per-topic message counts."""
    parser = argparse.ArgumentParser(prog='call_record',
                                     description=__doc__.strip().splitlines()[0])
    parser.add_argument('-o', '--output', default=None,
                        help='MCAP file (default runs/<timestamp>/run.mcap)')
    parser.add_argument('--topics', default='.*', help='regular expression of topic names')
    parser.add_argument('--duration', type=float, default=None, help='seconds (wall clock)')
    parser.add_argument('--max-messages', type=int, default=None,
                        help='stop after recording this many messages (all topics)')
    args, ros_args = parser.parse_known_args(argv)
    output = args.output or os.path.join('runs', time.strftime('%Y%m%d-%H%M%S'), 'run.mcap')
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    rclpy.init(args=ros_args)
    recorder = McapRecorder(output, args.topics)
    signal.signal(signal.SIGTERM, lambda *_: rclpy.try_shutdown())
    deadline = None if args.duration is None else time.monotonic() + args.duration
    try:
        while rclpy.ok() and (deadline is None or time.monotonic() < deadline) and (
                args.max_messages is None or sum(recorder.counts.values()) < args.max_messages):
            rclpy.spin_once(recorder, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        if rclpy.ok():
            raise
        # Ctrl-C shut the context down while the executor was taking a message
    finally:
        recorder.close()
        for topic, count in sorted(recorder.counts.items()):
            print(f'{count:8d}  {topic}')
        print(f'wrote {output}')
        recorder.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())

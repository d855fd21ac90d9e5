"""
A V2V channel with faults: per-link loss and delay, forged senders and replays.

`build_graph(v2v_faults=...)` remaps each comm node's V2V topic to `/v2v/latents/<role>`
(it publishes and listens there); this relay takes each vehicle's own messages from its
topic and delivers them to every other vehicle's topic, link by link, with the configured
faults. It counts every delivery, loss and injection by kind, on /diagnostics (status
`v2v_fault_relay`) and in a final `fault counts: {...}` log line. Delays use the node clock
(sim time under use_sim_time): a 0.2 s delay is two simulation steps.

LatentMessage v2 names its sender by key id only. The relay tells a vehicle's own messages
from the copies it delivered itself by their signatures (it remembers what it published), and
learns each vehicle's key id from its own messages, or from `fleet_key_file` when given; a
forged copy impersonating a vehicle whose key id is not known yet is counted `forge_skipped`.
With `link_on_first_message` (default) a link comes up when its vehicle is first heard (its
comm node, and so its subscription, exists), and in any case only once the relay sees a reader
of the vehicle's own (a node in its namespace, `/<role>`) on the link: its own subscription to
the topic, and observers such as a test's probe, match the link's writer too, so a matched-reader
count would not tell. Copies before that are counted `unlinked` and not sent, so every copy
counted as sent had a receiver to count it.
"""
import collections
from dataclasses import dataclass, field
import heapq
import itertools
import json
import random
from typing import Any, Optional

from call_common.node_main import spin_until_signal
from call_common.parameters import declare_from_yaml
from call_msgs.msg import LatentMessage
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

FAULT_KINDS = ('relayed', 'dropped_loss', 'delayed', 'forged', 'replayed', 'forge_skipped',
               'unlinked')
RELAYED_MEMORY = 4096       # signatures of published copies remembered (>> messages in flight)


@dataclass
class FaultPlan:
    """What the channel does to each message; ROS-free so it can be reasoned about alone."""

    loss_probability: float = 0.0
    delay_s: float = 0.0
    forge_probability: float = 0.0
    replay_probability: float = 0.0
    replay_age: int = 20                   # replay a message this many messages old
    seed: int = 0
    counts: collections.Counter = field(default_factory=collections.Counter)

    def __post_init__(self) -> None:
        for name in ('loss_probability', 'forge_probability', 'replay_probability'):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f'{name} must be in [0, 1], got {value}')
        if self.delay_s < 0 or self.replay_age < 1:
            raise ValueError('delay_s must be >= 0 and replay_age >= 1')
        self._random = random.Random(self.seed)

    def lost(self) -> bool:
        """Whether one link loses this message (counted as dropped_loss)."""
        return self._random.random() < self.loss_probability

    def forge(self) -> bool:
        """Whether to inject a forged copy of this message."""
        return self._random.random() < self.forge_probability

    def replay(self) -> bool:
        """Whether to inject a replay of an old message now."""
        return self._random.random() < self.replay_probability


def forged_copy(message: LatentMessage, impersonated_key_id: int) -> LatentMessage:
    """Copy payload and signature under another vehicle's key id, at a shifted position."""
    forged = LatentMessage()
    for slot in LatentMessage.get_fields_and_field_types():
        setattr(forged, slot, getattr(message, slot))
    forged.sender_key_id = impersonated_key_id
    forged.x = message.x + 3.0               # a plausible-looking lie about the position
    return forged


class V2vFaultRelay(Node):
    """Delivers each vehicle's LatentMessages to the others' topics with the planned faults."""

    def __init__(self, **node_options: Any) -> None:
        """Declare the parameters (config/v2v_fault_relay.yaml) and wire every vehicle's link."""
        super().__init__('v2v_fault_relay', **node_options)
        p = declare_from_yaml(self, 'call_bringup', 'v2v_fault_relay.yaml')
        self.plan = FaultPlan(float(p['loss_probability']), float(p['delay_s']),
                              float(p['forge_probability']), float(p['replay_probability']),
                              int(p['replay_age']), int(p['seed']))
        self.roles = list(p['role_names'])
        self.key_ids: dict = {}                 # role -> key id (fleet file, else learnt)
        if p['fleet_key_file']:
            from call_comm.auth import Fleet    # run-time only: call_comm is a peer package
            fleet = Fleet.load(p['fleet_key_file'])
            self.key_ids = {r: fleet.key_id(r) for r in self.roles if fleet.knows(r)}
        self.relayed: collections.OrderedDict = collections.OrderedDict()
        # vehicles heard at least once; every vehicle when links need no first message
        self.link_on_first_message = bool(p['link_on_first_message'])
        self.linked: set = set() if self.link_on_first_message else set(self.roles)
        self.readers_seen: set = set()          # vehicles whose own reader is on their link
        # comm nodes ask for a deadline on their V2V subscription: offer one at least as tight
        qos = QoSProfile(depth=int(p['qos_depth']), history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.BEST_EFFORT)
        if p['qos_deadline'] > 0:
            qos.deadline = Duration(seconds=float(p['qos_deadline']))
        # copies go out reliably: the relay alone decides what is lost (comm nodes behind a
        # relay subscribe reliably; best-effort readers such as tools still match)
        link_qos = QoSProfile(depth=qos.depth, history=qos.history,
                              reliability=ReliabilityPolicy.RELIABLE, deadline=qos.deadline)
        self.links = {role: self.create_publisher(
            LatentMessage, f'{p["topic_prefix"]}/{role}', link_qos) for role in self.roles}
        for role in self.roles:
            self.create_subscription(LatentMessage, f'{p["topic_prefix"]}/{role}',
                                     lambda msg, role=role: self._on_message(role, msg), qos)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.history = {role: collections.deque(maxlen=self.plan.replay_age)
                        for role in self.roles}
        self.pending: list = []               # heap of (release ns, order, role, message)
        self.delivery_order = itertools.count()
        self.create_timer(0.01, self._release)
        self.create_timer(float(p['report_period_s']), self._report)
        self.get_logger().info(f'relaying V2V between {self.roles} with {self._plan_text()}')

    def _plan_text(self) -> str:
        plan = self.plan
        return (f'loss={plan.loss_probability} delay={plan.delay_s}s '
                f'forge={plan.forge_probability} replay={plan.replay_probability}')

    def _deliver(self, destination: str, message: LatentMessage, kind: str) -> None:
        # a link whose reader is not matched yet would lose the copy unseen (volatile): it is
        # not linked yet, so the counts stay what the receivers can see
        if destination not in self.linked or not self._has_reader(destination):
            self.plan.counts['unlinked'] += 1
            self.plan.counts[f'unlinked:{destination}'] += 1
            return
        if self.plan.delay_s > 0:
            release = self.get_clock().now().nanoseconds + int(self.plan.delay_s * 1e9)
            entry = (release, next(self.delivery_order), destination, message, kind)
            heapq.heappush(self.pending, entry)
        else:
            self._publish(destination, message, kind)

    def _has_reader(self, destination: str) -> bool:
        """Tell whether the destination vehicle has a reader of its own on its link (kept)."""
        if destination not in self.readers_seen:
            topic = self.links[destination].topic_name
            if any(info.node_namespace == f'/{destination}'
                   for info in self.get_subscriptions_info_by_topic(topic)):
                self.readers_seen.add(destination)
        return destination in self.readers_seen

    def _publish(self, destination: str, message: LatentMessage, kind: str) -> None:
        """Send on one link; counted by kind and by kind per destination once sent."""
        self.links[destination].publish(message)
        self.relayed[bytes(message.signature)] = None
        self.relayed.move_to_end(bytes(message.signature))
        while len(self.relayed) > RELAYED_MEMORY:
            self.relayed.popitem(last=False)
        self.plan.counts[kind] += 1
        self.plan.counts[f'{kind}:{destination}'] += 1
        if self.plan.delay_s > 0:
            self.plan.counts['delayed'] += 1

    def _on_message(self, source: str, message: LatentMessage) -> None:
        if bytes(message.signature) in self.relayed:
            return                              # a copy this relay delivered to `source`
        self.linked.add(source)
        self.key_ids.setdefault(source, message.sender_key_id)
        history = self.history[source]
        if self.plan.replay() and len(history) == history.maxlen:
            for destination in self.roles:
                if destination != source:
                    self._deliver(destination, history[0], 'replayed')
        history.append(message)
        if self.plan.forge() and len(self.roles) > 2:
            others = [r for r in self.roles if r != source]
            impersonated = others[message.sequence % len(others)]
            if impersonated not in self.key_ids:
                self.plan.counts['forge_skipped'] += 1
            else:
                forged = forged_copy(message, self.key_ids[impersonated])
                for destination in self.roles:
                    if destination != impersonated:
                        self._deliver(destination, forged, 'forged')
        for destination in self.roles:
            if destination == source:
                continue
            if self.plan.lost():
                self.plan.counts['dropped_loss'] += 1
                self.plan.counts[f'dropped_loss:{destination}'] += 1
            else:
                self._deliver(destination, message, 'relayed')

    def _release(self) -> None:
        now = self.get_clock().now().nanoseconds
        while self.pending and self.pending[0][0] <= now:
            _, _, destination, message, kind = heapq.heappop(self.pending)
            self._publish(destination, message, kind)

    def counts(self) -> dict:
        """Count deliveries, losses and injections so far, by kind (and `kind:role`)."""
        totals = {kind: self.plan.counts[kind] for kind in FAULT_KINDS}
        totals.update(self.plan.counts)
        totals['pending'] = len(self.pending)
        return totals

    def _report(self) -> None:
        status = DiagnosticStatus(level=DiagnosticStatus.OK, name='v2v_fault_relay',
                                  hardware_id='v2v', message=self._plan_text())
        status.values = [KeyValue(key=kind, value=str(count))
                         for kind, count in sorted(self.counts().items())]
        # 1 once the vehicle's own reader is on its link (copies to it can be counted as sent)
        status.values += [KeyValue(key=f'reader:{role}', value=str(int(self._has_reader(role))))
                          for role in self.roles]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(array)


def main(args: Optional[list[str]] = None) -> int:
    """
    Run the relay until SIGINT/SIGTERM, then print the final counts.

    call_common.node_main stops between callbacks: a copy is never published without being
    counted, so the final counts equal what the receivers saw.
    """
    return spin_until_signal(V2vFaultRelay, args, 'v2v_fault_relay', on_stop=lambda node: print(
        'fault counts: ' + json.dumps(node.counts()), flush=True))


if __name__ == '__main__':
    raise SystemExit(main())

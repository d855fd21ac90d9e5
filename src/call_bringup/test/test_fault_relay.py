"""The V2V fault relay over real DDS: link loss, forged senders and replays, all counted."""
import json
import signal
import subprocess
import sys
import time

from call_bringup.fault_injection import FaultPlan
from call_comm.auth import Fleet
from call_comm.keygen import write_fleet
from call_msgs.msg import LatentMessage
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import pytest
import rclpy
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

ROLES = ['hero0', 'hero1', 'hero2']
RELAY = 'v2v_fault_relay'
QOS_DEPTH = 500             # every reader holds a whole run: no loss the test did not ask for
WAIT_S = 60.0               # bound of every wait
OUTCOMES = ('relayed', 'dropped_loss', 'unlinked')    # what became of an input, per link
SENT_KINDS = ('relayed', 'forged', 'replayed')        # copies the relay sent, per link
HERO0 = 0x0A0B0C0D          # hero0's key id when the relay runs without a fleet file


def test_fault_plan_rejects_bad_probabilities():
    with pytest.raises(ValueError):
        FaultPlan(loss_probability=1.5)
    with pytest.raises(ValueError):
        FaultPlan(delay_s=-0.1)


def _signature(sequence: int) -> np.ndarray:
    """Return a distinct non-zero signature per message, as Ed25519 gives real messages."""
    return np.frombuffer(sequence.to_bytes(4, 'big') * 16, dtype=np.uint8) | np.uint8(0x80)


def run_relay(params: dict, messages: int, hero0: int = HERO0,
              hello_from: tuple = (), readers: tuple = tuple(ROLES)) -> tuple[dict, dict]:
    """
    Publish `messages` from hero0 through a relay; what each vehicle got + relay counts.

    Only hero0 speaks, so its links to the others are up from the start unless `params` say
    otherwise; vehicles in `hello_from` send one message (sequence 0) halfway through. Each
    vehicle in `readers` reads its topic from a node in its namespace, as its comm node does.
    Every wait is for an event: the relay's diagnostics saying it has processed what was
    sent, then every copy it sent (reliably) having arrived here.
    """
    args = [sys.executable, '-m', 'call_bringup.fault_injection', '--ros-args',
            '-p', 'role_names:=[hero0, hero1, hero2]', '-p', f'qos_depth:={QOS_DEPTH}',
            '-p', 'report_period_s:=0.05']
    for key, value in {'link_on_first_message': False, **params}.items():
        args += ['-p', f'{key}:={value}']
    relay = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('relay_test', context=context)
    vehicles = {r: rclpy.create_node('comm', namespace=f'/{r}', context=context)
                for r in readers}
    executor = SingleThreadedExecutor(context=context)
    for each in [node, *vehicles.values()]:
        executor.add_node(each)
    received = {role: [] for role in ROLES}
    reported: dict = {}
    try:
        qos = QoSProfile(depth=QOS_DEPTH, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.BEST_EFFORT,
                         deadline=Duration(seconds=0.2))
        publisher = node.create_publisher(LatentMessage, '/v2v/latents/hero0', qos)
        hellos = {r: node.create_publisher(LatentMessage, f'/v2v/latents/{r}', qos)
                  for r in hello_from}
        for role, vehicle in vehicles.items():
            vehicle.create_subscription(LatentMessage, f'/v2v/latents/{role}',
                                        lambda m, r=role: received[r].append(m), qos)
        node.create_subscription(DiagnosticArray, '/diagnostics',
                                 lambda m: reported.update(_relay_counts(m)), 10)

        def spin_until(predicate, what: str) -> None:
            deadline = time.monotonic() + WAIT_S
            while not predicate() and time.monotonic() < deadline and relay.poll() is None:
                executor.spin_once(timeout_sec=0.02)
            assert predicate(), f'{what}; relay counts {reported}'

        def relay_linked() -> bool:       # its subscription and its three link publishers
            return publisher.get_subscription_count() == 1 + ('hero0' in vehicles) and all(
                any(i.node_name == RELAY for i in node.get_publishers_info_by_topic(
                    f'/v2v/latents/{r}')) for r in ROLES)
        spin_until(relay_linked, 'the relay never matched our endpoints')
        spin_until(lambda: all(reported.get(f'reader:{r}') == 1 for r in vehicles),
                   "the relay never saw the vehicles' readers")
        sent = 0

        def processed(inputs: int):       # every input has an outcome on both other links
            return lambda: sum(reported.get(k, 0) for k in OUTCOMES) >= 2 * inputs
        for sequence in range(messages):
            if sequence == messages // 2 and hellos:
                spin_until(processed(sent), 'the relay did not process the first half')
                for role, hello in hellos.items():
                    hello.publish(LatentMessage(sender_key_id=ROLES.index(role), sequence=0,
                                                signature=_signature(1000 + ROLES.index(role))))
                    sent += 1
                spin_until(processed(sent), 'the relay did not process the hellos')
            publisher.publish(LatentMessage(sender_key_id=hero0, sequence=sequence,
                                            signature=_signature(sequence)))
            sent += 1
        spin_until(processed(sent), 'the relay did not process every message')
        # then every copy it sent has arrived (reliable links), besides our own messages
        expected = {r: sum(reported.get(f'{k}:{r}', 0) for k in SENT_KINDS)
                    + (messages if r == 'hero0' else 0) + (1 if r in hellos else 0)
                    if r in vehicles else 0 for r in ROLES}
        spin_until(lambda: {r: len(received[r]) for r in ROLES} == expected,
                   f'copies missing: expected {expected}')
    finally:
        executor.shutdown()
        for each in [node, *vehicles.values()]:
            each.destroy_node()
        rclpy.shutdown(context=context)
        relay.send_signal(signal.SIGINT)
        try:
            out, _ = relay.communicate(timeout=10)
        finally:
            relay.kill()
    line = next(x for x in out.splitlines() if x.startswith('fault counts: '))
    return received, json.loads(line[len('fault counts: '):])


def _relay_counts(array: DiagnosticArray) -> dict:
    """Return the relay's counts in a /diagnostics message ({} for other nodes' statuses)."""
    return {kv.key: int(kv.value) for status in array.status if status.name == RELAY
            for kv in status.values}


def test_lossy_link_counts_every_lost_delivery():
    received, counts = run_relay({'loss_probability': 0.3, 'seed': 3}, 100)
    hero0_own = [m for m in received['hero0'] if m.sender_key_id == HERO0]
    delivered = len(received['hero1']) + len(received['hero2'])
    assert counts['relayed'] + counts['dropped_loss'] == 200     # 2 links x 100 messages
    assert 30 <= counts['dropped_loss'] <= 90                    # 30 % of 200, loosely
    assert delivered == counts['relayed']                        # nothing else went missing
    assert len(hero0_own) == 100                                 # never sent back to hero0


def test_forged_and_replayed_copies_are_injected_and_counted(tmp_path):
    fleet = Fleet.load(write_fleet(ROLES, tmp_path))
    keys = {r: fleet.key_id(r) for r in ROLES}
    received, counts = run_relay({'forge_probability': 1.0, 'replay_probability': 1.0,
                                  'replay_age': 5, 'fleet_key_file': tmp_path / 'fleet.yaml'},
                                 30, keys['hero0'])
    forged = [m for r in ROLES for m in received[r] if m.sender_key_id != keys['hero0']]
    assert counts['forged'] == 2 * 30 and len(forged) == counts['forged']
    assert counts['forge_skipped'] == 0
    assert all(m.sender_key_id in (keys['hero1'], keys['hero2']) for m in forged)
    # nobody receives a forgery in its own name
    assert not any(m.sender_key_id == keys[r] for r in ROLES for m in received[r]
                   if r != 'hero0')
    replays = counts['replayed']
    assert replays == 2 * (30 - 5)                       # from the 6th message (history full)
    genuine = [m.sequence for m in received['hero1'] if m.sender_key_id == keys['hero0']]
    assert len(genuine) == 30 + replays // 2


def test_without_a_fleet_file_unknown_key_ids_cannot_be_forged():
    received, counts = run_relay({'forge_probability': 1.0}, 10)
    assert counts['forge_skipped'] == 10 and counts['forged'] == 0   # only hero0 spoke
    assert counts['relayed'] == 2 * 10
    assert all(m.sender_key_id == HERO0 for r in ROLES for m in received[r])


def test_links_come_up_when_their_vehicle_is_first_heard():
    received, counts = run_relay({'link_on_first_message': True}, 20, hello_from=('hero1',))
    from_hero0 = {r: [m for m in received[r] if m.sender_key_id == HERO0] for r in ROLES}
    assert from_hero0['hero2'] == []                  # never heard: never linked
    assert 0 < len(from_hero0['hero1']) <= 10         # linked halfway through
    assert counts['relayed'] == len(from_hero0['hero1']) + 1    # + hero1's hello to hero0
    assert counts['unlinked'] == 40 - len(from_hero0['hero1']) + 1  # + its hello to hero2
    assert counts['unlinked:hero2'] == 21


def test_copies_wait_for_a_reader_of_the_vehicles_own():
    # hero2 has no reader: the relay's own subscription and observers (a probe) match its link
    # too, and a copy counted as sent with no vehicle to receive it would break the counts
    received, counts = run_relay({}, 10, readers=('hero0', 'hero1'))
    assert counts['relayed:hero1'] == len(received['hero1']) == 10
    assert counts.get('relayed:hero2', 0) == 0 and counts['unlinked:hero2'] == 10

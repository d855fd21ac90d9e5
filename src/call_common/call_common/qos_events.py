"""
Publisher / subscription options without rclpy's default QoS-event handlers.

Each default handler (incompatible QoS, incompatible type) is a Python waitable that the
executor re-adds to its wait set on every wake-up: about 3x the CPU per received message in
a composed vehicle (bench/bench_bringup.py). QoS mismatches still show as topics that never
deliver, which the tests and the lockstep diagnostics catch. Pass these as `event_callbacks`.
"""
try:  # Iron and newer
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks

QUIET_PUB = PublisherEventCallbacks(use_default_callbacks=False)
QUIET_SUB = SubscriptionEventCallbacks(use_default_callbacks=False)

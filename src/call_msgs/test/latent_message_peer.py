"""Peer process for the DDS exchange test: publishes or echoes call_msgs/LatentMessage."""
import sys

from call_msgs.msg import LatentMessage
import numpy as np
import rclpy
from rclpy.node import Node


def make_message(sequence: int) -> LatentMessage:
    """Build a deterministic message whose content the test can check field by field."""
    msg = LatentMessage()
    msg.stamp.sec = 12
    msg.stamp.nanosec = 300_000_000
    msg.sender_key_id = 0xC0FFEE42
    msg.sequence = sequence
    msg.x, msg.y, msg.yaw, msg.speed = 101.25, -7.5, 0.25, 8.5
    msg.z_packed = np.arange(20, dtype=np.uint8)
    msg.action = 7
    msg.h_encoding = LatentMessage.H_FP16
    msg.h_data = bytes([1, 2, 3, 4] * 8)
    msg.intention_packed = bytes([9] * 15)
    msg.signature = np.full(64, 0xAB, dtype=np.uint8)
    return msg


def main() -> None:
    """Publish messages until the echo comes back on /echo or the process is killed."""
    rclpy.init()
    node = Node('latent_message_peer')
    pub = node.create_publisher(LatentMessage, '/v2v/latents', 10)
    sequence = [0]

    def tick() -> None:
        sequence[0] += 1
        pub.publish(make_message(sequence[0]))

    node.create_timer(0.05, tick)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    sys.exit(main())

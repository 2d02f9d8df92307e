"""The end of a node's process: its own threads stopped, the node destroyed, rclpy shut down (tracker_node, player)."""
from __future__ import annotations

import rclpy


def close_node(node) -> None:
    """`node.shutdown()` (its threads) and `destroy_node()` when there is a node, then rclpy's shutdown if still up."""
    if node is not None:
        node.shutdown()
        node.destroy_node()
    rclpy.try_shutdown()

"""The end of a node's process: its own threads stopped, the executor shut down, the node destroyed, rclpy shut down
(tracker_node, player)."""
from __future__ import annotations

import sys

import rclpy


def close_node(node, executor=None) -> None:
    """`node.shutdown()` (its threads), `executor.shutdown()`, `destroy_node()`, then rclpy's shutdown if still up.

    Each step runs even when an earlier one was interrupted: a second Ctrl-C while the node waits for its threads
    cuts that wait short (the threads are daemons) instead of raising out of the caller's `finally`, which would skip
    the rest and print a traceback.
    """
    steps = []
    if node is not None:
        steps.append(("stopping the node's threads", node.shutdown))
    if executor is not None:
        steps.append(("shutting down the executor", lambda: executor.shutdown(timeout_sec=2.0)))
    if node is not None:
        steps.append(("destroying the node", node.destroy_node))
    steps.append(("shutting down rclpy", rclpy.try_shutdown))
    for what, step in steps:
        try:
            step()
        except KeyboardInterrupt:
            print(f"interrupted while {what}: going on with the shutdown", file=sys.stderr, flush=True)

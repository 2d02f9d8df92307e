"""The tracker node (`tracker_node`), the ROS adapter of siam_tracker_ros.engine, and its own modules: node, settings,
depth_input, diagnostics, params, image_codec, messages, heatmap, lifetime.

The runs around the node (frame player, sessions, client, report, demo, latency, load) are `siam_tracker_ros.runs`.
`image_codec` and `heatmap` work without ROS; the others import rclpy or ROS messages.
"""

"""ROS 2 side of the package: the tracker node and its helpers.

Only `node` (and the player/demo modules) import rclpy; `image_codec`, `heatmap` and the tracker core work without ROS.
"""

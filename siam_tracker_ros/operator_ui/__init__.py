"""The operator page: a browser view of the tracker's camera topic on which a person draws a box to start tracking.

`siam-tracker ui` / `ros2 run siam_tracker_ros operator_ui` / `ros2 launch ... ui:=true` run one process holding an
rclpy node (bridge.py: subscriptions, the init/stop service clients) and a small aiohttp server (server.py) for the
page in static/ (plain HTML, JavaScript and CSS, nothing fetched from the internet). main.py starts both.
"""

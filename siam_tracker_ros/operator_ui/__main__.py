"""`python -m siam_tracker_ros.operator_ui --ros-args ...` (the same as `ros2 run siam_tracker_ros operator_ui`)."""
import sys

from .main import main

sys.exit(main())

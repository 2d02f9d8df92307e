"""siam_tracker_ros: a Siamese single/multi-target tracker (SiamFC + SE + multi-layer fusion + global attention)
with a thin ROS 2 layer. Everything outside `ros/` is free of ROS imports."""
import pkgutil

# The generated service types (siam_tracker_ros.srv) live only in the colcon install tree; extending the package path
# lets them be found from the source tree too (tests, `python -m` from the repository root).
__path__ = pkgutil.extend_path(__path__, __name__)

__version__ = "0.1.0"

"""siam_tracker_ros: a Siamese single/multi-target tracker (SiamFC + SE + multi-layer fusion + global attention)
with a thin ROS 2 layer. Everything outside `ros/` is free of ROS imports."""
__version__ = "0.1.0"

"""pip install . -> the ROS-free tracker core plus the `siam-tracker` command.

The ROS 2 build of this repository goes through package.xml/CMakeLists.txt (ament_cmake), not this file.
siam_tracker_ros.ros is included but only imports rclpy when used. The shipped config and weights go to
<prefix>/share/siam_tracker_ros/, as colcon installs them (siam_tracker_ros/resources.py finds them there).
"""
from glob import glob

from setuptools import find_packages, setup

SHARE = "share/siam_tracker_ros"

setup(
    name="siam_tracker_ros",
    version="0.1.0",
    description="Siamese visual tracker (AlexNet + multi-level fusion + attention) with a ROS 2 node",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["siam_tracker_ros", "siam_tracker_ros.*"]),
    include_package_data=True,
    package_data={"siam_tracker_ros.operator_ui": ["static/*"]},
    data_files=[(f"{SHARE}/config", glob("config/*.yaml")),
                (f"{SHARE}/weights", glob("weights/*.pt") + glob("weights/*.json")),
                (f"{SHARE}/weights/LICENSES", glob("weights/LICENSES/*"))],
    install_requires=[
        "numpy",
        "pyyaml",
        "torch",
        # contrib build: also brings the OpenCV CSRT/KCF trackers used as evaluation peers
        "opencv-contrib-python-headless",
    ],
    extras_require={
        "onnx": ["onnx", "onnxruntime"],
        "eval": ["matplotlib", "scikit-image"],
        "test": ["pytest"],
        "ui": ["aiohttp"],
    },
    entry_points={"console_scripts": ["siam-tracker = siam_tracker_ros.cli:main"]},
)

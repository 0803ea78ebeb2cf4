"""ament_python package (colcon) that is also an ordinary pip package."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "stereo_depth_node"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="ROS 2 stereo depth node: PSMNet with a depthwise-separable feature extractor",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={PACKAGE: ["weights/*.pt", "weights/*.json", "ros/fastdds_shm.xml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz")),
    ],
    # torch is not pinned here: a bare `pip install torch` can pull a multi-GB CUDA build, so the
    # Makefile installs the build it wants first and this requirement is then already met.
    install_requires=["setuptools", "numpy", "opencv-python-headless", "pyyaml", "scikit-image",
                      "torch>=2.4"],
    extras_require={
        "ros": ["ros-rclpy[fastrtps]==9.1.2", "ros-sensor-msgs", "ros-stereo-msgs",
                "ros-std-msgs", "ros-diagnostic-msgs", "rosbags"],
        "dev": ["pytest", "ruff", "onnx", "onnxruntime"],
        "train": ["tensorboard"],
    },
    entry_points={
        "console_scripts": [
            "stereo-depth = stereo_depth_node.cli:main",
            "stereo_depth_node = stereo_depth_node.ros.entry:main",
        ],
    },
)

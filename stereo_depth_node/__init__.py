"""Stereo depth for ROS 2: PSMNet-family networks and OpenCV SGBM behind one estimator."""

__version__ = "0.1.0"

"""The image size a sensor_msgs/CameraInfo describes, read as image_geometry reads it. Free of
ROS imports, so that launch files (replay's warm-up size) use it on rosbags' messages as the node
does on rclpy's."""
from __future__ import annotations

from typing import Any


def binning(info: Any) -> tuple[int, int]:
    return info.binning_x or 1, info.binning_y or 1  # 0 means 1 (no binning)


def image_size(info: Any) -> tuple[int, int] | None:
    """(width, height) of the image a camera_info describes: its region of interest (all zeros:
    the full `width` x `height`) divided by the binning; None when the camera_info leaves its
    size at 0 x 0."""
    roi = info.roi
    width, height = ((roi.width, roi.height) if (roi.x_offset, roi.y_offset, roi.width,
                                                 roi.height) != (0, 0, 0, 0)
                     else (info.width, info.height))
    if (width, height) == (0, 0):
        return None
    binning_x, binning_y = binning(info)
    return width // binning_x, height // binning_y

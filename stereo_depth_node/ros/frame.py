"""One synchronised stereo set of ROS messages in, the node's output messages out.

Shared by the live node and `stereo-depth bag process`, so that a bag processed offline gives the
same messages the node would publish.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from stereo_msgs.msg import DisparityImage

from ..errors import InputError
from ..estimator import StereoEstimator
from ..pipeline import OutputSettings, process_frame
from .conversions import ImageDecoder
from .messages import disparity_image, float_image, point_cloud

LEFT_IMAGE, RIGHT_IMAGE = "left/image_rect", "right/image_rect"
LEFT_INFO, RIGHT_INFO = "left/camera_info", "right/camera_info"
INPUT_TOPICS = (LEFT_IMAGE, RIGHT_IMAGE, LEFT_INFO, RIGHT_INFO)
OUTPUT_TOPICS = ("disparity", "depth", "depth/camera_info", "points2", "confidence")
INPUT_TYPES = dict(zip(INPUT_TOPICS, (Image, Image, CameraInfo, CameraInfo)))
OUTPUT_TYPES = dict(zip(OUTPUT_TOPICS, (DisparityImage, Image, CameraInfo, PointCloud2, Image)))
PUBLISH_FLAGS = {"disparity": "publish_disparity", "depth": "publish_depth",
                 "depth/camera_info": "publish_depth", "points2": "publish_points",
                 "confidence": "publish_confidence"}


@dataclass
class FrameResult:
    messages: dict[str, object]   # output topic -> message, only the enabled and possible ones
    camera_error: str | None      # why depth and points are missing, if they are


def _check_sizes(left, right, left_info: CameraInfo, right_info: CameraInfo) -> None:
    for topic, info_topic, image, info in ((LEFT_IMAGE, LEFT_INFO, left, left_info),
                                           (RIGHT_IMAGE, RIGHT_INFO, right, right_info)):
        height, width = image.shape[:2]
        if (info.width, info.height) not in ((0, 0), (width, height)):
            raise InputError(f"{topic} is {width}x{height} px but {info_topic} says "
                             f"{info.width}x{info.height}")
    if left.shape[:2] != right.shape[:2]:
        raise InputError(f"{LEFT_IMAGE} is {left.shape[1]}x{left.shape[0]} px but "
                         f"{RIGHT_IMAGE} is {right.shape[1]}x{right.shape[0]} px")


def process_stereo_messages(estimator: StereoEstimator, decoder: ImageDecoder, left_msg: Image,
                            right_msg: Image, left_info: CameraInfo, right_info: CameraInfo,
                            settings: OutputSettings, publish: dict[str, bool]) -> FrameResult:
    """Every enabled output message, all with the left image's header.

    Raises InputError (naming topic, field and expected value) for input that cannot be used.
    """
    left = decoder.to_rgb(left_msg, LEFT_IMAGE)
    right = decoder.to_rgb(right_msg, RIGHT_IMAGE)
    _check_sizes(left, right, left_info, right_info)
    output = process_frame(estimator, left, right, left_info.p, right_info.p, settings)
    header, camera = left_msg.header, output.camera
    enabled = {topic: publish.get(flag, True) for topic, flag in PUBLISH_FLAGS.items()}
    messages: dict[str, object] = {}
    if enabled["disparity"]:
        offset = camera.disparity_offset if camera is not None else 0.0
        focal = right_info.p[0]
        # SGBM's fixed point has 1/16 px steps; the networks' output is continuous, and 1/256 px
        # is the resolution of the 16-bit KITTI encoding this package writes.
        delta = 1 / 16 if estimator.model_name == "sgbm" else 1 / 256
        messages["disparity"] = disparity_image(
            output.disparity, header, focal=focal if math.isfinite(focal) else 0.0,
            baseline=camera.baseline if camera else 0.0, min_disparity=0.0 - offset,
            max_disparity=estimator.max_disparity - 1 - offset, delta_d=delta)
    if enabled["depth"] and output.depth is not None:
        messages["depth"] = float_image(output.depth, header)
        messages["depth/camera_info"] = CameraInfo(
            header=header, height=left_info.height, width=left_info.width,
            distortion_model=left_info.distortion_model, d=left_info.d, k=left_info.k,
            r=left_info.r, p=left_info.p, binning_x=left_info.binning_x,
            binning_y=left_info.binning_y, roi=left_info.roi)
    if enabled["points2"] and output.points is not None:
        messages["points2"] = point_cloud(output.points, header, output.colors)
    if enabled["confidence"]:
        messages["confidence"] = float_image(output.confidence, header)
    return FrameResult(messages, output.camera_error)

"""One synchronised stereo set of ROS messages in, the node's output messages out.

Shared by the live node and `stereo-depth bag process`, so that a bag processed offline gives the
same messages the node would publish. Two stages, so that the node can build and publish one
set's messages in a thread of their own while the next set is matched: compute_frame (the maps)
and frame_messages.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header
from stereo_msgs.msg import DisparityImage

from ..camera import StereoCamera
from ..errors import InputError
from ..estimator import StereoEstimator
from ..images import check_sides
from ..pipeline import FrameOutput, OutputSettings, process_frame
from ..rectification import CameraModel, Rectifier
from ..search_range import SearchRange
from .camera_info import binning as _binning
from .camera_info import image_size
from .conversions import ImageDecoder
from .messages import disparity_image, float_image, point_cloud

IMAGE_TRANSPORTS = ("raw", "compressed")
LEFT_INFO, RIGHT_INFO = "left/camera_info", "right/camera_info"


@dataclass(frozen=True)
class InputTopics:
    """The node's four inputs: rectified (`image_rect`) or raw (`image_raw`) images, as Image or
    as CompressedImage on `<image topic>/compressed` (image_transport's naming), and the two
    camera_infos."""

    image_transport: str = "raw"
    rectify: bool = False
    # The inputs as error texts name them: the node gives its remapped topics, so that a user
    # finds their own names; elsewhere (bag processing, benchmarks) the names before remapping.
    labels: tuple[str, str, str, str] | None = None

    def __post_init__(self) -> None:
        if self.image_transport not in IMAGE_TRANSPORTS:
            raise ValueError(f"image_transport must be one of {', '.join(IMAGE_TRANSPORTS)}, "
                             f"got {self.image_transport!r}")

    @property
    def image_bases(self) -> tuple[str, str]:
        """The image topics as image_transport's base names (what users remap)."""
        kind = "image_raw" if self.rectify else "image_rect"
        return f"left/{kind}", f"right/{kind}"

    @property
    def compressed(self) -> bool:
        return self.image_transport == "compressed"

    @property
    def names(self) -> tuple[str, str, str, str]:
        suffix = "/compressed" if self.compressed else ""
        left, right = self.image_bases
        return f"{left}{suffix}", f"{right}{suffix}", LEFT_INFO, RIGHT_INFO

    @property
    def shown(self) -> tuple[str, ...]:
        return self.labels or self.names

    @property
    def types(self) -> dict[str, type]:
        image = CompressedImage if self.compressed else Image
        return dict(zip(self.names, (image, image, CameraInfo, CameraInfo)))


DEFAULT_INPUTS = InputTopics()  # rectified raw Image messages
OUTPUT_TOPICS = ("disparity", "depth", "depth/camera_info", "points2", "confidence")
OUTPUT_TYPES = dict(zip(OUTPUT_TOPICS, (DisparityImage, Image, CameraInfo, PointCloud2, Image)))
PUBLISH_FLAGS = {"disparity": "publish_disparity", "depth": "publish_depth",
                 "depth/camera_info": "publish_depth", "points2": "publish_points",
                 "confidence": "publish_confidence"}


@dataclass
class ComputedFrame:
    """A set's maps before they become messages, and what the messages need besides."""

    output: FrameOutput
    header: Header                # the left image's: every output carries it
    left_info: CameraInfo         # the left camera's (rectified with rectify)
    focal: float                  # the left camera's P[0], in the image's pixels
    largest_disparity: float      # the largest searched, in input pixels, offset removed
    delta_d: float                # the disparity's resolution (DisparityImage.delta_d)
    search_range: SearchRange | None  # as FrameResult's
    pair_mismatch: str | None     # as FrameResult's

    @property
    def camera(self) -> StereoCamera | None:
        return self.output.camera

    @property
    def camera_error(self) -> str | None:
        return self.output.camera_error


@dataclass
class FrameResult:
    messages: dict[str, object]   # output topic -> message, only the enabled and possible ones
    camera_error: str | None      # why depth and points are missing, if they are
    # The depths the disparities searched can give (nearer and farther surfaces are matched inside
    # the range, i.e. reported at the wrong depth); None without a usable calibration.
    search_range: SearchRange | None = None
    # StereoCamera.pair_mismatch of the two camera_infos, in the images' pixels.
    pair_mismatch: str | None = None


def image_projection(info: CameraInfo) -> list[float]:
    """P in the pixels of the image itself: image_geometry's PinholeCameraModel moves the
    principal point by the region of interest's offset, then divides the x row's focal length,
    principal point and Tx by binning_x and the y row's by binning_y (CameraInfo's P is in
    full-resolution pixels)."""
    p = [float(v) for v in info.p]
    p[2] -= info.roi.x_offset
    p[6] -= info.roi.y_offset
    binning_x, binning_y = _binning(info)
    for index in (0, 2, 3):
        p[index] /= binning_x
    for index in (5, 6, 7):
        p[index] /= binning_y
    return p


def _check_pair(left_msg, right_msg, left, right, left_info: CameraInfo,
                right_info: CameraInfo, topics: InputTopics) -> None:
    """The estimator's own checks of a pair, and the camera_infos', by topic name: the
    estimator knows only 'left' and 'right'."""
    left_topic, right_topic, left_info_topic, right_info_topic = topics.shown
    for topic, info_topic, image, info in ((left_topic, left_info_topic, left, left_info),
                                           (right_topic, right_info_topic, right, right_info)):
        check_sides(image, topic)
        height, width = image.shape[:2]
        expected = image_size(info)
        if expected not in (None, (width, height)):
            roi = info.roi
            reduced = "" if expected == (info.width, info.height) else (
                f" with binning {info.binning_x}x{info.binning_y} and roi (x_offset "
                f"{roi.x_offset}, y_offset {roi.y_offset}, width {roi.width}, height "
                f"{roi.height}), i.e. {expected[0]}x{expected[1]} px")
            raise InputError(f"{topic} is {width}x{height} px but {info_topic} says "
                             f"{info.width}x{info.height}{reduced}")
    if left.shape[:2] != right.shape[:2]:
        raise InputError(f"{left_topic} is {left.shape[1]}x{left.shape[0]} px but "
                         f"{right_topic} is {right.shape[1]}x{right.shape[0]} px")
    if left.dtype != right.dtype:
        raise InputError(
            f"{left_topic} has {8 * left.itemsize}-bit pixels ({_encoding(left_msg)}) but "
            f"{right_topic} has {8 * right.itemsize}-bit ones ({_encoding(right_msg)}); "
            f"both views of a pair must have one bit depth")
    if _binning(left_info) != _binning(right_info):
        raise InputError(f"{left_info_topic} has binning {left_info.binning_x}x"
                         f"{left_info.binning_y} but {right_info_topic} has "
                         f"{right_info.binning_x}x{right_info.binning_y}; "
                         f"a stereo pair is binned alike")


def _encoding(msg) -> str:
    # As the decoder tells them apart (conversions.ImageDecoder.to_rgb).
    return f"compressed {msg.format}" if hasattr(msg, "format") else msg.encoding


def camera_model(info: CameraInfo) -> CameraModel:
    """The calibration a camera_info carries, for rectification."""
    roi = info.roi
    return CameraModel(info.width, info.height, info.distortion_model, tuple(info.d),
                       tuple(info.k), tuple(info.r), tuple(info.p), info.binning_x,
                       info.binning_y, (roi.x_offset, roi.y_offset, roi.width, roi.height))


def rectified_info(info: CameraInfo) -> CameraInfo:
    """The camera_info of a rectified image: no distortion, identity R, K and P from P."""
    p = list(info.p)
    return CameraInfo(header=info.header, height=info.height, width=info.width,
                      distortion_model="plumb_bob", d=[0.0] * 5,
                      k=[p[0], p[1], p[2], p[4], p[5], p[6], p[8], p[9], p[10]],
                      r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], p=p)


def compute_frame(estimator: StereoEstimator, decoder: ImageDecoder, left_msg, right_msg,
                  left_info: CameraInfo, right_info: CameraInfo, settings: OutputSettings,
                  topics: InputTopics = DEFAULT_INPUTS,
                  rectifier: Rectifier | None = None) -> ComputedFrame:
    """A set's maps, before they become messages.

    Images are Image or CompressedImage messages as `topics` says; with `topics.rectify` they are
    raw and `rectifier` rectifies them from their camera_infos, and the outputs are those of the
    rectified left camera. Raises InputError (naming topic, field and expected value) for input
    that cannot be used.
    """
    left_topic, right_topic, left_info_topic, right_info_topic = topics.shown
    left = decoder.to_rgb(left_msg, left_topic)
    right = decoder.to_rgb(right_msg, right_topic)
    if topics.rectify:
        models = camera_model(left_info), camera_model(right_info)
        for name, model in zip((left_info_topic, right_info_topic), models):
            model.check(name)  # binning or an ROI is named, not the size mismatch it makes
    _check_pair(left_msg, right_msg, left, right, left_info, right_info, topics)
    if topics.rectify:
        left = rectifier.rectify(left_info_topic, left, models[0])
        right = rectifier.rectify(right_info_topic, right, models[1])
        left_info, right_info = rectified_info(left_info), rectified_info(right_info)
    left_p, right_p = image_projection(left_info), image_projection(right_info)
    output = process_frame(estimator, left, right, left_p, right_p, settings)
    camera = output.camera
    largest_shift = (estimator.max_disparity - 1) / output.input_scale
    search_range = mismatch = None
    if camera is not None:
        search_range = SearchRange(camera.fx * camera.baseline, camera.disparity_offset,
                                   largest_shift, estimator.max_disparity, output.input_scale)
        mismatch = StereoCamera.pair_mismatch(left_p, right_p, search_range.largest_disparity)
    # Without a calibration there is no principal-point offset to remove.
    largest = search_range.largest_disparity if search_range else largest_shift
    # SGBM's fixed point has 1/16 px steps at the matching size (1 / (16 input_scale) px here);
    # the networks' output is continuous, and 1/256 px is the resolution of the 16-bit KITTI
    # encoding this package writes.
    delta = 1 / (16 * output.input_scale) if estimator.model_name == "sgbm" else 1 / 256
    return ComputedFrame(output, left_msg.header, left_info, left_p[0], largest, delta,
                         search_range, mismatch)


def frame_messages(frame: ComputedFrame, publish: dict[str, bool]) -> dict[str, object]:
    """Every output message `publish` enables (and the frame can give), all with the left
    image's header."""
    output, header, left_info, camera = frame.output, frame.header, frame.left_info, frame.camera
    enabled = {topic: publish.get(flag, True) for topic, flag in PUBLISH_FLAGS.items()}
    messages: dict[str, object] = {}
    if enabled["disparity"]:
        offset = camera.disparity_offset if camera is not None else 0.0
        focal = frame.focal
        messages["disparity"] = disparity_image(
            output.disparity, header, focal=focal if math.isfinite(focal) else 0.0,
            baseline=camera.baseline if camera else 0.0, min_disparity=0.0 - offset,
            max_disparity=frame.largest_disparity, delta_d=frame.delta_d)
    if enabled["depth"] and output.depth is not None:
        messages["depth"] = float_image(output.depth, header)
        # The input's own size, binning and region of interest describe the depth image too;
        # a camera_info that leaves its size at 0 x 0 gets the full resolution filled in.
        height, width = left_info.height, left_info.width
        if image_size(left_info) is None:
            binning_x, binning_y = _binning(left_info)
            height, width = (output.depth.shape[0] * binning_y, output.depth.shape[1] * binning_x)
        messages["depth/camera_info"] = CameraInfo(
            header=header, height=height, width=width,
            distortion_model=left_info.distortion_model, d=left_info.d, k=left_info.k,
            r=left_info.r, p=left_info.p, binning_x=left_info.binning_x,
            binning_y=left_info.binning_y, roi=left_info.roi)
    if enabled["points2"] and output.cloud is not None:
        messages["points2"] = point_cloud(output.cloud, header, output.has_color)
    if enabled["confidence"]:
        messages["confidence"] = float_image(output.confidence, header)
    return messages


def process_stereo_messages(estimator: StereoEstimator, decoder: ImageDecoder, left_msg, right_msg,
                            left_info: CameraInfo, right_info: CameraInfo,
                            settings: OutputSettings, publish: dict[str, bool],
                            topics: InputTopics = DEFAULT_INPUTS,
                            rectifier: Rectifier | None = None) -> FrameResult:
    """compute_frame, then frame_messages: a set's output messages in one call."""
    frame = compute_frame(estimator, decoder, left_msg, right_msg, left_info, right_info,
                          settings, topics, rectifier)
    return FrameResult(frame_messages(frame, publish), frame.camera_error, frame.search_range,
                       frame.pair_mismatch)


def pair_mismatch_text(topics: InputTopics, mismatch: str) -> str:
    """The warning for camera_infos that describe no rectified pair (StereoCamera.pair_mismatch)."""
    left_info, right_info = topics.shown[2:]
    return (f"{left_info} and {right_info} describe no rectified horizontal pair (in the images' "
            f"pixels): {mismatch}. Matching runs along rows and depth is (P_l[3] - P_r[3]) / d, "
            f"so depth is off where the views differ: publish the camera_infos of the rectified "
            f"pair")

"""Building the node's output messages from arrays (REP 118 depth images; every invalid value,
including depths outside [min_depth, max_depth], is NaN rather than REP 117's +-Inf)."""
from __future__ import annotations

import numpy as np
from sensor_msgs.msg import (CameraInfo, CompressedImage, Image, PointCloud2, PointField,
                             RegionOfInterest)
from std_msgs.msg import Header
from stereo_msgs.msg import DisparityImage

from ..camera import StereoCamera
from ..compressed import encode_compressed
from ..errors import InputError
from .conversions import array_to_image_fields, float_image_fields, message_data

POINT_STEP = 16  # x, y, z, rgb (or padding) as float32: aligned points, as PCL writes them


def stamp_ns(header: Header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def float_image(array: np.ndarray, header: Header) -> Image:
    return Image(header=header, **float_image_fields(array))


def valid_window(disparity: np.ndarray) -> RegionOfInterest:
    """Bounding box of the finite disparities (an empty box when there are none)."""
    rows = np.flatnonzero(np.isfinite(disparity).any(axis=1))
    cols = np.flatnonzero(np.isfinite(disparity).any(axis=0))
    if rows.size == 0:
        return RegionOfInterest()
    return RegionOfInterest(x_offset=int(cols[0]), y_offset=int(rows[0]),
                            width=int(cols[-1] - cols[0] + 1), height=int(rows[-1] - rows[0] + 1))


def disparity_image(disparity: np.ndarray, header: Header, focal: float, baseline: float,
                    min_disparity: float, max_disparity: float, delta_d: float) -> DisparityImage:
    return DisparityImage(header=header, image=float_image(disparity, header), f=float(focal),
                          t=float(baseline), valid_window=valid_window(disparity),
                          min_disparity=float(min_disparity), max_disparity=float(max_disparity),
                          delta_d=float(delta_d))


def point_cloud(cloud: np.ndarray, header: Header, has_color: bool) -> PointCloud2:
    """Organized cloud (height = H, width = W) of an H x W x 4 float32 array as the frame
    pipeline packs it (x, y, z, then rgb or padding); NaN marks invalid points."""
    height, width = cloud.shape[:2]
    fields = [PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
              for i, name in enumerate("xyz")]
    if has_color:
        fields.append(PointField(name="rgb", offset=12, datatype=PointField.FLOAT32, count=1))
    return PointCloud2(header=header, height=height, width=width, fields=fields,
                       is_bigendian=False, point_step=POINT_STEP, row_step=POINT_STEP * width,
                       data=message_data(cloud.astype("<f4", copy=False)), is_dense=False)


def camera_infos(camera: StereoCamera, width: int, height: int, frame_id: str
                 ) -> tuple[CameraInfo, CameraInfo]:
    """Rectified left/right CameraInfo of a stereo camera (right P[3] = -fx * baseline)."""
    infos = []
    for cx, p3 in ((camera.cx, 0.0), (camera.cx_right, -camera.fx * camera.baseline)):
        info = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
        info.header.frame_id = frame_id
        info.d = [0.0] * 5
        info.k = [camera.fx, 0.0, cx, 0.0, camera.fy, camera.cy, 0.0, 0.0, 1.0]
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.p = [camera.fx, 0.0, cx, p3, 0.0, camera.fy, camera.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
        infos.append(info)
    return infos[0], infos[1]


def image_message(image: np.ndarray, codec: str | None = None, quality: int = 95
                  ) -> Image | CompressedImage:
    """An RGB uint8, mono8 or mono16 array as an Image, or with `codec` (jpeg, png) as the
    CompressedImage image_transport's compressed publisher would send."""
    encoding = {(2, np.uint8): "mono8", (2, np.uint16): "mono16",
                (3, np.uint8): "rgb8"}.get((image.ndim, image.dtype.type))
    if encoding is None:
        raise InputError(f"cannot send a {image.dtype} image of shape {image.shape}; expected "
                         f"mono8, mono16 or rgb8")
    if codec is None:
        return Image(**array_to_image_fields(image, encoding))
    format_, data = encode_compressed(image, codec, encoding, quality)
    return CompressedImage(format=format_, data=data)


def stereo_messages(left: np.ndarray, right: np.ndarray, camera: StereoCamera,
                    stamp_ns: int, frame_id: str, codec: str | None = None
                    ) -> dict[str, object]:
    """The four input messages of one rectified pair (RGB uint8 or mono) at one stamp, images
    compressed with `codec` (jpeg, png) on '<image topic>/compressed' if given."""
    height, width = left.shape[:2]
    left_info, right_info = camera_infos(camera, width, height, frame_id)
    suffix = "/compressed" if codec else ""
    messages = {f"left/image_rect{suffix}": image_message(left, codec),
                f"right/image_rect{suffix}": image_message(right, codec),
                "left/camera_info": left_info, "right/camera_info": right_info}
    for message in messages.values():
        message.header.frame_id = frame_id
        message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return messages

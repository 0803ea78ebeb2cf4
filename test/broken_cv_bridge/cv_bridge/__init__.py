"""A cv_bridge that fails the way cv_bridge 3.4.0 fails beside NumPy 2, for tests only.

cv_bridge 3.4.0 (ROS 2) swaps the bytes of images whose byte order differs from the machine's with
`ndarray.byteswap().newbyteorder()`; NumPy 2 removed `ndarray.newbyteorder`, so every big-endian
mono16 frame raises AttributeError inside cv_bridge. Little-endian images convert. The node must
keep every frame either way. Like 3.4.0 it reads rows at a pitch of whole pixels (step divided
by the pixel size, rounded down), so a step that is no whole number of pixels shifts every row
without an error. (Written for this project; cv_bridge itself is not on PyPI.)
"""
from __future__ import annotations

import sys

import numpy as np

_DTYPES = {"mono8": (np.uint8, 1), "mono16": (np.uint16, 1), "rgb8": (np.uint8, 3),
           "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4)}


class CvBridge:
    def imgmsg_to_cv2(self, img_msg, desired_encoding: str = "passthrough") -> np.ndarray:
        dtype, channels = _DTYPES[img_msg.encoding]
        dtype = np.dtype(dtype).newbyteorder(">" if img_msg.is_bigendian else "<")
        pitch = img_msg.step // (dtype.itemsize * channels)
        image = np.ndarray((img_msg.height, pitch, channels), dtype, bytes(img_msg.data))
        image = np.ascontiguousarray(image[:, :img_msg.width])
        if img_msg.is_bigendian == (sys.byteorder == "little"):
            # 3.4.0 calls image.byteswap().newbyteorder() here; raised on any NumPy, so that the
            # tests behave alike beside NumPy 1 (where the real call still works) and 2.
            raise AttributeError("`newbyteorder` was removed from the ndarray class in NumPy 2.0.")
        return image

"""What the launch files work out from their arguments, the node's output and the bag, kept here
(standard library and rosbags only, no `launch`) so that it is tested where `launch` is missing."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NamedTuple

from .camera_info import image_size

# The first words of the line the node logs once it has subscribed to its inputs (node.py).
READY_LINE = "ready: model"
# RViz's left-image panel (config/stereo_depth.rviz) reads this name relative to the namespace.
RVIZ_LEFT_IMAGE = "left/image_rect"
LEFT_INFO = "left/camera_info"


# The words launch's conditions (true, 1) and ROS's YAML parser (yes, on) read as booleans.
TRUE_WORDS, FALSE_WORDS = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def launch_bool(name: str, text: str) -> bool:
    """A boolean launch argument; anything else is refused, so that a typo (rectify:=ture)
    does not quietly become false."""
    word = text.strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise ValueError(f"launch argument {name}:={text!r} is not a boolean; give one of "
                     f"{', '.join(TRUE_WORDS + FALSE_WORDS)}")


def parameter_overrides(texts: dict[str, str], kinds: dict[str, type]
                        ) -> dict[str, bool | int | str]:
    """The parameters that launch arguments override: each non-empty text as its parameter's
    type (bool, int or str); ValueError naming the argument for text of another type."""
    values: dict[str, bool | int | str] = {}
    for name, text in texts.items():
        if text == "":
            continue  # the parameters file's value stays
        kind = kinds[name]
        if kind is bool:
            values[name] = launch_bool(name, text)
        elif kind is int:
            try:
                values[name] = int(text)
            except ValueError:
                raise ValueError(f"launch argument {name}:={text!r} is not a whole number"
                                 ) from None
        else:
            values[name] = text
    return values


def check_params_file(path: str) -> None:
    """launch_ros only warns about a parameters file that is not there and starts the node
    without it: refuse it instead."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"launch argument params_file:={path!r} is not a file")


def package_installed(package: str) -> bool:
    """Whether the ament index knows `package` (rviz2 is not a dependency of this package)."""
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    try:
        get_package_share_directory(package)
    except PackageNotFoundError:
        return False
    return True


class StartupWatch:
    """Fed the node's output chunk by chunk; says True once, on the chunk that completes the
    ready line (a chunk boundary may split it)."""

    def __init__(self) -> None:
        self._marker = READY_LINE.encode()
        self._tail = b""
        self.ready = False

    def saw_ready(self, chunk: bytes) -> bool:
        if self.ready:
            return False
        text = self._tail + chunk
        self.ready = self._marker in text
        self._tail = text[-len(self._marker):]
        return self.ready


def rviz_image_remaps(left_image: str, rectify: bool) -> list[tuple[str, str]]:
    """Point RViz's left-image panel at the image the node reads: the remapped topic, or the raw
    one when the node rectifies (images on '<topic>/compressed' show only where RViz reads that
    transport itself)."""
    source = left_image or ("left/image_raw" if rectify else "")
    return [(RVIZ_LEFT_IMAGE, source)] if source else []


class BagCamera(NamedTuple):
    namespace: str  # what precedes left/camera_info in the bag's topic ('' if not that layout)
    frame_id: str   # of the first left camera_info message ('' if none)
    size: str = ""  # its WIDTHxHEIGHT, the node's warmup_size ('' if none, or 0 x 0)


def bag_camera(bag: str, left_info: str = "") -> BagCamera:
    """The bag's left camera_info: the topic `left_info` when given, else the CameraInfo topic
    ending in left/camera_info. Empty when rosbags is missing or cannot read the bag (said on
    stderr): replay then runs with the arguments as given."""
    try:
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore
    except ImportError:
        # Without this line the node would run outside the bag's namespace and match nothing.
        print(f"replay.launch.py: rosbags is not installed (pip install rosbags), so the "
              f"namespace, frame and size of {bag}'s camera are not read; give namespace:=, "
              f"fixed_frame:= and warmup_size:= yourself", file=sys.stderr)
        return BagCamera("", "")
    suffix = "/" + LEFT_INFO
    try:
        with AnyReader([Path(bag)], default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
            infos = [c for c in reader.connections if c.msgtype == "sensor_msgs/msg/CameraInfo"
                     and (c.topic == left_info if left_info else c.topic.endswith(suffix))]
            for connection in infos[:1]:
                for _, _, raw in reader.messages(connections=[connection]):
                    info = reader.deserialize(raw, connection.msgtype)
                    topic = connection.topic
                    # The image's own size: a binned or cropped camera's is not width x height.
                    image = image_size(info)
                    size = f"{image[0]}x{image[1]}" if image else ""
                    return BagCamera(topic.removesuffix(suffix) if topic.endswith(suffix) else "",
                                     info.header.frame_id, size)
    except Exception as exc:  # any unreadable bag: ros2 bag play will say what is wrong with it
        print(f"replay.launch.py: could not read the camera_info in {bag}: {exc}",
              file=sys.stderr)
    return BagCamera("", "")

"""Errors the package raises on bad configuration and bad input; both say the offending value."""


class ConfigurationError(ValueError):
    """A setting (model, weights, device, max disparity, precision) cannot be used."""


class InputError(ValueError):
    """An image pair or calibration cannot be processed."""


def ros_missing(exc: ImportError) -> ConfigurationError:
    """The error of a command that needs the ROS packages where they are not installed."""
    return ConfigurationError(f"this command needs rclpy, the ROS message packages and rosbags "
                              f"(pip install '.[ros]', or a ROS 2 installation): {exc}")

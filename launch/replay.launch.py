"""Replay a rosbag2 through stereo_depth_node with simulated time, and look at it in RViz.

    ros2 launch stereo_depth_node replay.launch.py bag:=/path/to/bag [rate:=0.5] [rviz:=true]

The bag must hold the node's inputs (remap with the same arguments as stereo_depth.launch.py).
RViz's fixed frame is taken from the bag's left camera_info unless fixed_frame is given.
"""
from pathlib import Path

from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription,
                            OpaqueFunction)
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

PACKAGE = "stereo_depth_node"
FORWARDED = ("namespace", "left_image", "right_image", "left_info", "right_info",
             "params_file", "model", "weights", "device", "max_disparity", "image_transport",
             "rectify", "rviz")


def _frame_in_bag(bag: str) -> str:
    """frame_id of the first CameraInfo in the bag (rosbags, if installed), else ''."""
    try:
        from rosbags.highlevel import AnyReader
    except ImportError:
        return ""
    with AnyReader([Path(bag)]) as reader:
        for connection in reader.connections:
            if connection.msgtype == "sensor_msgs/msg/CameraInfo":
                for _, _, raw in reader.messages(connections=[connection]):
                    return reader.deserialize(raw, connection.msgtype).header.frame_id
    return ""


def _replay_actions(context):
    def value(name):
        return LaunchConfiguration(name).perform(context)

    bag = value("bag")
    fixed_frame = value("fixed_frame") or _frame_in_bag(bag)
    node_launch = PathJoinSubstitution([FindPackageShare(PACKAGE), "launch",
                                        "stereo_depth.launch.py"])
    forwarded = {name: value(name) for name in FORWARDED}
    forwarded.update(use_sim_time="true", fixed_frame=fixed_frame)
    play = ["ros2", "bag", "play", bag, "--clock", "--rate", value("rate")]
    if value("loop").lower() == "true":
        play.append("--loop")
    return [IncludeLaunchDescription(PythonLaunchDescriptionSource(node_launch),
                                     launch_arguments=forwarded.items()),
            ExecuteProcess(cmd=play, output="screen")]


def generate_launch_description():
    arguments = [
        DeclareLaunchArgument("bag", description="rosbag2 folder (MCAP or sqlite3)"),
        DeclareLaunchArgument("rate", default_value="1.0", description="playback rate"),
        DeclareLaunchArgument("loop", default_value="false", description="play in a loop"),
        DeclareLaunchArgument("fixed_frame", default_value="",
                              description="RViz fixed frame (default: from the bag)"),
        *(DeclareLaunchArgument(name, default_value="true" if name == "rviz" else "",
                                description="as in stereo_depth.launch.py")
          for name in FORWARDED if name != "params_file"),
        DeclareLaunchArgument(
            "params_file", default_value=PathJoinSubstitution([FindPackageShare(PACKAGE),
                                                               "config", "stereo_depth.yaml"]),
            description="YAML parameters file"),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_replay_actions)])

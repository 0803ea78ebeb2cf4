"""Replay a rosbag2 through stereo_depth_node with simulated time, and look at it in RViz.

    ros2 launch stereo_depth_node replay.launch.py bag:=/path/to/bag [rate:=0.5] [rviz:=true]

The bag is played once the node logs that it is ready (it loads its network first; a bag started
with it would be half over before it subscribes), and the player waits a second after making its
publishers (--delay), so that the node's readers have matched them. Without remap arguments, the
topics are found in the bag: a bag whose camera_info is '<ns>/left/camera_info' (as `stereo-depth
bag make` writes, under /stereo) runs the node in namespace <ns>. RViz's fixed frame is the
frame_id of that camera_info unless fixed_frame is given, and the node warms up on one frame of its
image size before it reports ready (warmup_size), so that cuDNN's tuning or compile:=true's
compiling loses none of the bag's first frames.
Reading the bag needs rosbags (pip install rosbags); without it give namespace:=...
"""
from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription,
                            OpaqueFunction, RegisterEventHandler)
from launch.event_handlers import OnProcessIO
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

from stereo_depth_node.ros.launch_support import StartupWatch, bag_camera, launch_bool

PACKAGE = "stereo_depth_node"
REMAP_ARGUMENTS = ("left_image", "right_image", "left_info", "right_info")
FORWARDED = ("namespace", "left_image", "right_image", "left_info", "right_info", "params_file",
             "model", "weights", "device", "max_disparity", "image_transport", "rectify",
             "compile", "warmup_size", "rviz")
FROM_THE_BAG = ("namespace", "warmup_size")
# Between the player's publishers and its first message: DDS matching of the node's readers with
# them (best-effort inputs lose what comes before; the player does not wait for subscribers).
PLAYER_DELAY_S = 1.0


def _replay_actions(context):
    def value(name):
        return LaunchConfiguration(name).perform(context)

    bag = value("bag")
    camera = bag_camera(bag, value("left_info"))
    forwarded = {name: value(name) for name in FORWARDED}
    if not forwarded["namespace"] and not any(forwarded[name] for name in REMAP_ARGUMENTS):
        forwarded["namespace"] = camera.namespace
    # The bag starts on the ready line: a first frame still compiling or tuning would drop the
    # bag's first seconds, so the node warms up at the bag's image size first.
    forwarded.update(use_sim_time="true", fixed_frame=value("fixed_frame") or camera.frame_id,
                     warmup_size=forwarded["warmup_size"] or camera.size)
    node_launch = PathJoinSubstitution([FindPackageShare(PACKAGE), "launch",
                                        "stereo_depth.launch.py"])
    play = ["ros2", "bag", "play", bag, "--clock", "--rate", value("rate"),
            "--delay", str(PLAYER_DELAY_S)]
    if launch_bool("loop", value("loop")):
        play.append("--loop")
    watch = StartupWatch()

    def play_once_ready(event):
        if watch.saw_ready(event.text):
            return [ExecuteProcess(cmd=play, output="screen")]
        return None

    return [RegisterEventHandler(OnProcessIO(on_stdout=play_once_ready,
                                             on_stderr=play_once_ready)),
            IncludeLaunchDescription(PythonLaunchDescriptionSource(node_launch),
                                     launch_arguments=forwarded.items())]


def generate_launch_description():
    arguments = [
        DeclareLaunchArgument("bag", description="rosbag2 folder (MCAP or sqlite3)"),
        DeclareLaunchArgument("rate", default_value="1.0", description="playback rate"),
        DeclareLaunchArgument("loop", default_value="false", description="play in a loop"),
        DeclareLaunchArgument("fixed_frame", default_value="",
                              description="RViz fixed frame (default: from the bag)"),
        *(DeclareLaunchArgument(name, default_value="true" if name == "rviz" else "",
                                description="as in stereo_depth.launch.py" + (
                                    " (default: from the bag)" if name in FROM_THE_BAG else ""))
          for name in FORWARDED if name != "params_file"),
        DeclareLaunchArgument(
            "params_file", default_value=PathJoinSubstitution([FindPackageShare(PACKAGE),
                                                               "config", "stereo_depth.yaml"]),
            description="YAML parameters file"),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_replay_actions)])

"""Start stereo_depth_node with config/stereo_depth.yaml, optional remaps, overrides and RViz.

    ros2 launch stereo_depth_node stereo_depth.launch.py \
        left_image:=/cam/left/image_rect right_image:=/cam/right/image_rect \
        left_info:=/cam/left/camera_info right_info:=/cam/right/camera_info rviz:=true

    ros2 launch stereo_depth_node stereo_depth.launch.py image_transport:=compressed \
        rectify:=true left_image:=/cam/left/image_raw right_image:=/cam/right/image_raw ...

Arguments left empty keep the value of the parameters file; arguments given override it. An image
argument names the base topic (as image_transport does): with image_transport:=compressed the
node reads '<base>/compressed'.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from stereo_depth_node.ros.launch_support import (check_params_file, launch_bool,
                                                   package_installed, parameter_overrides,
                                                   rviz_image_remaps)

PACKAGE = "stereo_depth_node"
# Launch argument -> the node's input topics it remaps: rectified images, or raw ones when the
# node rectifies (rectify may come from the parameters file, so both names are remapped).
REMAPS = {
    "left_image": ("left/image_rect", "left/image_raw"),
    "right_image": ("right/image_rect", "right/image_raw"),
    "left_info": ("left/camera_info",),
    "right_info": ("right/camera_info",),
}
# Launch arguments that override node parameters of the same name, with their types.
OVERRIDES = {"model": str, "weights": str, "device": str, "max_disparity": int,
             "image_transport": str, "rectify": bool, "compile": bool, "warmup_size": str,
             "use_sim_time": bool}


def _node_actions(context):
    def value(name):
        return LaunchConfiguration(name).perform(context)

    overrides = parameter_overrides({name: value(name) for name in OVERRIDES}, OVERRIDES)
    params_file = value("params_file")
    check_params_file(params_file)
    remaps = [(topic, value(argument)) for argument, topics in REMAPS.items() if value(argument)
              for topic in topics]
    namespace = value("namespace")
    actions = [
        Node(package=PACKAGE, executable="stereo_depth_node", name="stereo_depth_node",
             namespace=namespace,
             # launch_ros would read a bare string as YAML (weights:=2024 -> int)
             parameters=[params_file, {name: ParameterValue(v, value_type=str)
                                       if isinstance(v, str) else v
                                       for name, v in overrides.items()}],
             remappings=remaps, output="screen", emulate_tty=True,
             sigterm_timeout=value("sigterm_timeout"))]
    if not launch_bool("rviz", value("rviz")):
        return actions
    if not package_installed("rviz2"):  # not a dependency: a headless robot need not have it
        return [*actions, LogInfo(msg="rviz:=true, but rviz2 is not installed: the node runs "
                                      "without RViz")]
    rviz_arguments = ["-d", value("rviz_config")]
    if value("fixed_frame"):
        rviz_arguments += ["-f", value("fixed_frame")]
    return [*actions, Node(
        package="rviz2", executable="rviz2", name="rviz2", namespace=namespace,
        arguments=rviz_arguments,
        remappings=rviz_image_remaps(value("left_image"), overrides.get("rectify", False)),
        parameters=[{"use_sim_time": overrides.get("use_sim_time", False)}])]


def generate_launch_description():
    share = FindPackageShare(PACKAGE)
    arguments = [
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        *(DeclareLaunchArgument(name, default_value="",
                                description=f"remap of {' / '.join(topics)}")
          for name, topics in REMAPS.items()),
        DeclareLaunchArgument(
            "params_file", default_value=PathJoinSubstitution([share, "config",
                                                               "stereo_depth.yaml"]),
            description="YAML parameters file"),
        *(DeclareLaunchArgument(name, default_value="",
                                description=f"overrides the parameter {name} when given")
          for name in OVERRIDES),
        # launch's own default (5 s, then SIGKILL 5 s later) can kill a node whose frame in flight
        # takes longer on a CPU; the node itself gives up waiting for the frame after 30 s.
        DeclareLaunchArgument(
            "sigterm_timeout", default_value="35",
            description="seconds after Ctrl-C before launch sends the node SIGTERM (SIGKILL "
                        "follows 5 s later)"),
        DeclareLaunchArgument("rviz", default_value="false", description="open RViz"),
        DeclareLaunchArgument(
            "rviz_config", default_value=PathJoinSubstitution([share, "config",
                                                               "stereo_depth.rviz"]),
            description="RViz configuration"),
        DeclareLaunchArgument("fixed_frame", default_value="",
                              description="RViz fixed frame, e.g. your camera's optical frame "
                                          "(default: the rviz file's, left_camera_optical_frame)"),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_node_actions)])

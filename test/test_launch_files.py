"""Launch files, parameters file, RViz config and package.xml: they parse and name only real
parameters and topics of the node (launch_ros is not installable here, so the launch files are
read as Python source), and an install the way colcon makes one puts them where ROS looks."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import yaml

from stereo_depth_node.ros.frame import OUTPUT_TOPICS, InputTopics
from stereo_depth_node.ros.node import SHUTDOWN_WAIT_S
from stereo_depth_node.ros.parameters import PARAMETERS, unknown_parameters_text

ROOT = Path(__file__).resolve().parents[1]
NODE_PARAMETERS = {p.name for p in PARAMETERS} | {"use_sim_time"}  # use_sim_time: rclpy's own
# Every input name the node can use: image bases (what remaps move) and camera_infos.
INPUT_BASES = {name for rectify in (False, True) for topics in [InputTopics("raw", rectify)]
               for name in (*topics.image_bases, *topics.names[2:])}


def _literal(path: Path, name: str):
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name
                                                for t in node.targets):
            if isinstance(node.value, ast.Dict):  # values may be type names (str, int, bool)
                return {ast.literal_eval(k): v.id if isinstance(v, ast.Name)
                        else ast.literal_eval(v)
                        for k, v in zip(node.value.keys, node.value.values)}
            return ast.literal_eval(node.value)
    raise AssertionError(f"{path.name} has no {name}")


def _declared_arguments(path: Path) -> dict[str, object]:
    """DeclareLaunchArgument(...) calls whose first argument is a string literal: name -> the
    default value when it is a literal, else None."""
    declared = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument":
            if node.args and isinstance(node.args[0], ast.Constant):
                default = next((k.value for k in node.keywords if k.arg == "default_value"), None)
                declared[node.args[0].value] = (default.value if isinstance(default, ast.Constant)
                                                else None)
    return declared


def _node_keywords(path: Path, package_expression: str) -> dict[str, str]:
    """Keyword arguments (as source text) of the Node(...) call for one package."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Node":
            keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
            if keywords.get("package") == package_expression:
                return keywords
    raise AssertionError(f"{path.name} has no Node(package={package_expression})")


def test_node_launch_file_overrides_real_parameters_and_remaps_real_topics():
    path = ROOT / "launch/stereo_depth.launch.py"
    compile(path.read_text(), str(path), "exec")
    overrides = _literal(path, "OVERRIDES")
    assert set(overrides) <= NODE_PARAMETERS
    assert set(overrides) == {"model", "weights", "device", "max_disparity", "image_transport",
                              "rectify", "compile", "warmup_size", "use_sim_time"}
    types = {p.name: type(p.default).__name__ for p in PARAMETERS} | {"use_sim_time": "bool"}
    for name, kind in overrides.items():
        assert kind == types[name], name
    remaps = _literal(path, "REMAPS")
    assert sorted(name for names in remaps.values() for name in names) == sorted(INPUT_BASES)
    declared = _declared_arguments(path)
    assert {"namespace", "params_file", "rviz", "rviz_config"} <= set(declared)
    assert "stereo_depth_node" in path.read_text() and "rviz2" in path.read_text()


def test_node_launch_gives_the_frame_in_flight_time_before_sigterm():
    # Past SIGTERM, launch sends SIGKILL 5 s later; the node waits up to SHUTDOWN_WAIT_S for
    # its frame in flight after Ctrl-C, so SIGKILL must not come before that wait ends.
    path = ROOT / "launch/stereo_depth.launch.py"
    assert float(_declared_arguments(path)["sigterm_timeout"]) + 5 > SHUTDOWN_WAIT_S
    keywords = _node_keywords(path, "PACKAGE")
    assert keywords["executable"] == "'stereo_depth_node'"
    assert keywords["sigterm_timeout"] == "value('sigterm_timeout')"


def test_rviz_reads_the_left_image_the_node_reads_and_strings_stay_strings():
    path = ROOT / "launch/stereo_depth.launch.py"
    keywords = _node_keywords(path, "'rviz2'")
    assert keywords["remappings"] == \
        "rviz_image_remaps(value('left_image'), overrides.get('rectify', False))"
    assert "ParameterValue(v, value_type=str)" in path.read_text()


def test_replay_launch_file_forwards_declared_arguments():
    path = ROOT / "launch/replay.launch.py"
    compile(path.read_text(), str(path), "exec")
    node_launch = ROOT / "launch/stereo_depth.launch.py"
    forwarded = set(_literal(path, "FORWARDED"))
    node_arguments = (set(_literal(node_launch, "REMAPS")) | set(_literal(node_launch, "OVERRIDES"))
                      | {"namespace", "params_file", "rviz"})
    assert forwarded <= node_arguments
    assert set(_literal(path, "REMAP_ARGUMENTS")) == set(_literal(node_launch, "REMAPS"))
    text = path.read_text()
    assert '"--clock"' in text and 'use_sim_time="true"' in text
    # The player starts on the node's ready line (launch_support.StartupWatch), not with the node.
    assert "OnProcessIO(on_stdout=play_once_ready" in text and "watch.saw_ready(event.text)" in text
    # ... after warming up at the bag's image size (launch_support.bag_camera reads it).
    assert 'warmup_size=forwarded["warmup_size"] or camera.size' in text


def test_parameters_file_sets_every_parameter_with_its_type():
    config = yaml.safe_load((ROOT / "config/stereo_depth.yaml").read_text())
    values = config["/**"]["ros__parameters"]
    assert set(values) == {p.name for p in PARAMETERS}
    for spec in PARAMETERS:
        assert type(values[spec.name]) is type(spec.default), spec.name
        assert values[spec.name] == spec.default, spec.name


def test_parameters_the_node_does_not_declare_are_named_with_the_likely_one():
    declared = [p.name for p in PARAMETERS] + [
        "use_sim_time", "qos_overrides./stereo/disparity.publisher.depth"]
    shipped = yaml.safe_load((ROOT / "config/stereo_depth.yaml").read_text())
    assert unknown_parameters_text(shipped["/**"]["ros__parameters"], declared) is None
    assert unknown_parameters_text(
        ["qos_overrides./stereo/disparty.publisher.depth", "disparity_range", "max_depth", "P1",
         "qos_overrides./diagnostics.publisher.depth", "max_dept"], declared) == (
        "ignoring parameters this node does not have: P1 (stereo_image_proc's: a block-matching "
        "setting, which the networks and this node's sgbm do not take), disparity_range "
        "(stereo_image_proc's: max_disparity does its job here), max_dept (did you mean "
        "max_depth?), qos_overrides./diagnostics.publisher.depth (this node has no such "
        "publisher or subscription taking QoS overrides), "
        "qos_overrides./stereo/disparty.publisher.depth (this node has no such publisher or "
        "subscription; did you mean /stereo/disparity.publisher?); `stereo_depth_node --help` "
        "lists its parameters")
    assert unknown_parameters_text(["queue"], declared) == (
        "ignoring parameter this node does not have: queue; `stereo_depth_node --help` lists its "
        "parameters")


def test_rviz_config_shows_real_topics():
    config = yaml.safe_load((ROOT / "config/stereo_depth.rviz").read_text())
    displays = config["Visualization Manager"]["Displays"]
    topics = {d["Topic"]["Value"]: d["Class"] for d in displays if "Topic" in d}
    assert topics == {"left/image_rect": "rviz_default_plugins/Image",
                      "depth": "rviz_default_plugins/Image",
                      "points2": "rviz_default_plugins/PointCloud2"}
    assert set(topics) <= INPUT_BASES | set(OUTPUT_TOPICS)
    cloud = next(d for d in displays if d["Class"].endswith("PointCloud2"))
    assert cloud["Color Transformer"] == "RGB8"  # the node's packed rgb field
    assert config["Visualization Manager"]["Global Options"]["Fixed Frame"]


def test_package_xml_is_format_3_with_the_runtime_dependencies():
    root = ElementTree.parse(ROOT / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "stereo_depth_node"
    depends = {e.text for e in root.findall("exec_depend")}
    assert {"rclpy", "rcl_interfaces", "rosgraph_msgs", "ros2launch", "sensor_msgs",
            "stereo_msgs", "std_msgs", "diagnostic_msgs", "cv_bridge", "message_filters",
            "python3-numpy", "python3-opencv", "python3-yaml", "python3-skimage"} <= depends
    assert root.find("export/build_type").text == "ament_python"
    # A build type is no rosdep key: `rosdep install --from-paths` stops at it ("Cannot locate
    # rosdep definition for [ament_python]") and installs nothing (ros2/ros2cli#428).
    every_depend = {e.text for e in root.iter() if e.tag.endswith("depend")}
    assert not every_depend & {"ament_python", "ament_cmake_python"}, every_depend


def test_package_xml_declares_every_ros_package_the_code_imports():
    root = ElementTree.parse(ROOT / "package.xml").getroot()
    depends = {e.text for e in root.findall("exec_depend")}
    imported = set()
    for path in [*ROOT.glob("stereo_depth_node/**/*.py"), *ROOT.glob("launch/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    ros = {name for name in imported if name.endswith("_msgs") or name in
           {"rclpy", "rcl_interfaces", "message_filters", "cv_bridge", "launch", "launch_ros",
            "ament_index_python"}}
    assert {"rclpy", "sensor_msgs", "launch_ros"} <= ros  # the scan sees the imports at all
    # Each imported package is declared itself (REP 149), not only through ros2launch, which
    # happens to bring launch and launch_ros today.
    assert ros <= depends, ros - depends


def test_a_colcon_style_install_puts_executables_launch_config_and_weights_where_ros_looks(
        tmp_path):
    # The commands colcon's ament_python build runs (setup.py egg_info, build, install with
    # --single-version-externally-managed), with every output under tmp_path.
    install = tmp_path / "install"
    done = subprocess.run(
        [sys.executable, "setup.py", "egg_info", "--egg-base", str(tmp_path), "build",
         "--build-base", str(tmp_path / "build"), "install", "--prefix", str(install),
         "--record", str(tmp_path / "record.txt"), "--single-version-externally-managed"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    share = install / "share" / "stereo_depth_node"
    for path in ("lib/stereo_depth_node/stereo_depth_node",  # where `ros2 run` looks
                 "share/ament_index/resource_index/packages/stereo_depth_node",
                 "share/stereo_depth_node/package.xml"):
        assert (install / path).is_file(), path
    assert {p.name for p in (share / "launch").iterdir()} == {
        p.name for p in (ROOT / "launch").glob("*.launch.py")}
    assert {"stereo_depth.yaml", "stereo_depth.rviz"} <= {p.name for p in
                                                          (share / "config").iterdir()}
    # The installed package finds the weights it ships, away from the source tree.
    site = next(install.glob("lib/python3*/site-packages"))
    found = subprocess.run(
        [sys.executable, "-c", "from stereo_depth_node.checkpoints import shipped_weights; "
         "from stereo_depth_node.ros.node_process import SHM_PROFILE; "
         "print(shipped_weights('psmnet_dws')); print(SHM_PROFILE.is_file())"],
        cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(site)), capture_output=True,
        text=True, timeout=120)
    weights, profile = found.stdout.split()
    assert Path(weights).is_relative_to(site) and Path(weights).is_file(), found.stderr
    assert profile == "True"


def test_readme_parameter_table_matches_the_node():
    readme = (ROOT / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `")
            and line.count("|") == 5]
    documented = {line.split("`")[1]: line for line in rows}
    for spec in PARAMETERS:
        assert spec.name in documented, spec.name
        assert spec.description in documented[spec.name], spec.name
        assert ("| yes |" if spec.runtime else "| no |") in documented[spec.name], spec.name

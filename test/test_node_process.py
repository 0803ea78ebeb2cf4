"""What the tools that run the node in its own process read about it."""
from __future__ import annotations

import os
import subprocess
import sys

from ros_harness import fastdds_segments
from stereo_depth_node.ros import node_process
from stereo_depth_node.ros.node_process import (FAST_DDS_2_VARIABLE, FAST_DDS_3_VARIABLE,
                                                SHM_PROFILE, process_gpu_memory_mib,
                                                profile_variable, use_local_shared_memory)

# nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits, two GPUs
LISTING = "4242, 5120\n77, 300\n4242, 100\n"


def test_gpu_memory_of_a_process_sums_its_lines_on_every_gpu():
    assert process_gpu_memory_mib(LISTING, 4242) == 5220.0
    assert process_gpu_memory_mib(LISTING, 77) == 300.0


def test_no_gpu_memory_for_a_process_nvidia_smi_does_not_list():
    assert process_gpu_memory_mib(LISTING, 424) is None
    assert process_gpu_memory_mib("", 4242) is None
    assert process_gpu_memory_mib("No running processes found\n", 4242) is None


def test_the_tools_own_participant_discovers_on_this_machine_only(monkeypatch):
    # demo and bench live start their nodes with LOCALHOST; their own participant took the
    # shell's range (SUBNET by default) and found no node where multicast does not work.
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "SUBNET")
    for name in (FAST_DDS_2_VARIABLE, FAST_DDS_3_VARIABLE):
        monkeypatch.delenv(name, raising=False)
    use_local_shared_memory()
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert os.environ[profile_variable()] == os.fspath(SHM_PROFILE)
    # A profile the user set, under either name, is theirs to keep.
    monkeypatch.delenv(profile_variable())
    monkeypatch.setenv(FAST_DDS_2_VARIABLE, "/robot/profile.xml")
    use_local_shared_memory()
    assert os.environ[FAST_DDS_2_VARIABLE] == "/robot/profile.xml"
    assert FAST_DDS_3_VARIABLE not in os.environ


# A participant in a process that set the profile the tools' way; it holds until stdin closes,
# so that its segments can be read from here, and then leaves cleanly (freeing them).
PARTICIPANT = """
import sys, rclpy
from stereo_depth_node.ros.node_process import use_local_shared_memory
use_local_shared_memory()
rclpy.init()
node = rclpy.create_node("profile_probe")
print("up", flush=True)
sys.stdin.read()
node.destroy_node()
rclpy.shutdown()
"""


def test_the_tools_profile_goes_under_the_name_this_fast_dds_reads():
    # Fast DDS 2 (Humble, Jazzy) reads only FASTRTPS_DEFAULT_PROFILES_FILE, and Fast DDS 3
    # only FASTDDS_DEFAULT_PROFILES_FILE: under the other name the profile is silently unused.
    # With it, the participant maps the profile's 64 MiB segment; without, Fast DDS's own
    # (about 0.5 MiB).
    env = {k: v for k, v in os.environ.items()
           if k not in (FAST_DDS_2_VARIABLE, FAST_DDS_3_VARIABLE)}
    probe = subprocess.Popen([sys.executable, "-c", PARTICIPANT], env=env, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        assert probe.stdout.readline() == "up\n"
        sizes = [os.path.getsize(path) for path in fastdds_segments(probe.pid)]
    finally:
        _, stderr = probe.communicate(timeout=60)
    assert probe.returncode == 0, stderr
    assert max(sizes) >= 64 * 2**20, sizes
    assert "deprecated" not in stderr, stderr  # Fast DDS 3's word for the old name


def test_without_ros_from_pip_the_distro_names_the_variable(monkeypatch):
    # A ROS installation's Python holds no ros-fastdds / ros-fastrtps distribution; its setup
    # script's ROS_DISTRO tells Fast DDS 2 from 3.
    def not_installed(name):
        raise node_process.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(node_process.metadata, "version", not_installed)
    for distro, variable in (("humble", FAST_DDS_2_VARIABLE), ("jazzy", FAST_DDS_2_VARIABLE),
                             ("kilted", FAST_DDS_3_VARIABLE), ("rolling", FAST_DDS_3_VARIABLE)):
        monkeypatch.setenv("ROS_DISTRO", distro)
        assert profile_variable() == variable, distro
    monkeypatch.delenv("ROS_DISTRO")
    assert profile_variable() == FAST_DDS_3_VARIABLE

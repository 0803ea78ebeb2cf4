"""What the tools that run the node in its own process read about it."""
from __future__ import annotations

import os

from stereo_depth_node.ros.node_process import (SHM_PROFILE, process_gpu_memory_mib,
                                                use_local_shared_memory)

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
    monkeypatch.delenv("FASTDDS_DEFAULT_PROFILES_FILE", raising=False)
    use_local_shared_memory()
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] == os.fspath(SHM_PROFILE)

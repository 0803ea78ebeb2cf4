"""The node runs the shipped weights at another max disparity and says so in its log."""
from __future__ import annotations

from ros_harness import NodeProcess


def test_node_runs_shipped_weights_at_another_range_with_a_notice(tmp_path):
    node = NodeProcess(tmp_path / "node.log", {"model": "psmnet_dws", "max_disparity": 32,
                                               "device": "cpu"}, "/trained_range")
    node.wait_ready()
    assert node.stop() == 0
    notices = [line for line in node.log().splitlines() if "trained with max disparity" in line]
    assert len(notices) == 1
    assert notices[0].startswith("[INFO]")
    assert notices[0].endswith("weights 'psmnet_dws.pt' were trained with max disparity 64; "
                               "running with max disparity 32")
    assert "max disparity 32" in node.log().split("ready:", 1)[1]

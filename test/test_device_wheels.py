"""scripts/device_wheels.py: which wheels the GPU machine gets, and Fast DDS's wheel slimmed so
that they fit in a device call."""
from __future__ import annotations

import importlib.metadata as metadata
import importlib.util
import zipfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "device_wheels.py"


@pytest.fixture(scope="module")
def device_wheels():
    spec = importlib.util.spec_from_file_location("device_wheels", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_closure_follows_extras_and_pins_what_is_installed(device_wheels):
    pytest.importorskip("rclpy")
    pins = device_wheels.runtime_closure(device_wheels.ROOTS)
    # rmw_fastrtps_cpp comes only through rclpy's [fastrtps] extra; Fast DDS through it.
    for name in ("ros-rclpy", "ros-rmw-fastrtps-cpp", "ros-fastdds", "ros-sensor-msgs",
                 "ros-stereo-msgs", "ros-diagnostic-msgs", "ros-rcl", "numpy"):
        assert name in pins, name
    for name, version in pins.items():
        assert metadata.version(name) == version


def test_fastdds_wheel_keeps_one_library_copy_and_its_record(device_wheels, tmp_path):
    data = "ros_fastdds-3.2.3.data/data"
    kept = {f"{data}/lib/libfastdds.so.3.2": b"library", f"{data}/lib/libfastcdr.so.2": b"cdr",
            f"{data}/share/fastdds/fastdds_profiles.xsd": b"xsd",
            "ros_fastdds.libs/libssl-60250281.so.1.1.1k": b"ssl"}
    dropped = {f"{data}/lib/libfastdds.so": b"library", f"{data}/lib/libfastdds.so.3.2.2":
               b"library", f"{data}/include/fastdds/dds/core/policy/QosPolicies.hpp": b"header",
               f"{data}/bin/fast-discovery-server": b"tool"}
    record_name = "ros_fastdds-3.2.3.dist-info/RECORD"
    record = "".join(f"{name},sha256=x,{len(body)}\n" for name, body in {**kept, **dropped}.items())
    record += f"{record_name},,\n"
    wheel = tmp_path / "ros_fastdds-3.2.3-cp312-cp312-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, body in {**kept, **dropped}.items():
            archive.writestr(name, body)
        archive.writestr(record_name, record)

    device_wheels.slim_fastdds(wheel)

    with zipfile.ZipFile(wheel) as archive:
        assert set(archive.namelist()) == {*kept, record_name}
        for name, body in kept.items():
            assert archive.read(name) == body
        listed = {line.split(",", 1)[0] for line in archive.read(record_name).decode().split()}
    assert listed == {*kept, record_name}

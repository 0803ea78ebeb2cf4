"""Download the rclpy wheels the GPU machine lacks, small enough to travel with a device call.

The GPU machine has torch but no ROS, and installs nothing from the network; wheels carried with a
call (64 MiB in all, the working tree included) install there into a throw-away venv. With rclpy
there, `scripts/device_session.sh check` measures the node's packing and serialisation on that
machine and runs the CUDA test that needs rclpy.

The list is this environment's own: every distribution the `ros` extra's ROS packages need, at
the versions installed here, less the ones the GPU machine already has. Fast DDS's wheel holds
its library three times over (the zip format keeps no symbolic links) and its C++ headers; only
the name the other libraries load (its SONAME) is kept, which takes the set from 44 to about
30 MB.

    python scripts/device_wheels.py .device_data/wheels      # Python 3.12, as on the GPU machine
"""
from __future__ import annotations

import argparse
import importlib.metadata as metadata
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOTS = {"ros-rclpy": {"fastrtps"}, "ros-sensor-msgs": set(), "ros-stereo-msgs": set(),
         "ros-std-msgs": set(), "ros-diagnostic-msgs": set()}
# On the GPU machine already (KINDS.md), and empy, which rosidl's code generators need only to
# build messages and which has no wheel.
NOT_CARRIED = {"numpy", "pyyaml", "setuptools", "typing-extensions", "empy"}
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in (17, 24, 27, 28, 31, 34, 35, 39)]
# What the other libraries load is libfastdds.so.MAJOR.MINOR; these are the other two names.
FASTDDS_COPIES = r"libfastdds\.so(\.\d+\.\d+\.\d+)?"


def runtime_closure(roots: dict[str, set[str]]) -> dict[str, str]:
    """Name -> installed version of the roots and everything they need, extras followed."""
    found: dict[str, set[str]] = {}
    stack = list(roots.items())
    while stack:
        name, extras = stack.pop()
        key = canonicalize_name(name)
        if key in found and extras <= found[key]:
            continue
        found[key] = found.get(key, set()) | extras
        for line in metadata.distribution(name).requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or any(
                    requirement.marker.evaluate({"extra": extra}) for extra in extras or {""}):
                stack.append((requirement.name, set(requirement.extras)))
    return {name: metadata.version(name) for name in sorted(found)}


def download(pins: dict[str, str], destination: Path, python_version: str) -> None:
    platforms = [argument for platform in PLATFORMS for argument in ("--platform", platform)]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--only-binary=:all:", "--python-version", python_version,
                    "--implementation", "cp", *platforms, "--dest", str(destination),
                    *(f"{name}=={version}" for name, version in pins.items())], check=True)


def slim_fastdds(wheel: Path) -> None:
    """Rewrite Fast DDS's wheel without its headers, tools and the two extra copies of its
    library (libfastdds.so and libfastdds.so.X.Y.Z beside the SONAME libfastdds.so.X.Y)."""
    with zipfile.ZipFile(wheel) as source:
        names = source.namelist()
        dropped = {n for n in names if "/data/include/" in n or "/data/bin/" in n
                   or (re.fullmatch(FASTDDS_COPIES, Path(n).name) and "/data/lib/" in n)}
        slim = wheel.with_suffix(".slim")
        with zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as target:
            for info in source.infolist():
                if info.filename in dropped:
                    continue
                data = source.read(info.filename)
                if info.filename.endswith(".dist-info/RECORD"):
                    data = "".join(line for line in data.decode().splitlines(keepends=True)
                                   if line.split(",", 1)[0] not in dropped).encode()
                target.writestr(info, data)
    slim.replace(wheel)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("destination", type=Path)
    parser.add_argument("--python-version", default="3.12")
    args = parser.parse_args(argv)
    pins = {name: version for name, version in runtime_closure(ROOTS).items()
            if name not in NOT_CARRIED}
    args.destination.mkdir(parents=True, exist_ok=True)
    for old in args.destination.glob("*.whl"):
        old.unlink()
    download(pins, args.destination, args.python_version)
    for wheel in args.destination.glob("ros_fastdds-*.whl"):
        slim_fastdds(wheel)
    wheels = sorted(args.destination.glob("*.whl"))
    if len(wheels) != len(pins):
        print(f"expected {len(pins)} wheels, got {len(wheels)}", file=sys.stderr)
        return 1
    size = sum(w.stat().st_size for w in wheels)
    print(f"{len(wheels)} wheels for Python {args.python_version} in {args.destination}, "
          f"{size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

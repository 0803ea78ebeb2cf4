"""The node in a process of its own, as a robot runs it, for tools that talk to it over DDS
(`stereo-depth demo`, `stereo-depth bench live`)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from ..bench_memory import resident_memory_mib
from ..errors import ConfigurationError
from .frame import DEFAULT_INPUTS, InputTopics
from .launch_support import READY_LINE

SHM_PROFILE = Path(__file__).with_name("fastdds_shm.xml")
# Where each Fast DDS reads an XML profile from: version 2 (Humble, Jazzy) knows only the first
# name and ignores the second; version 3 (Kilted on) reads the second and warns on the first.
FAST_DDS_2_VARIABLE = "FASTRTPS_DEFAULT_PROFILES_FILE"
FAST_DDS_3_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"
FAST_DDS_2_DISTROS = frozenset({"foxy", "galactic", "humble", "iron", "jazzy"})
# The node's executable as the console script runs it, from this interpreter.
NODE_COMMAND = [sys.executable, "-m", "stereo_depth_node.ros.entry"]


def profile_variable() -> str:
    """The environment variable that the Fast DDS this process loads reads its profile from.
    ROS from pip names Fast DDS in its distributions (ros-fastrtps is version 2, ros-fastdds
    version 3); a ROS installation's setup script sets ROS_DISTRO."""
    for distribution, variable in (("ros-fastdds", FAST_DDS_3_VARIABLE),
                                   ("ros-fastrtps", FAST_DDS_2_VARIABLE)):
        try:
            metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
        return variable
    distro = os.environ.get("ROS_DISTRO", "").strip().lower()
    return FAST_DDS_2_VARIABLE if distro in FAST_DDS_2_DISTROS else FAST_DDS_3_VARIABLE


def use_local_shared_memory() -> None:
    """Fast DDS over shared memory only, with room for whole images, unless a profile is set.

    Between processes, Fast DDS's default transports lose best-effort messages over 512 KiB (a
    741x500 RGB image is 1.1 MB); this profile carries them and keeps all traffic on the machine.
    Discovery stays on the machine too, as it does for the node processes NodeProcess starts: a
    tool whose own participant used the shell's range (SUBNET by default) found none of its
    nodes where multicast does not work (`stereo-depth demo` here: "no node subscribes to ...").
    """
    if not any(os.environ.get(name) for name in (FAST_DDS_2_VARIABLE, FAST_DDS_3_VARIABLE)):
        os.environ[profile_variable()] = os.fspath(SHM_PROFILE)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"


def reliable_inputs(namespace: str, inputs: InputTopics = DEFAULT_INPUTS) -> dict[str, str]:
    """Node parameters (rclpy's QoS overrides) that make the four inputs reliable: a set sent
    before the node's side of discovery completes is then resent, not lost, and so is an image
    that a best-effort subscriber drops (without the shared-memory profile, Jazzy's Fast DDS
    2.14 delivered 11 of 20 best-effort 741x500 pairs between two processes here)."""
    return {f"qos_overrides.{namespace.rstrip('/')}/{topic}.subscription.reliability": "reliable"
            for topic in inputs.names}


def tool_arguments() -> list[str]:
    """rclpy.init's arguments for a tool's own participant: the program's name only. The rest of
    its command line is the tool's (`bench live --param publish_thread:=true`), where rcl would
    read a NAME:=VALUE as a (deprecated) remap rule."""
    return sys.argv[:1]


def process_gpu_memory_mib(listing: str, pid: int) -> float | None:
    """MiB used by `pid` in nvidia-smi's `--query-compute-apps=pid,used_memory
    --format=csv,noheader,nounits` output (one line per process on each GPU, summed)."""
    used = [float(fields[1]) for fields in (line.split(",") for line in listing.splitlines())
            if len(fields) == 2 and fields[0].strip() == str(pid)]
    return sum(used) if used else None


class NodeProcess:
    """`stereo_depth_node` under `namespace` with `parameters` (after those of `params_file`, as
    `ros2 launch` passes them), its output in `log_path`; DDS stays on this machine. `env`
    replaces the environment it would inherit (it must keep DDS on the machine too)."""

    def __init__(self, namespace: str, parameters: dict[str, Any], log_path: Path,
                 env: dict[str, str] | None = None, params_file: Path | None = None) -> None:
        if env is None:
            env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
                       PYTHONUNBUFFERED="1")
        command = [*NODE_COMMAND, "--ros-args", "-r", f"__ns:={namespace}"]
        if params_file is not None:
            command += ["--params-file", str(params_file)]
        for name, value in parameters.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            command += ["-p", f"{name}:={text}"]
        self.log_path = log_path
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            env=env)

    def log(self) -> str:
        return self.log_path.read_text()

    def memory_mib(self) -> dict[str, float]:
        """The process's resident memory now and at its peak (Linux /proc; host memory only)."""
        return resident_memory_mib(self.process.pid)

    def gpu_memory_mib(self) -> float | None:
        """What the process holds on the GPU as nvidia-smi reports it (the CUDA context and
        torch's cache included); None without nvidia-smi or when it holds none."""
        try:
            listing = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory",
                                      "--format=csv,noheader,nounits"], capture_output=True,
                                     text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            return None
        return process_gpu_memory_mib(listing, self.process.pid)

    def wait_ready(self, timeout: float) -> float:
        """Seconds until the node said it is ready. ConfigurationError with the node's own line
        when it refused its configuration (exit 2); RuntimeError with its log when it exited
        otherwise or was not ready in `timeout`."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if READY_LINE in self.log():
                return time.monotonic() - start
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        exited = self.process.poll()
        self.stop()
        if exited == 2:
            raise ConfigurationError(self.log().strip().splitlines()[-1])
        state = (f"was not ready after {timeout:.0f} s" if exited is None
                 else f"exited with code {exited}")
        raise RuntimeError(f"the node {state}:\n{self.log()}")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> int:
        """Ctrl-C (or `sig`), as a user stops it, and SIGKILL after `timeout`; the exit code (0
        is a clean stop)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

"""The node's executable. Loading torch and the networks takes seconds, and a Ctrl-C or SIGTERM
in that time (a launch stopped at once) must end the process cleanly, as it does once the node
runs; this module imports nothing heavy before it can catch them."""
from __future__ import annotations

import os
import signal
import sys


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _stop_while_loading(_signum: int, _frame: object) -> None:
    # Exit from the handler itself: an exception raised here can surface inside a pybind11
    # callback of torch's import, which turns it into std::terminate and an abort (exit -6, seen
    # under load). A half-imported torch is no state to tear down anyway.
    print("stereo_depth_node: stopped while loading", file=sys.stderr, flush=True)
    os._exit(0)


def _asks_for_help(argv: list[str]) -> bool:
    # The node's own arguments come before --ros-args; what follows belongs to ROS.
    own = argv[1:argv.index("--ros-args")] if "--ros-args" in argv else argv[1:]
    return "-h" in own or "--help" in own


def main() -> None:
    if _asks_for_help(sys.argv):
        from .parameters import usage
        print(usage())
        sys.exit(0)
    # Kept until the node's main installs its own handlers, which also stop a node still loading.
    for sig in STOP_SIGNALS:
        signal.signal(sig, _stop_while_loading)
    from .node import main as run_node
    sys.exit(run_node())


if __name__ == "__main__":
    main()

"""The node's executable. Loading torch and the networks takes seconds, and a Ctrl-C or SIGTERM
in that time (a launch stopped at once) must end the process cleanly, as it does once the node
runs; this module imports nothing heavy before it can catch them."""
from __future__ import annotations

import os
import signal
import sys


def _stop_while_loading(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    previous = signal.signal(signal.SIGTERM, _stop_while_loading)
    try:
        from .node import main as run_node
    except KeyboardInterrupt:
        print("stereo_depth_node: stopped while loading", file=sys.stderr, flush=True)
        os._exit(0)  # a half-imported torch is no state to tear down
    finally:
        # rclpy installs its own handlers at init; they must not find this one to chain to.
        signal.signal(signal.SIGTERM, previous)
    sys.exit(run_node())


if __name__ == "__main__":
    main()

"""A bound on the middleware's teardown. Fast DDS can deadlock deleting a participant
(eProsima/Fast-DDS#6502, open; seen here in a recorder resumed after SIGSTOP), and a process
stopped with Ctrl-C would then hang until SIGKILL."""
from __future__ import annotations

import faulthandler
from contextlib import contextmanager
from typing import Iterator

# Within ros2 launch's 40 s for the node (stereo_depth.launch.py), after the frame's 30 s and
# the acknowledgements' 1 s; a clean teardown of the node took 16-29 ms here (SGBM, 3 stops).
TEARDOWN_LIMIT_S = 5.0


@contextmanager
def bounded_teardown() -> Iterator[None]:
    """If the block has not finished after TEARDOWN_LIMIT_S, the process prints `Timeout
    (0:00:05)!` and every thread's stack, and exits with code 1. faulthandler's watchdog is a C
    thread: a native call that hangs holding the GIL stops every Python thread, not it."""
    faulthandler.dump_traceback_later(TEARDOWN_LIMIT_S, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()

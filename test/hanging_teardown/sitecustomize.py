"""For tests only: `rclpy.try_shutdown` never returns, blocked in native code with the GIL held,
as a middleware teardown that deadlocks does (Fast DDS deleting a participant,
eProsima/Fast-DDS#6502). On a node process's PYTHONPATH, Python imports this at start-up."""
import ctypes

import rclpy

_LIBC = ctypes.PyDLL(None)  # PyDLL keeps the GIL during the call, the worst case for a watchdog


def _deadlocked_teardown(*_args: object, **_kwargs: object) -> None:
    while True:  # a signal ends sleep() early; a deadlock outlasts signals
        _LIBC.sleep(3600)


rclpy.try_shutdown = _deadlocked_teardown

"""An executor spun on a thread of its own, and stopped without racing rclpy's shutdown."""
from __future__ import annotations

import threading

from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

SPIN_STEP_S = 0.05  # the most close() waits for the thread to notice it


class SpinThread:
    """Spins `nodes` on a daemon thread until `close()`.

    `Executor.shutdown()` from another thread destroys the executor's guard condition while the
    spinning thread may still be inside a callback's handler, which then signals that guard
    condition and dies with "InvalidHandle: cannot use Destroyable because destruction was
    requested" (ros2/rclpy#968, open; in rclpy 9.1.2 shutdown's wait for running callbacks is
    skipped). So the thread spins in short steps and `close()` stops and joins it before the
    executor is shut down, on the thread that calls close().
    """

    def __init__(self, *nodes: Node) -> None:
        self.executor = SingleThreadedExecutor()
        for node in nodes:
            self.executor.add_node(node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            while not self._stop.is_set() and self.executor.context.ok():
                self.executor.spin_once(timeout_sec=SPIN_STEP_S)
        except ExternalShutdownException:  # the context ended: nothing is left to spin
            pass

    def close(self, timeout_s: float = 2.0) -> None:
        """Stop spinning, wait for the callback in progress, then shut the executor down."""
        self._stop.set()
        self._thread.join(timeout=timeout_s)
        self.executor.shutdown(timeout_sec=0)

"""SpinThread: closing it while a callback runs waits for the callback and ends the thread."""
from __future__ import annotations

import threading
import time

from std_msgs.msg import String

from stereo_depth_node.ros.spin_thread import SpinThread

CALLBACK_S = 0.3


def test_close_during_a_callback_waits_for_it_and_leaves_no_thread_error(ros_context):
    node = ros_context.create_node("spin_thread_test")
    entered, finished = threading.Event(), threading.Event()

    def slow(_msg) -> None:
        entered.set()
        time.sleep(CALLBACK_S)
        finished.set()

    node.create_subscription(String, "spin_thread_test", slow, 10)
    publisher = node.create_publisher(String, "spin_thread_test", 10)
    thread_errors = []
    previous_hook = threading.excepthook
    threading.excepthook = lambda args: thread_errors.append(repr(args.exc_value))
    try:
        spin = SpinThread(node)
        deadline = time.monotonic() + 20
        while not entered.is_set() and time.monotonic() < deadline:
            publisher.publish(String(data="go"))  # until discovery has matched the subscription
            entered.wait(0.1)
        assert entered.is_set(), "the subscription never received a message"
        spin.close()
        assert finished.is_set()  # close() returned after the callback, not in its middle
        time.sleep(CALLBACK_S)  # where the executor used to fail, once the callback had ended
        assert thread_errors == []
        assert not spin._thread.is_alive()
    finally:
        threading.excepthook = previous_hook
        node.destroy_node()

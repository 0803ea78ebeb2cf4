"""The ROS 2 node: synchronised rectified stereo in; disparity, depth, points, confidence out.

Callbacks only hand the newest synchronised set to a one-slot mailbox; one worker thread runs the
network, and with publish_thread a second one builds and publishes a finished frame's messages
while the worker matches the next set (else the worker does both before it takes the next). Bad
input drops one frame with a throttled error naming topic, field and expected value; bad
configuration fails at start with one message and a non-zero exit. SIGINT and SIGTERM stop the
intake at once and wait for the frame in flight, so the process exits 0 and never tears down the
interpreter under a running network (that aborts with SIGABRT); a middleware teardown that hangs
after that ends the process with code 1 (teardown.py).
"""
from __future__ import annotations

import dataclasses
import math
import os
import queue
import re
import signal
import statistics
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from ..checkpoints import weights_and_range
from ..errors import ConfigurationError, InputError
from ..estimator import StereoEstimator, check_input_scale, check_lr_threshold
from ..models import NEURAL_MODELS
from ..pipeline import OutputSettings
from ..rectification import Rectifier
from ..search_range import SearchRange
from .acknowledgements import unacknowledged
from .conversions import ImageDecoder
from .frame import (OUTPUT_TYPES, ComputedFrame, InputTopics, compute_frame, frame_messages,
                    pair_mismatch_text)
from .inputs import StereoInputs
from .launch_support import READY_LINE
from .mailbox import Mailbox
from .parameters import (BY_NAME, PARAMETERS, descriptor, parameter_value,
                         unknown_parameters_text, warmup_size)
from .sync import Unmatched
from .teardown import bounded_teardown
from .throttle import ErrorThrottle

ERROR_THROTTLE_S = 5.0
RATE_STALE_S = 5.0  # the shortest quiet time after which the rate reads 0
RATE_GAP_FACTOR = 3.0  # a pause of this many usual frame intervals ends a run of frames
DIAGNOSTIC_PERIOD_S = 1.0
PROBLEM_WINDOW_S = 10.0  # /diagnostics says WARN this long after a frame dropped for an error
# How long shutdown waits for the frame in flight. Fixed, not scaled with the frame time: under
# ros2 launch SIGKILL follows at sigterm_timeout + 5 s (stereo_depth.launch.py: 40 s), and a
# clean exit without the frame beats being killed.
SHUTDOWN_WAIT_S = 30.0
# How long shutdown waits for subscribers to acknowledge what was published last. Destroying a
# reliable publisher discards what its subscribers have not yet received: without this wait the
# last frame's last topics (points2, confidence) were lost in about 1 stop in 10.
OUTPUT_ACK_WAIT_S = 1.0
MAX_SYNC_TOLERANCE_S = 3600.0  # beyond any camera; message_filters' Duration overflows near 9e9
STOP_POLL_S = 0.1  # the most a Ctrl-C waits for the executor to look at it


def check_sync_tolerance(seconds: float, approximate: bool) -> None:
    if not 0 <= seconds <= MAX_SYNC_TOLERANCE_S:
        raise ValueError(f"sync_tolerance must be in [0, {MAX_SYNC_TOLERANCE_S:g}] s, got "
                         f"{seconds}")
    if approximate and seconds == 0:
        # message_filters pairs stamps *less* than the tolerance apart: at 0 it pairs nothing.
        raise ValueError("sync_tolerance must be above 0 with approximate_sync (0 pairs no "
                         "messages with message_filters); approximate_sync:=false pairs equal "
                         "stamps")


def rate_hz(times: Sequence[float], now: float) -> float:
    """Frames a second over the latest run of processing times (monotonic seconds): a pause
    longer than RATE_GAP_FACTOR usual intervals (at least RATE_STALE_S) starts a new run, and
    a stream quiet that long reads 0. The gap scales with the usual interval because a network
    on a CPU takes seconds a frame, which a fixed cut-off read as stopped between frames."""
    times = list(times)  # a deque has no slices
    if len(times) < 2:
        return 0.0
    intervals = [later - earlier for earlier, later in zip(times, times[1:])]
    gap = max(RATE_STALE_S, RATE_GAP_FACTOR * statistics.median(intervals))
    if now - times[-1] > gap:
        return 0.0
    start = max((i + 1 for i, interval in enumerate(intervals) if interval > gap), default=0)
    run = times[start:]
    if len(run) < 2:
        return 0.0
    return (len(run) - 1) / max(run[-1] - run[0], 1e-9)


@dataclass
class StereoSet:
    left: Image
    right: Image
    left_info: CameraInfo
    right_info: CameraInfo
    received: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Calibration:
    """What the newest frame's camera_infos mean for depth, for /diagnostics."""
    search_range: SearchRange
    range_note: str       # SearchRange.note: the depths the range covers
    gives_no_depth: bool  # ... none within [min_depth, max_depth]
    mismatch: str | None  # StereoCamera.pair_mismatch: how they are no rectified pair


@dataclass
class Counters:
    received: int = 0
    processed: int = 0
    rejected: int = 0
    unmatched: int = 0
    failed: int = 0
    without_depth: int = 0  # published without depth and points: no usable calibration
    last_error: str = ""
    last_problem: float | None = None  # time.monotonic() of the newest error a frame had
    last_frame_s: float | None = None
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=100))
    processed_times: deque = field(default_factory=lambda: deque(maxlen=100))


class StereoDepthNode(Node):
    def __init__(self, on_created: Callable[[Node], None] | None = None, **kwargs: Any) -> None:
        """`on_created` gets the node as soon as it is an rclpy Node, before the network loads:
        a signal during the loading or the warm-up must be able to destroy it."""
        super().__init__("stereo_depth_node", **kwargs)
        if on_created is not None:
            on_created(self)
        for spec in PARAMETERS:
            self.declare_parameter(spec.name, spec.default, descriptor(spec))
        configured = {spec.name: parameter_value(spec, self.get_parameter(spec.name).value)
                      for spec in PARAMETERS}
        check_sync_tolerance(configured["sync_tolerance"],  # message_filters' Duration is built
                             configured["approximate_sync"])
        if configured["queue_size"] < 1:                    # with the synchroniser, below
            raise ValueError(f"queue_size must be >= 1, got {configured['queue_size']}")
        warmup = warmup_size(configured["warmup_size"])  # refused before the network loads
        if not 0 <= configured["summary_period"] < math.inf:
            raise ValueError(f"summary_period must be >= 0 s and finite, got "
                             f"{configured['summary_period']}")
        self.estimator = self._build_estimator(configured)
        self.counters = Counters()
        self._errors = ErrorThrottle(ERROR_THROTTLE_S)
        self._mailbox: Mailbox[StereoSet] = Mailbox()
        self._frame_started: float | None = None
        self._decoder = ImageDecoder(on_bridge_failure=self.get_logger().warning)
        self._settings = OutputSettings()
        self._publish: dict[str, bool] = {}
        # The newest frame's calibration, and the last notes logged of it (_note_calibration).
        self._calibration: Calibration | None = None
        self._range_note: str | None = None
        self._mismatch_note: str | None = None
        self._warned_no_frame = False
        self._abandoned = False  # shutdown stopped waiting: the middleware is going away

        overrides = QoSOverridingOptions.with_default_policies()
        approximate = configured["approximate_sync"]
        self._topics = InputTopics(configured["image_transport"], configured["rectify"])
        self._rectifier = self._build_rectifier() if self._topics.rectify else None
        try:
            self._inputs = StereoInputs(self, self._topics, approximate,
                                        configured["sync_tolerance"], configured["queue_size"],
                                        overrides, self._on_synchronised, self._on_unmatched,
                                        self._on_refused_message, self.get_logger().warning)
            # A new profile for each: rclpy writes a topic's qos_overrides into the profile
            # object it is given.
            self._outputs = {
                topic: self.create_publisher(
                    msg_type, topic, QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE),
                    qos_overriding_options=overrides)
                for topic, msg_type in OUTPUT_TYPES.items()}
        except RuntimeError as exc:
            # rclpy's RuntimeError for a qos_overrides value it does not know ('reliabel'), and
            # its RCLError (a RuntimeError) for one the middleware refuses (depth -3).
            raise ConfigurationError(f"a topic could not be made with its QoS (check the "
                                     f"qos_overrides parameters): {exc}") from exc
        self._topics = dataclasses.replace(self._topics, labels=self._inputs.names)
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._apply_runtime({spec.name: configured[spec.name]
                             for spec in PARAMETERS if spec.runtime})
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # After every topic is made: rclpy declares each topic's qos_overrides parameters then.
        # rclpy keeps what was given (params files, -p) in _parameter_overrides, with no public
        # accessor, from Humble on.
        unknown = unknown_parameters_text(getattr(self, "_parameter_overrides", {}),
                                          self.get_parameters_by_prefix(""))
        if unknown:
            self.get_logger().warning(unknown)
        if warmup is not None:
            compiling = (" (compiling the network first: about 75 s on an H200)"
                         if getattr(self.estimator.matcher, "compile_backend", None) else "")
            self.get_logger().info(f"warming up on one {warmup[0]}x{warmup[1]} frame before "
                                   f"reporting ready{compiling}")
            seconds = self.estimator.warm_up(*warmup)
            self.get_logger().info(f"warmed up on one {warmup[0]}x{warmup[1]} frame in "
                                   f"{seconds:.1f} s")
        # Wall-clock periods: under use_sim_time a paused or finished bag stops ROS time, and the
        # node's health must still be reported.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(DIAGNOSTIC_PERIOD_S, self._publish_diagnostics, clock=steady)
        period = configured["summary_period"]
        if period > 0:
            self.create_timer(period, self._log_summary, clock=steady)
        # A frame is published in order and never dropped once computed: the worker waits
        # while one finished frame is still queued.
        self._finished: queue.Queue[tuple[StereoSet, ComputedFrame] | None] | None = (
            queue.Queue(maxsize=1) if configured["publish_thread"] else None)
        self._threads = [threading.Thread(target=self._work, name="stereo_inference",
                                          daemon=True)]
        if self._finished is not None:
            self._threads.append(threading.Thread(target=self._publish_finished,
                                                  name="stereo_publish", daemon=True))
        for thread in self._threads:
            thread.start()
        decoder = self._decoder.name + (f" ({self._decoder.unavailable_reason})"
                                        if self._decoder.unavailable_reason else "")
        images = f"{self._topics.image_transport} images" + (
            f", rectified here ({self._rectifier.backend})" if self._rectifier else "")
        compiled = (" with torch.compile (each image size not warmed up compiles at its first "
                    "frame: about 75 s on an H200; frames meanwhile are dropped and counted)"
                    if getattr(self.estimator.matcher, "compile_backend", None) else "")
        precision = getattr(self.estimator.matcher, "precision", None)  # SGBM has none
        self.get_logger().info(
            f"{READY_LINE} {self.estimator.model_name} on {self.estimator.device}"
            f"{f' ({precision})' if precision else ''}{compiled}, max disparity "
            f"{self.estimator.max_disparity}, {'approximate' if approximate else 'exact'} sync "
            f"({self._inputs.backend}), image decoder {decoder}, {images}; "
            f"subscribed to {', '.join(self._topics.shown)}")

    # --- configuration --------------------------------------------------------------------------
    def _build_estimator(self, configured: dict[str, Any]) -> StereoEstimator:
        model, requested = configured["model"], configured["weights"]
        weights, max_disparity = weights_and_range(model, requested, configured["max_disparity"])
        # An unknown model is refused by the estimator below; it has no weights to miss.
        if model in NEURAL_MODELS and weights is None and requested != "none":
            self.get_logger().warning(
                f"no trained weights for {model!r} (parameter weights is empty and none ship "
                f"with this package): the network runs with its initial weights")
        # Weights trained with another max disparity run; the notice naming both goes to the
        # node's log rather than Python's logging, which a ROS user does not see configured.
        estimator = StereoEstimator(model, weights, max_disparity, configured["device"],
                                    configured["precision"],
                                    compile_backend="inductor" if configured["compile"] else None,
                                    notify=self.get_logger().info)
        if model != "sgbm" and configured["device"] == "auto" and estimator.device.type == "cpu":
            # A robot without a working CUDA setup falls back here silently otherwise, and then
            # answers once every few seconds.
            self.get_logger().warning(
                f"no CUDA device, so {model} runs on the CPU: seconds a frame (about 5 s at "
                f"640x480 on a 2-core CPU, README \"Benchmarks\"); model:=sgbm matches in tens of "
                f"ms, and input_scale below 1 shortens a network frame")
        return estimator

    def _build_rectifier(self) -> Rectifier:
        """Remapping on the network's GPU when it runs on one, else OpenCV on the CPU."""
        device = self.estimator.device
        return Rectifier(device if device.type == "cuda" else None)

    def _apply_runtime(self, values: dict[str, Any]) -> None:
        """Validate and apply runtime parameters; raises ValueError naming the bad value."""
        settings = OutputSettings(**{**self._settings.__dict__})
        for name in ("confidence_threshold", "min_depth", "max_depth", "use_color"):
            if name in values:
                setattr(settings, name, values[name])
        settings.validate()
        if "input_scale" in values:
            check_input_scale(values["input_scale"])
        if "lr_threshold" in values:
            check_lr_threshold(values["lr_threshold"])
        if "sync_tolerance" in values:
            check_sync_tolerance(values["sync_tolerance"], self._inputs.approximate)
        publish = {**self._publish, **{k: v for k, v in values.items()
                                       if k.startswith("publish_")}}
        settings.want_depth = publish.get("publish_depth", True)
        settings.want_points = publish.get("publish_points", True)
        self._settings, self._publish = settings, publish
        for name, attribute in (("input_scale", "input_scale"), ("lr_check", "lr_check"),
                                ("lr_threshold", "lr_threshold")):
            if name in values:
                setattr(self.estimator, attribute, values[name])
        if "sync_tolerance" in values:
            self._inputs.set_tolerance(values["sync_tolerance"])

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        # Fixed parameters never get here: they are read-only, which rclpy checks first.
        try:
            self._apply_runtime({p.name: parameter_value(BY_NAME[p.name], p.value)
                                 for p in parameters if p.name in BY_NAME})
        except Exception as exc:  # any refusal must reach `ros2 param set`, not stop the executor
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    # --- input ----------------------------------------------------------------------------------
    def _on_synchronised(self, left: Image, right: Image, left_info: CameraInfo,
                         right_info: CameraInfo) -> None:
        self.counters.received += 1
        self._mailbox.put(StereoSet(left, right, left_info, right_info))

    def _on_refused_message(self, text: str) -> None:
        """A message refused before synchronisation (a stamp before 1970) joins no set: it is
        counted with the unmatched messages, not as a rejected set."""
        self._report(text, dropped="unmatched")

    def _on_unmatched(self, unmatched: Unmatched) -> None:
        self.counters.unmatched += 1
        names = self._topics.shown
        gaps = ", ".join(f"{names[i]} {gap / 1e6:.1f} ms"
                         for i, gap in sorted(unmatched.nearest_gap_ns.items()))
        tolerance = self._inputs.tolerance_s
        rule = f"within sync_tolerance {tolerance} s" if tolerance is not None else "exact stamps"
        partners = unmatched.nearest_gap_ns
        if tolerance is None and len(partners) == len(names) - 1 and not any(partners.values()):
            # Every input had this stamp, yet the set never waited whole: one input runs more
            # than the queue behind the others.
            hint = (f"; every other input had a message with this stamp, but more than "
                    f"queue_size ({self._inputs.tracker.queue_size}) messages apart from this "
                    f"one: raise queue_size, or find the input that lags")
        elif tolerance is None and gaps:
            # Two camera drivers, or one that stamps each image on arrival, never share stamps:
            # the default exact sync then pairs nothing, and the fix is one parameter away.
            hint = ("; inputs stamped apart pair with approximate_sync:=true and a "
                    "sync_tolerance above the gap")
        else:
            hint = ""
        # Keyed by topic: the text names the stamp, so it is new for every message.
        self._report(f"{names[unmatched.stream]}: message stamped "
                     f"{unmatched.stamp_ns / 1e9:.6f} s found no partners ({rule}); nearest: "
                     f"{gaps or 'none'}{hint}", dropped=None, kind=f"unmatched {unmatched.stream}")

    def _report(self, text: str, dropped: str | None = "rejected", kind: str | None = None
                ) -> None:
        """Throttled error: one line per kind per ERROR_THROTTLE_S seconds; every one is counted
        and the newest is `last error` in /diagnostics. `dropped` names the counter of what the
        error cost ("rejected" or "failed" set, a frame "without_depth", an "unmatched" message;
        None when it cost nothing), which also turns /diagnostics to WARN for a while. The kind
        defaults to the text with its long numbers blanked: byte counts and stamps change from
        frame to frame."""
        if dropped is not None:
            setattr(self.counters, dropped, getattr(self.counters, dropped) + 1)
            self.counters.last_problem = time.monotonic()
        self.counters.last_error = text
        if self._errors.allow(kind or re.sub(r"\d{3,}", "#", text), time.monotonic()):
            self.get_logger().error(text)

    # --- processing -----------------------------------------------------------------------------
    def _work(self) -> None:
        try:
            while not self._mailbox.closed:
                stereo = self._mailbox.take(timeout=0.1)
                if stereo is None:
                    continue
                self._frame_started = time.monotonic()
                try:
                    self._guarded(self._process, stereo)
                finally:
                    self.counters.last_frame_s = time.monotonic() - self._frame_started
                    self._frame_started = None
        finally:
            if self._finished is not None:
                self._finished.put(None)  # the publishing thread ends after what is queued

    def _publish_finished(self) -> None:
        while (finished := self._finished.get()) is not None:
            self._guarded(self._send, *finished)

    def _guarded(self, step: Callable[..., None], *args: Any) -> None:
        """One frame's step; an error drops that frame (counted) and never ends the thread."""
        try:
            step(*args)
        except InputError as exc:
            self._report(f"frame dropped: {exc}")
        except Exception as exc:
            if not self._abandoned:
                self._report(f"frame failed: {type(exc).__name__}: {exc}", dropped="failed")

    def _process(self, stereo: StereoSet) -> None:
        frame = compute_frame(self.estimator, self._decoder, stereo.left, stereo.right,
                              stereo.left_info, stereo.right_info, self._settings, self._topics,
                              self._rectifier)
        if frame.camera_error:
            # The frame is published (disparity, confidence), so it is no rejected set.
            self._report(f"depth and points skipped: {frame.camera_error}",
                         dropped="without_depth")
        if frame.search_range is not None:
            self._note_calibration(frame.search_range, frame.pair_mismatch)
        else:  # its error was reported; /diagnostics must not go on showing an older calibration
            self._calibration = None
        if not stereo.left.header.frame_id and not self._warned_no_frame:
            self._warned_no_frame = True
            self.get_logger().warning(
                f"{self._topics.shown[0]} has an empty header.frame_id, and every output carries "
                f"the left image's header: RViz and tf2 cannot place depth or points2. Set the "
                f"frame in the camera driver (the left camera's optical frame); logged once")
        if self._finished is None:
            self._send(stereo, frame)
        else:
            self._finished.put((stereo, frame))

    def _send(self, stereo: StereoSet, frame: ComputedFrame) -> None:
        """Build the messages the publish_* parameters enable and publish them."""
        for topic, message in frame_messages(frame, self._publish).items():
            self._outputs[topic].publish(message)
        counters = self.counters
        counters.processed += 1
        counters.latencies_ms.append((time.monotonic() - stereo.received) * 1e3)
        counters.processed_times.append(time.monotonic())

    # --- reporting ------------------------------------------------------------------------------
    def _note_calibration(self, search_range: SearchRange, mismatch: str | None) -> None:
        """Say what the disparity range means in metres for this camera, the one setting that
        decides which obstacles can be seen, and warn of camera_infos that describe no rectified
        pair: each when it changes (calibration, max_disparity, input_scale, a depth limit that
        changes what the range can give), a text at most once per throttle period, so that
        calibrations that alternate (two publishers on one topic) are not logged frame by frame.
        A text held back is logged once the period allows, so the last line is the current one."""
        settings = self._settings
        note, warn = search_range.note(settings.min_depth, settings.max_depth)
        self._calibration = Calibration(search_range, note, warn, mismatch)
        now = time.monotonic()
        if note != self._range_note and self._errors.allow(note, now):
            self._range_note = note
            # rclpy refuses one call site that logs at two severities.
            if warn:
                self.get_logger().warning(note)
            else:
                self.get_logger().info(note)
        if mismatch is None:
            self._mismatch_note = None
            return
        text = pair_mismatch_text(self._topics, mismatch)
        if text != self._mismatch_note and self._errors.allow(text, now):
            self._mismatch_note = text
            self.get_logger().warning(text)

    def _summary_values(self, calibration: Calibration | None) -> dict[str, str]:
        c = self.counters
        latency = statistics.median(c.latencies_ms) if c.latencies_ms else float("nan")
        received = ", ".join(f"{topic} {count}" for topic, count in
                             zip(self._topics.shown, self._inputs.tracker.received_per_stream))
        rectifier = ({"rectification maps computed": str(self._rectifier.maps_computed)}
                     if self._rectifier else {})
        search_range = calibration.search_range if calibration else None
        nearest = search_range.nearest if search_range else None
        if nearest is None:
            farthest = "unknown"
        else:
            farthest = "unlimited" if search_range.farthest is None else (
                f"{search_range.farthest:.3g}")
        if calibration is None:
            pair = "unknown (the newest frame had no usable camera_infos, or none came yet)"
        else:
            pair = (f"no rectified horizontal pair: {calibration.mismatch}"
                    if calibration.mismatch else "a rectified horizontal pair")
        return {"received sets": str(c.received), "processed": str(c.processed),
                "dropped (newer set arrived)": str(self._mailbox.dropped),
                "rejected (bad input)": str(c.rejected), "unmatched messages": str(c.unmatched),
                "received messages": received, "synchronizer": self._inputs.backend,
                "image decoder": self._decoder.name,
                "cv_bridge failures": str(self._decoder.bridge_failures),
                "failed": str(c.failed),
                "published without depth (calibration)": str(c.without_depth),
                "rate (Hz)": f"{rate_hz(c.processed_times, time.monotonic()):.2f}",
                "median latency (ms)": f"{latency:.1f}", "model": self.estimator.model_name,
                "nearest depth in search range (m)": (f"{nearest:.3g}" if nearest is not None
                                                      else "unknown"),
                "farthest depth in search range (m)": farthest,
                "search range": calibration.range_note if calibration else "unknown",
                "camera_infos": pair,
                "device": str(self.estimator.device),
                **rectifier, "last error": c.last_error}

    def _publish_diagnostics(self) -> None:
        """OK, WARN while frames were dropped for errors in the last PROBLEM_WINDOW_S (a bad frame
        an hour ago is in the counts, not in the level), while an input has had no message yet,
        and while the newest frame's camera_infos give no depth in the search range or describe
        no rectified pair (frames still go out: the log says so only when it changes), ERROR if
        a worker thread is gone."""
        # Read once: the worker replaces it, and one status must describe one calibration.
        calibration = self._calibration
        values = self._summary_values(calibration)
        counters = self.counters
        problems = counters.rejected + counters.failed
        message = f"{values['processed']} frames processed"
        if problems:
            message += f", {problems} dropped for errors"
        if counters.without_depth:
            message += f", {counters.without_depth} without depth (camera_info)"
        recent = (counters.last_problem is not None
                  and time.monotonic() - counters.last_problem < PROBLEM_WINDOW_S)
        stopped = [thread.name for thread in self._threads if not thread.is_alive()]
        silent = self._inputs_without_messages()
        if recent:
            message += f" (the last one {time.monotonic() - counters.last_problem:.0f} s ago)"
        if silent:
            message = f"no message yet on {', '.join(silent)}; {message}"
        doubtful = [text for text, applies in (
            ("the search range gives no depth", calibration and calibration.gives_no_depth),
            ("the camera_infos describe no rectified pair", calibration and calibration.mismatch))
            if applies]
        if doubtful:
            message = f"{'; '.join(doubtful)}; {message}"
        if stopped:
            level = DiagnosticStatus.ERROR
            message = f"thread {', '.join(stopped)} has stopped; {message}"
        elif recent or silent or doubtful:
            level = DiagnosticStatus.WARN
        else:
            level = DiagnosticStatus.OK
        status = DiagnosticStatus(
            level=level, name=f"{self.get_fully_qualified_name()}: stereo depth",
            hardware_id=values["device"], message=message,
            values=[KeyValue(key=k, value=v) for k, v in values.items()])
        self._diagnostics.publish(DiagnosticArray(header=self._header_now(), status=[status]))

    def _header_now(self) -> Header:
        return Header(stamp=self.get_clock().now().to_msg())

    def _log_summary(self) -> None:
        v = self._summary_values(self._calibration)
        self.get_logger().info(
            f"{v['rate (Hz)']} Hz, median latency {v['median latency (ms)']} ms, "
            f"{v['processed']}/{v['received sets']} sets processed, "
            f"{v['dropped (newer set arrived)']} dropped for newer, {v['rejected (bad input)']} "
            f"rejected, {v['failed']} failed, {v['unmatched messages']} unmatched messages")
        silent = self._inputs_without_messages()
        if silent:
            # A wrong namespace or remapping leaves the node silent otherwise: no set, no error.
            self.get_logger().warning(
                f"no message yet on {', '.join(silent)}: a set needs all four inputs (a topic "
                f"without publishers: check the names and remappings; with publishers: check "
                f"their QoS against qos_overrides, and README \"DDS on one machine\" for large "
                f"images)")

    def _inputs_without_messages(self) -> list[str]:
        """The inputs that have had no message since the start, each with its publisher count."""
        silent = []
        for name, count in zip(self._topics.shown, self._inputs.tracker.received_per_stream):
            if count == 0:
                publishers = self.count_publishers(name)
                silent.append(f"{name} ({publishers} publisher{'' if publishers == 1 else 's'})")
        return silent

    def _last_frame_text(self) -> str:
        last = self.counters.last_frame_s
        return "no frame finished yet" if last is None else f"the last frame took {last:.2f} s"

    def shutdown(self) -> bool:
        """Stop taking sets and wait for the frame in flight, which is published as any other,
        then for the subscribers to acknowledge it; False if it never finished."""
        started = time.monotonic()
        self._mailbox.close()
        logger = self.get_logger()
        in_flight = self._frame_started
        if in_flight is not None:
            logger.info(
                f"shutting down: waiting for the frame in flight, which is still published "
                f"(running for {started - in_flight:.2f} s; {self._last_frame_text()})")
        for thread in self._threads:  # the publishing thread ends after the worker
            thread.join(timeout=max(0.0, started + SHUTDOWN_WAIT_S - time.monotonic()))
        finished = not any(thread.is_alive() for thread in self._threads)
        if finished:
            self._wait_for_acknowledgements()
            logger.info(
                f"shut down in {time.monotonic() - started:.2f} s ({self._last_frame_text()})")
        else:
            self._abandoned = True
            logger.error(
                f"the frame in flight is still running after {SHUTDOWN_WAIT_S:.0f} s; exiting "
                f"without it")
        return finished

    def _wait_for_acknowledgements(self) -> None:
        """Give the subscribers of every output up to OUTPUT_ACK_WAIT_S, together, to receive what
        was published (a best-effort publisher has nothing to wait for)."""
        topics = unacknowledged(self._outputs, OUTPUT_ACK_WAIT_S)
        if topics:
            self.get_logger().warning(
                f"shutting down: {', '.join(topics)} not acknowledged by every subscriber "
                f"within {OUTPUT_ACK_WAIT_S:.0f} s; a subscriber may miss the last frame")


def _ignore_signals_while_stopping() -> None:
    """A second Ctrl-C, or the SIGTERM that `ros2 launch` sends after it, must not interrupt the
    wait for the frame in flight: that unwinds into interpreter teardown under a running network.
    The note names no frame: a Ctrl-C in the terminal of `ros2 launch` reaches the node twice
    (from the terminal and from launch), usually with no frame in flight."""
    def note(signum: int, _frame) -> None:
        print(f"stereo_depth_node: {signal.Signals(signum).name} ignored: already shutting down",
              file=sys.stderr, flush=True)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, note)


def _shut_down_half_built(nodes: Sequence[Node]) -> None:
    """Destroy the node whose constructor did not finish, then shut the context down, in bounded
    time. Destroying the node frees its middleware participant: os._exit alone left Fast DDS's
    shared-memory segments in /dev/shm for good (two of about 67 MB each with this package's
    profile, RAM on a robot, at every Ctrl-C during a warm-up). rclpy 9 (Kilted) would destroy it
    when the context shuts down; rclpy 7 (Jazzy) and older leave it alive. Shutting the context
    down also closes ROS logging, which writes what its file sink buffered (rcl's spdlog sink
    flushes only every few seconds)."""
    with bounded_teardown():
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()


def _release_ros(nodes: Sequence[Node]) -> None:
    """Before leaving mid-start (loading the network, warming up), from the signal handler. The
    node is a whole rclpy Node once its constructor runs our code, and the main thread, which the
    handler interrupts, never resumes."""
    try:
        _shut_down_half_built(nodes)
    except Exception:  # still leave; at least write the ROS log
        from rclpy.impl.implementation_singleton import rclpy_implementation
        try:
            rclpy_implementation.rclpy_logging_fini()
        except Exception:  # already closed, or never opened: nothing to write
            pass


def _exit(code: int) -> None:
    """Leave without the interpreter's teardown. With the worker still in native code (shutdown
    gave up waiting) that teardown aborts (SIGABRT); after a clean stop it once crashed (SIGSEGV)
    destroying native objects in arbitrary order. Either way a clean Ctrl-C would read as
    "process has died" under ros2 launch."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    """Run the node until SIGINT/SIGTERM; exits the process with 0 (2 for bad configuration, 1
    for an unexpected error)."""
    args = sys.argv if argv is None else argv
    ros_initialised, spinning, stop = threading.Event(), threading.Event(), threading.Event()
    built: list[Node] = []  # the node from its first line on, for _release_ros

    def on_stop_signal(_signum: int, _frame) -> None:
        """While loading, leave at once, from here: an exception raised here could surface
        inside a pybind11 callback and abort the process (see entry.py). Once spinning, ask the
        loop below to end. A KeyboardInterrupt there would land at any bytecode inside rclpy's
        executor and could leave a half-made Task, whose __del__ then printed "Exception ignored
        ... 'Task' object has no attribute '_exception'" (1 stop in 25 under a stream of sets)."""
        if not spinning.is_set():
            if ros_initialised.is_set():
                _release_ros(built)
            _exit(0)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_stop_signal)
    # Without rclpy's own handlers, which shut the context down from their signal thread: that
    # left ROS logging open, so os._exit lost what the log file had buffered (all of a short
    # run), and it destroyed the node under a frame still publishing. The context now lives
    # until the node has stopped, and rclpy.try_shutdown closes the logging with it.
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except (rclpy_implementation.RCLError, rclpy_implementation.UnknownROSArgsError) as exc:
        # rcl refuses its own arguments (a missing --params-file, a malformed -p) and its
        # environment (a ROS_DOMAIN_ID that is no number) with a text that names C source lines,
        # and an unknown flag after --ros-args with just a list.
        unknown = isinstance(exc, rclpy_implementation.UnknownROSArgsError)
        reason = (f"unknown arguments after --ros-args: {exc}" if unknown
                  else re.sub(r", at \S+:\d+", "", str(exc)))
        print(f"stereo_depth_node: configuration error: ROS could not start: {reason}",
              file=sys.stderr)
        return 2
    ros_initialised.set()
    executor = SingleThreadedExecutor()
    try:
        node = StereoDepthNode(on_created=built.append)
    except (ConfigurationError, InputError, ValueError, ParameterException) as exc:
        # ParameterException: a value of the wrong type for a parameter (`queue_size:=2.5`)
        print(f"stereo_depth_node: configuration error: {exc}", file=sys.stderr)
        _shut_down_half_built(built)
        return 2
    code = 0
    try:
        spinning.set()
        executor.add_node(node)
        while not stop.is_set():
            executor.spin_once(timeout_sec=STOP_POLL_S)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        traceback.print_exc()  # a bug: said in full, and the process still leaves through _exit
        code = 1
    finally:
        _ignore_signals_while_stopping()
        node.shutdown()
        with bounded_teardown():
            executor.shutdown(timeout_sec=0.5)
            node.destroy_node()
            rclpy.try_shutdown()
    _exit(code)

if __name__ == "__main__":
    sys.exit(main())

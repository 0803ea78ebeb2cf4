"""`stereo-depth bag make|play|record|process`: the command-line side of the bag tools."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import rclpy

from ..bench_cli import count_at_least
from ..calibration import camera_from_options
from ..camera import StereoCamera
from ..errors import ConfigurationError, InputError
from ..estimator import StereoEstimator
from ..images import read_image
from .bag import (Recorder, check_above_zero, check_new_bag, make_bag, msgtype_name, play_bag,
                  process_bag)
from .frame import OUTPUT_TYPES
from .node_process import tool_arguments
from .teardown import bounded_teardown

PUBLISHER_WAIT_S = 10.0


def _camera(args: argparse.Namespace, width: int, height: int) -> StereoCamera:
    camera = camera_from_options(args.calib, args.focal, args.baseline, width, height)
    if camera is None:
        raise ConfigurationError("give --calib FILE or --focal F --baseline B")
    return camera


def above_zero(what: str) -> Callable[[str], float]:
    """argparse type of a rate or limit that must be finite and above 0, refused before anything
    starts or is written."""
    def parse(text: str) -> float:
        try:
            return check_above_zero(float(text), what)
        except InputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    return parse


def cmd_make(args: argparse.Namespace) -> int:
    check_new_bag(args.out)
    if args.demo:
        # The synthetic scenes only: one camera and one size (the motorcycle pair has its own).
        from ..demo import DEMO_SYNTHETIC_FRAMES, synthetic_frames
        frames = synthetic_frames(DEMO_SYNTHETIC_FRAMES)
        pairs = [(f.left, f.right) for f in frames]
        camera = frames[0].camera
    else:
        if not args.left or len(args.left) != len(args.right or []):
            raise ConfigurationError("give as many --right images as --left images (or --demo)")
        pairs = [(read_image(l), read_image(r)) for l, r in zip(args.left, args.right)]
        camera = _camera(args, pairs[0][0].shape[1], pairs[0][0].shape[0])
    count = make_bag(args.out, pairs, camera, args.rate, args.namespace, args.frame_id,
                     storage=args.storage, codec=args.compressed)
    images = f"{args.compressed} CompressedImage" if args.compressed else "Image"
    print(f"wrote {args.out}: {count} stereo sets ({images}) at {args.rate} Hz under "
          f"{args.namespace}/")
    return 0


def _with_node(name: str, work) -> int:
    rclpy.init(args=tool_arguments())
    node = rclpy.create_node(name)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return work(node, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        with bounded_teardown():
            node.destroy_node()
            rclpy.try_shutdown()


def cmd_play(args: argparse.Namespace) -> int:
    def work(node, stop) -> int:
        played = play_bag(node, args.bag, args.rate, args.loop, args.clock, stop,
                          wait_for_subscribers_s=args.wait, ack_timeout_s=args.ack_timeout)
        print(f"played {played.sent} messages from {args.bag}")
        if played.unacknowledged:
            print(f"warning: a reliable subscriber had not acknowledged every message within "
                  f"{args.ack_timeout:g} s on {', '.join(played.unacknowledged)}", file=sys.stderr)
        return 0
    return _with_node("stereo_depth_bag_player", work)


def _wait_for_publishers(node, executor, topics: list[str], stop: threading.Event) -> None:
    """Spin (recording what arrives) until every topic has a publisher, PUBLISHER_WAIT_S has
    passed or `stop` is set; warn naming the topics still without one when the time ran out."""
    print(f"waiting up to {PUBLISHER_WAIT_S:g} s for a publisher on each of "
          f"{', '.join(topics)}", flush=True)
    ready_by = time.monotonic() + PUBLISHER_WAIT_S
    missing = topics
    while missing and time.monotonic() < ready_by and not stop.is_set():
        executor.spin_once(timeout_sec=0.05)
        missing = [topic for topic in topics if not node.count_publishers(topic)]
    if missing and not stop.is_set():
        print(f"warning: no publisher on {', '.join(missing)} after {PUBLISHER_WAIT_S:g} s; "
              f"recording anyway", file=sys.stderr, flush=True)


def cmd_record(args: argparse.Namespace) -> int:
    check_new_bag(args.out)  # before DDS starts
    namespace = args.namespace.rstrip("/")
    topics = {f"{namespace}/{t}": msgtype_name(kind) for t, kind in OUTPUT_TYPES.items()}

    def work(node, stop) -> int:
        from rclpy.executors import SingleThreadedExecutor
        recorder = Recorder(node, args.out, topics, args.storage)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        # Announce once the publishers are known, so that a caller can start playing then; the
        # duration counts from here.
        _wait_for_publishers(node, executor, list(topics), stop)
        print(f"recording {', '.join(topics)}", flush=True)
        deadline = time.monotonic() + args.duration if args.duration else None
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline) and \
                (not args.count or recorder.count < args.count):
            executor.spin_once(timeout_sec=0.05)
        recorder.close()
        executor.shutdown()
        print(f"recorded {recorder.count} messages into {args.out}")
        return 0
    return _with_node("stereo_depth_bag_recorder", work)


def cmd_process(args: argparse.Namespace) -> int:
    from ..checkpoints import weights_and_range

    check_new_bag(args.out)  # before the network loads
    weights, max_disparity = weights_and_range(args.model, args.weights, args.max_disparity)
    estimator = StereoEstimator(args.model, weights, max_disparity, args.device)
    counts = process_bag(args.bag, args.out, estimator, namespace=args.namespace,
                         storage=args.storage, copy_inputs=args.copy_inputs,
                         rectify=args.rectify)
    copied = f" and {counts['copied']} copied input messages" if args.copy_inputs else ""
    print(f"processed {counts['sets']} stereo sets ({counts['rejected']} rejected, "
          f"{counts['unmatched']} unmatched messages); wrote {counts['messages']} output "
          f"messages{copied} into {args.out}")
    return 0


def add_bag_commands(commands: argparse._SubParsersAction, backends: tuple[str, ...]) -> None:
    bag = commands.add_parser("bag", help="rosbag2 tools (make, play, record, process)")
    kinds = bag.add_subparsers(dest="bag_command", required=True)

    make = kinds.add_parser("make", help="a rosbag2 from stereo pairs and calibration")
    make.add_argument("out", type=Path)
    make.add_argument("--left", nargs="+", type=Path)
    make.add_argument("--right", nargs="+", type=Path)
    make.add_argument("--demo", action="store_true", help="the embedded demo sequence instead")
    make.add_argument("--calib", type=Path, help="Middlebury 2014 / ETH3D calib.txt")
    make.add_argument("--focal", type=float)
    make.add_argument("--baseline", type=float, help="metres")
    make.add_argument("--rate", type=above_zero("rate (Hz)"), default=10.0, help="Hz")
    make.add_argument("--namespace", default="/stereo")
    make.add_argument("--frame-id", default="left_camera_optical_frame")
    make.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    make.add_argument("--compressed", choices=("jpeg", "png"),
                      help="store images as CompressedImage on <image topic>/compressed")
    make.set_defaults(func=cmd_make)

    play = kinds.add_parser("play", help="publish a bag with rclpy, original stamps kept")
    play.add_argument("bag", type=Path)
    play.add_argument("--rate", type=above_zero("rate (a speed factor)"), default=1.0)
    play.add_argument("--loop", action="store_true")
    play.add_argument("--clock", action="store_true", help="publish /clock from bag time")
    play.add_argument("--wait", type=float, default=5.0,
                      help="seconds to wait for a subscriber on every topic before playing")
    play.add_argument("--ack-timeout", type=float, default=5.0,
                      help="seconds to wait at the end until reliable subscribers have "
                           "acknowledged every message")
    play.set_defaults(func=cmd_play)

    record = kinds.add_parser("record", help="record the node's outputs into a bag")
    record.add_argument("out", type=Path)
    record.add_argument("--namespace", default="/stereo",
                        help="the node's namespace (default /stereo; / for a node without one)")
    record.add_argument("--duration", type=above_zero("duration (s)"),
                        help=f"seconds from when every output has a publisher or "
                             f"{PUBLISHER_WAIT_S:g} s have passed (default: until Ctrl-C)")
    record.add_argument("--count", type=count_at_least(1), help="stop after this many messages")
    record.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    record.set_defaults(func=cmd_record)

    process = kinds.add_parser("process", help="run the node's processing on a bag, offline")
    process.add_argument("bag", type=Path)
    process.add_argument("out", type=Path)
    process.add_argument("--model", default="psmnet_dws", choices=backends)
    process.add_argument("--weights", default="", help="default: the shipped weights")
    process.add_argument("--max-disparity", type=int, default=0,
                         help="default: the weights' value (192 for sgbm)")
    process.add_argument("--device", default="auto")
    process.add_argument("--namespace", help="input prefix (default: found in the bag)")
    process.add_argument("--copy-inputs", action="store_true")
    process.add_argument("--rectify", action="store_true",
                         help="inputs are raw (left/image_raw ...): rectify from camera_info")
    process.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    process.set_defaults(func=cmd_process)

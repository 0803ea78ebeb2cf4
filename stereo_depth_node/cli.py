"""`stereo-depth`: the command line of the package (infer, params, export, train, eval, average,
ship, paper-comparison, bag, demo, bench)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

from .errors import ConfigurationError, InputError, ros_missing

DEFAULT_MODEL = "psmnet_dws"
DEFAULT_STEREO_EVAL = Path("../shared/data/stereo_eval")


def _add_model_options(parser: argparse.ArgumentParser, backends: tuple[str, ...]) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL, choices=backends,
                        help="the network" + (", or sgbm (OpenCV's semi-global matching, no "
                                              "weights)" if "sgbm" in backends else ""))
    parser.add_argument("--weights", default="shipped",
                        help="'shipped' (the package's weights for --model), 'none' (initial "
                             "weights) or a checkpoint file (ours or public PSMNet)")
    parser.add_argument("--max-disparity", type=int, default=0,
                        help="0: the value recorded in the weights (192 when none is)")
    parser.add_argument("--align-corners", action="store_true",
                        help="align_corners=True upsampling, as some published weights expect")


def _weights_and_range(args: argparse.Namespace) -> tuple[Path | None, int]:
    from .checkpoints import weights_and_range

    return weights_and_range(args.model, args.weights, args.max_disparity)


def _notice(command: str) -> Callable[[str], None]:
    """Where a command's one-line notices go: stderr, so stdout stays the command's result."""
    return lambda text: print(f"stereo-depth {command}: note: {text}", file=sys.stderr)


def _add_device_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "fp16", "bf16"),
                        help="auto: bf16 (fp16 where bf16 is missing) on CUDA, fp32 on the CPU; "
                             "fp16 needs CUDA")


def _make_folder(folder: Path) -> None:
    """Make an output folder before the work, not after it. The parse-time check (_creatable)
    cannot foresee every refusal: root passes os.access under /proc, and a name can be too
    long."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"cannot create the output folder {os.fspath(folder)!r} "
                                 f"({exc.strerror or exc})") from exc


def cmd_infer(args: argparse.Namespace) -> int:
    from .calibration import camera_from_options
    from .estimator import StereoEstimator
    from .images import as_rgb, read_image
    from .outputs import write_result

    left, right = read_image(args.left), read_image(args.right)
    camera = camera_from_options(args.calib, args.focal, args.baseline, left.shape[1],
                                 left.shape[0])
    weights, max_disparity = _weights_and_range(args)
    estimator = StereoEstimator(args.model, weights, max_disparity, args.device,
                                args.precision, args.input_scale, args.lr_check,
                                args.lr_threshold, args.align_corners, _notice("infer"))
    _make_folder(args.out)
    result = estimator.estimate(left, right)
    # The colour scale spans the range searched, in input pixels (max_disparity counts them at
    # the matching size).
    written = write_result(args.out, as_rgb(left, "left"), result,
                           max_disparity / args.input_scale, camera)
    timings = ", ".join(f"{k} {v:.1f} ms" for k, v in result.timings_ms.items())
    print(f"{estimator.model_name} ({weights.name if weights else 'no weights file'}, max "
          f"disparity {max_disparity}) on {estimator.device}: "
          f"{timings}")
    for path in written:
        print(f"wrote {path}")
    return 0


def cmd_params(_args: argparse.Namespace) -> int:
    from .models import NEURAL_MODELS, build_model
    from .models.parameter_count import count_parameters, count_parameters_per_call

    paper_claims = {"psmnet": 8_564_320, "psmnet_dws": 5_999_392}
    print("| model | parameters held | per-call count (paper's convention) | feature extractor |"
          " paper's count |")
    print("|---|---|---|---|---|")
    for name in sorted(NEURAL_MODELS):
        model = build_model(name)
        print(f"| {name} | {count_parameters(model):,} | {count_parameters_per_call(model):,} | "
              f"{count_parameters(model.feature_extraction):,} | {paper_claims[name]:,} |")
    print("The per-call count counts the shared feature extractor once per view, as the "
          "paper's torchsummary-style counter does.")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .checkpoints import load_model, range_notice
    from .export import export_onnx, onnx_parity, require_packages

    require_packages(args.check)
    weights, max_disparity = _weights_and_range(args)
    model = load_model(weights, args.model, max_disparity, args.align_corners)
    notice = range_notice(weights, max_disparity)
    if notice:
        _notice("export")(notice)
    _make_folder(args.out.parent)
    size = export_onnx(model, args.out, args.height, args.width)
    print(f"wrote {args.out}: inputs left/right 1x3x{size[0]}x{size[1]} (normalised RGB, "
          f"zero-padded on top and right), outputs disparity/confidence 1x{size[0]}x{size[1]}")
    if args.check:
        diffs = onnx_parity(model, args.out)
        print("onnxruntime vs torch, max abs diff: "
              + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
    return 0


def cmd_bench_estimator(args: argparse.Namespace) -> int:
    from .bench import ESTIMATOR_SIZES, bench_estimator, format_table, write_json

    sizes = args.sizes or list(ESTIMATOR_SIZES)
    print(f"estimator benchmark, max disparity {args.max_disparity}, "
          f"{args.repeats} timed runs after {args.warmup} warm-up")
    result = bench_estimator(args.backends, sizes, args.max_disparity, args.device,
                             args.precision, args.warmup, args.repeats,
                             tuple(args.memory_formats))
    print()
    print(format_table(result))
    write_json(result, args.json)
    print(f"wrote {args.json}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, train

    if args.resume is not None and (args.seed is not None or args.init_weights is not None):
        raise ConfigurationError("--resume continues a run on its own seed and from its own "
                                 "start; --seed and --init-weights begin a new run (give "
                                 "--init-weights the checkpoint and a new --out-dir)")
    overrides = {"model": args.model, "steps": args.steps, "out_dir": args.out_dir,
                 "device": args.device, "time_budget_s": args.time_budget,
                 "init_weights": args.init_weights, "dataset": args.dataset, "seed": args.seed}
    config = (TrainConfig.from_yaml(args.config, **overrides) if args.config
              else TrainConfig(**{k: v for k, v in overrides.items() if v is not None}))
    summary = train(config, resume=args.resume)
    print(f"trained {config.model} to step {summary['step']} ({summary['samples_seen']} samples, "
          f"{summary['wall_time_s']:.0f} s on {summary['device']}, {summary['precision']}); "
          f"checkpoint {summary['checkpoint']}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .bench import machine_description
    from .evaluate import Method, evaluate, format_markdown, write_result
    from .model_card import update_card_evaluations

    data = args.data
    if data is None and not args.dataset:
        data = DEFAULT_STEREO_EVAL
    if args.no_real:
        data = None
    if data is None and not args.dataset and not args.synthetic and not args.synthetic_rich:
        raise ConfigurationError("nothing to score: --no-real without --dataset, and no "
                                 "synthetic scenes (--synthetic 0)")
    # The default holds beside a checkout only; elsewhere the user never typed this path, so the
    # refusal says where it came from and what to give instead.
    if args.data is None and data is not None and not data.is_dir():
        raise ConfigurationError(f"dataset folder {os.fspath(data)!r} (--data's default, "
                                 f"relative to the current folder) does not exist: name the "
                                 f"stereo_eval folder with --data DIR, or give --no-real to "
                                 f"score only the synthetic sets")
    # Checked before the evaluation, which takes minutes, rather than after it.
    if args.update_cards and not args.update_cards.is_dir():
        raise ConfigurationError(f"--update-cards: no folder {os.fspath(args.update_cards)!r}")
    result = evaluate([Method(spec) for spec in args.methods], data, args.synthetic,
                      args.device, rich_count=args.synthetic_rich, datasets=args.dataset)
    # Recorded with the numbers, so that a card or a README table says how to reproduce them.
    result["command"] = " ".join(
        ["stereo-depth eval --methods", *args.methods,
         *(["--no-real"] if data is None else ["--data", str(data)]),
         *(f"--dataset {kind}:{root}" for kind, root in args.dataset),
         "--synthetic", str(args.synthetic),
         *(["--synthetic-rich", str(args.synthetic_rich)] if args.synthetic_rich else []),
         "--device", args.device])
    result["machine"] = machine_description()
    print()
    print(format_markdown(result))
    write_result(result, args.json, args.markdown)
    print(f"wrote {args.json}" + (f" and {args.markdown}" if args.markdown else ""))
    if args.update_cards:
        cards = update_card_evaluations(result, args.update_cards)
        for card in cards:
            print(f"updated the evaluation in {card}")
        if not cards:
            print(f"no model card in {os.fspath(args.update_cards)!r} describes weights this "
                  f"evaluation scored (a card is matched by its weights file's sha256); none "
                  f"updated", file=sys.stderr)
    return 0


def cmd_ship(args: argparse.Namespace) -> int:
    from .model_card import ship

    weights, card = ship(args.checkpoint, args.name, args.evaluation, args.out_dir,
                         args.loss_curve, args.notes, args.loss_plot)
    print(f"wrote {weights} ({weights.stat().st_size / 2**20:.1f} MiB) and {card}")
    if args.loss_plot:
        print(f"wrote {args.loss_plot}")
    return 0


def cmd_paper_comparison(args: argparse.Namespace) -> int:
    from .paper_comparison import comparison_markdown, read_results

    markdown = comparison_markdown(read_results(args.results))
    _make_folder(args.out.parent)
    args.out.write_text(markdown)
    print(f"wrote {args.out}")
    return 0


def cmd_average(args: argparse.Namespace) -> int:
    from .averaging import average_checkpoints

    out = average_checkpoints(args.checkpoints, args.out)
    print(f"wrote {out}: the mean of {len(args.checkpoints)} checkpoints' weights")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        from .ros.demo import format_report, run_demo
    except ImportError as exc:
        return _needs_ros(exc)
    report = run_demo(args.out, args.models, args.device)
    print(format_report(report))
    print(f"wrote {args.out}/: per model the motorcycle's disparity and depth figures, its "
          f"coloured PLY cloud (from points2) and the node's log; report.json, report.md")
    return 0


def _needs_ros(exc: ImportError) -> int:
    raise ros_missing(exc)


def cmd_bench_inputs(args: argparse.Namespace) -> int:
    from .bench import INPUT_SIZES, INPUT_TABLE_HEADER, bench_inputs, write_json

    sizes = args.sizes or list(INPUT_SIZES)
    print(f"input benchmark (JPEG quality {args.quality}, both views per set)")
    print(INPUT_TABLE_HEADER)
    result = bench_inputs(sizes, args.repeats, args.quality, args.device)
    write_json(result, args.json)
    print(f"wrote {args.json}")
    return 0


def cmd_bench_generator(args: argparse.Namespace) -> int:
    from .bench import bench_generator, write_json

    result = bench_generator(args.height, args.width, args.batch_size, args.batches, args.device)
    print("| generator | size | device | batch | median s per batch | samples/s |")
    print("|---|---|---|---|---|---|")
    print(f"| synthetic | {args.width}x{args.height} | {result['device']} | {args.batch_size} | "
          f"{result['median_batch_s']:.3f} | {result['samples_per_s']:.2f} |")
    write_json(result, args.json)
    print(f"wrote {args.json}")
    return 0


def _creatable(folder: Path, text: str) -> None:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: {os.fspath(existing)!r} is "
                                         f"not a writable folder")


def _unwritable(text: str, exc: OSError) -> argparse.ArgumentTypeError:
    # Path.exists and is_dir pass on errors other than a missing file: a name too long, say.
    return argparse.ArgumentTypeError(f"cannot write {text!r}: {exc.strerror or exc}")


def dataset_spec(text: str) -> tuple[str, Path]:
    """argparse type of KIND:PATH, the kind checked before any work."""
    from .data.datasets import dataset_argument
    try:
        return dataset_argument(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def dataset_text(text: str) -> str:
    """argparse type of train's KIND:PATH: checked as eval's is, kept as the text the settings
    record."""
    dataset_spec(text)
    return text


def output_file(text: str) -> Path:
    """argparse type of a file a command writes: checked before the work, not after it."""
    path = Path(text)
    try:
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text!r} is a folder; give a file name")
        _creatable(path.parent, text)
    except OSError as exc:
        raise _unwritable(text, exc) from None
    return path


def output_folder(text: str) -> Path:
    """argparse type of a folder a command writes into (made if missing)."""
    path = Path(text)
    try:
        if path.exists() and not path.is_dir():
            raise argparse.ArgumentTypeError(f"{text!r} exists and is not a folder")
        _creatable(path, text)
    except OSError as exc:
        raise _unwritable(text, exc) from None
    return path


def image_side(text: str) -> int:
    """argparse type of an export size in px (MIN_SIDE_PX and up)."""
    from .images import MIN_SIDE_PX
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of px") from None
    if value < MIN_SIDE_PX:
        raise argparse.ArgumentTypeError(f"{value} px is below the {MIN_SIDE_PX} px the "
                                         f"networks take")
    return value


def build_parser() -> argparse.ArgumentParser:
    from . import bench_memory, device_bench, train_bench
    from .bench_cli import add_memory_formats, count_at_least, parse_size
    from .estimator import BACKENDS
    from .images import MAX_INPUT_SCALE
    from .models import NEURAL_MODELS
    from .ros import bench_live, bench_node

    parser = argparse.ArgumentParser(prog="stereo-depth", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    infer = commands.add_parser("infer", help="disparity, depth and a point cloud for one pair")
    infer.add_argument("left", type=Path, help="left image of a rectified pair")
    infer.add_argument("right", type=Path, help="right image, the same size")
    _add_model_options(infer, BACKENDS)
    _add_device_options(infer)
    infer.add_argument("--input-scale", type=float, default=1.0,
                       help=f"resize the pair by this factor before matching, in (0, "
                            f"{MAX_INPUT_SCALE:g}]; disparity comes back in input px")
    infer.add_argument("--lr-check", action="store_true", help="mask left-right inconsistent px")
    infer.add_argument("--lr-threshold", type=float, default=1.0,
                       help="px (input) by which --lr-check lets the two views disagree")
    infer.add_argument("--calib", type=Path, help="Middlebury 2014 / ETH3D calib.txt")
    infer.add_argument("--focal", type=float, help="focal length in px (with --baseline)")
    infer.add_argument("--baseline", type=float, help="baseline in metres (with --focal)")
    infer.add_argument("--out", type=output_folder, required=True,
                       help="folder for the disparity files (and, with a calibration, depth "
                            "and cloud); made if missing")
    infer.set_defaults(func=cmd_infer)

    params = commands.add_parser("params", help="parameter counts of the networks")
    params.set_defaults(func=cmd_params)

    export = commands.add_parser("export", help="ONNX export at a fixed input size")
    _add_model_options(export, tuple(sorted(NEURAL_MODELS)))
    export.add_argument("--height", type=image_side, default=480,
                        help="image height in px (the graph's input: padded to a multiple of 16)")
    export.add_argument("--width", type=image_side, default=640,
                        help="image width in px (padded as --height is)")
    export.add_argument("--out", type=output_file, required=True, help="the .onnx file to write")
    export.add_argument("--check", action="store_true", help="compare with onnxruntime")
    export.set_defaults(func=cmd_export)

    train = commands.add_parser("train", help="train a network (the paper's recipe by default)")
    train.add_argument("--config", type=Path, help="YAML with TrainConfig fields")
    train.add_argument("--model", choices=tuple(sorted(NEURAL_MODELS)))
    train.add_argument("--steps", type=int)
    train.add_argument("--time-budget", type=float, help="stop after this many seconds")
    train.add_argument("--device")
    train.add_argument("--out-dir")
    train.add_argument("--resume", type=Path, help="continue from this training checkpoint")
    train.add_argument("--init-weights", help="fine-tune from these weights")
    train.add_argument("--dataset", type=dataset_text,
                       help="fine-tune on KIND:PATH (e.g. kitti2015:/data/kitti)")
    train.add_argument("--seed", type=int, help="the synthetic data stream and initialisation "
                       "of a new run (a continuation on a new seed sees scenes its weights "
                       "have not); a resumed run keeps its own")
    train.set_defaults(func=cmd_train)

    evaluation = commands.add_parser("eval", help="methods side by side against ground truth")
    evaluation.add_argument("--methods", nargs="+",
                            default=["sgbm", "sgbm+fill", "psmnet", "psmnet_dws",
                                     "psmnet_dws+upscale"],
                            help="sgbm | sgbm+fill (holes filled with the background) | MODEL "
                                 "(shipped weights) | MODEL:none | MODEL:PATH | MODEL+upscale"
                                 "[:PATH] (small ranges matched on an enlarged pair)")
    evaluation.add_argument("--data", type=Path,
                            help=f"the stereo_eval folder (default {DEFAULT_STEREO_EVAL}, "
                                 f"unless --dataset is given)")
    evaluation.add_argument("--dataset", type=dataset_spec, action="append", default=[],
                            metavar="KIND:PATH",
                            help="also a dataset folder in its published layout (kitti2012, "
                                 "kitti2015, middlebury2003, middlebury2014, eth3d, sceneflow), "
                                 "read one pair at a time; repeatable")
    evaluation.add_argument("--no-real", action="store_true",
                            help="no stereo_eval folder (with no --dataset: synthetic only)")
    evaluation.add_argument("--synthetic", type=count_at_least(0), default=8,
                            help="size of the fixed synthetic test set (256x512)")
    evaluation.add_argument("--synthetic-rich", type=count_at_least(0), default=0,
                            help="size of a second one, drawn like the CPU continuation's "
                                 "training scenes (rich, ground planes; not augmented)")
    evaluation.add_argument("--device", default="auto")
    evaluation.add_argument("--json", type=output_file, default=Path("eval.json"))
    evaluation.add_argument("--markdown", type=output_file)
    evaluation.add_argument("--update-cards", type=Path, metavar="WEIGHTS_DIR",
                            help="write the result into the model cards (JSON) in this folder "
                                 "whose weights it scored, keeping the rest of each card")
    evaluation.set_defaults(func=cmd_eval)

    ship = commands.add_parser("ship", help="turn a training checkpoint into shipped weights "
                               "and a model card")
    ship.add_argument("checkpoint", type=Path)
    ship.add_argument("--name", required=True, help="file name under weights/, e.g. psmnet_dws")
    ship.add_argument("--evaluation", type=Path,
                      help="JSON of stereo-depth eval run on the shipped file (refused "
                           "without a row for these bytes)")
    ship.add_argument("--notes", default="", help="free text for the card (machine, caveats)")
    ship.add_argument("--loss-curve", type=Path, help="log.jsonl of the run (for the curve)")
    ship.add_argument("--loss-plot", type=output_file, help="also draw that curve into this PNG")
    ship.add_argument("--out-dir", type=output_folder,
                      default=Path(__file__).resolve().parent / "weights")
    ship.set_defaults(func=cmd_ship)

    average = commands.add_parser("average", help="the mean of a run's checkpoints' weights "
                                  "(to ship with `ship`)")
    average.add_argument("checkpoints", type=Path, nargs="+", help="in step order; the last "
                         "one's record (steps, samples, history) goes with the average")
    average.add_argument("--out", type=output_file, required=True)
    average.set_defaults(func=cmd_average)

    comparison = commands.add_parser(
        "paper-comparison", help="docs/paper_comparison.md from the device compare step's "
        "results.tar")
    comparison.add_argument("results", type=Path, help="results.tar of "
                            "scripts/device_session.sh compare")
    comparison.add_argument("--out", type=output_file, default=Path("docs/paper_comparison.md"))
    comparison.set_defaults(func=cmd_paper_comparison)

    demo = commands.add_parser("demo", help="the node over DDS, one process per backend, on the "
                               "embedded motorcycle pair and 8 synthetic scenes, scored against "
                               "ground truth")
    demo.add_argument("--models", nargs="+", default=["sgbm", DEFAULT_MODEL], choices=BACKENDS)
    demo.add_argument("--device", default="auto")
    demo.add_argument("--out", type=output_folder, default=Path("demo_output"))
    demo.set_defaults(func=cmd_demo)

    try:
        from .ros.bag_cli import add_bag_commands
    except ImportError as exc:  # rclpy, message packages or rosbags missing
        missing = commands.add_parser("bag", help="rosbag2 tools (needs the 'ros' extra)")
        missing.add_argument("rest", nargs=argparse.REMAINDER)
        missing.set_defaults(func=lambda _args, error=exc: _needs_ros(error))
    else:
        add_bag_commands(commands, BACKENDS)

    bench = commands.add_parser("bench", help="benchmarks (table + JSON)")
    bench_kinds = bench.add_subparsers(dest="kind", required=True)
    estimator = bench_kinds.add_parser("estimator", help="latency per backend and image size")
    estimator.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    estimator.add_argument("--sizes", nargs="+", type=parse_size, metavar="WIDTHxHEIGHT",
                           help="default: 320x240 640x480 1242x375")
    estimator.add_argument("--max-disparity", type=int, default=192)
    _add_device_options(estimator)
    estimator.add_argument("--warmup", type=count_at_least(0), default=1)
    estimator.add_argument("--repeats", type=count_at_least(1), default=3)
    add_memory_formats(estimator)
    estimator.add_argument("--json", type=Path, default=Path("bench_estimator.json"))
    estimator.set_defaults(func=cmd_bench_estimator)
    inputs = bench_kinds.add_parser("inputs", help="JPEG decoding and rectification per set")
    inputs.add_argument("--sizes", nargs="+", type=parse_size, metavar="WIDTHxHEIGHT",
                        help="default: 640x480 1280x720")
    inputs.add_argument("--quality", type=int, default=95, help="JPEG quality of the input")
    inputs.add_argument("--repeats", type=count_at_least(1), default=20)
    inputs.add_argument("--device", default="cpu",
                        help="also rectify with torch on this device when it is a GPU")
    inputs.add_argument("--json", type=Path, default=Path("bench_inputs.json"))
    inputs.set_defaults(func=cmd_bench_inputs)
    generator = bench_kinds.add_parser("generator", help="synthetic training data, samples/s")
    generator.add_argument("--height", type=int, default=256)
    generator.add_argument("--width", type=int, default=512)
    generator.add_argument("--batch-size", type=count_at_least(1), default=4)
    generator.add_argument("--batches", type=count_at_least(1), default=5)
    generator.add_argument("--device", default="auto")
    generator.add_argument("--json", type=Path, default=Path("bench_generator.json"))
    generator.set_defaults(func=cmd_bench_generator)
    bench_memory.register(bench_kinds)   # each case in its own process: peak resident memory
    device_bench.register(bench_kinds)   # networks alone: eager / graphs / compile x precision
    bench_node.register(bench_kinds)     # message in -> all output messages out, per stage
    bench_live.register(bench_kinds)     # the node in its own process over DDS
    train_bench.register(bench_kinds)    # a training step per phase, and a profile
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigurationError, InputError, OSError) as exc:  # OSError: a file it cannot write
        print(f"stereo-depth {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

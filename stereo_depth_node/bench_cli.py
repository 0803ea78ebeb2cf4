"""What the `stereo-depth bench` kinds share on the command line: image sizes, the options of the
node benchmarks, and how a kind is registered with the CLI and run as a module of its own (the
device script runs them as `python -m ...`)."""
from __future__ import annotations

import argparse
from typing import Callable

Run = Callable[[argparse.Namespace], int]
AddArguments = Callable[[argparse.ArgumentParser], None]


def parse_size(text: str) -> tuple[int, int]:
    """'640x480' -> (640, 480), as an argparse type."""
    try:
        width, height = (int(value) for value in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT (e.g. 640x480), got {text!r}") from None
    return width, height


def count_at_least(minimum: int) -> Callable[[str], int]:
    """argparse type of a count (repetitions, scenes) that must be at least `minimum`."""
    def count(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        return value
    return count


def add_sizes(parser: argparse.ArgumentParser, default: list[tuple[int, int]] | None) -> None:
    parser.add_argument("--sizes", nargs="+", type=parse_size, default=default,
                        metavar="WIDTHxHEIGHT")


def add_node_arguments(parser: argparse.ArgumentParser, sizes: list[tuple[int, int]]) -> None:
    """The network, image sizes, range, device and precision, as the node's parameters."""
    parser.add_argument("--model", default="psmnet_dws",
                        choices=("psmnet_dws", "psmnet", "sgbm"))
    add_sizes(parser, sizes)
    parser.add_argument("--max-disparity", type=int, default=192)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "fp16", "bf16"))


def add_memory_formats(parser: argparse.ArgumentParser) -> None:
    """The networks' weight orders to time, one after the other (neural.MEMORY_FORMATS)."""
    from .neural import MEMORY_FORMATS

    parser.add_argument("--memory-formats", nargs="+", default=["auto"], choices=MEMORY_FORMATS,
                        metavar="FORMAT",
                        help="the networks' weight orders to time: auto (channels_last on "
                             "the CPU, contiguous on CUDA), contiguous, channels_last")


def register_kind(subparsers: argparse._SubParsersAction, name: str, help_text: str,
                  add_arguments: AddArguments, run: Run) -> None:
    """Add one kind to the `bench` subparsers group."""
    parser = subparsers.add_parser(name, help=help_text)
    add_arguments(parser)
    parser.set_defaults(func=run)


def module_main(prog: str, description: str | None, add_arguments: AddArguments, run: Run,
                argv: list[str] | None) -> int:
    """A kind as `python -m its.module`."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(parser)
    return run(parser.parse_args(argv))

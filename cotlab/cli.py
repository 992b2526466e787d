"""The `cotlab` command line: one subcommand per verb.

A verb is a function ``add_<verb>(subparsers)`` that adds its parser and sets ``handler`` (called with the parsed
arguments, returning an exit code); list it in ``VERBS``. Heavy imports happen inside handlers, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from cotlab import __version__
from cotlab.experiments.tiers import TIERS


def _reproduce(args: argparse.Namespace) -> int:
    from cotlab.experiments.reproduce import ReproduceError, reproduce

    try:
        reproduce(args.tier, root=args.root, build_dir=args.build_dir, chapters=args.chapter)
    except ReproduceError as err:
        print(f"cotlab reproduce: {err}", file=sys.stderr)
        return 1
    return 0


def add_reproduce(subparsers: argparse._SubParsersAction) -> None:
    from cotlab.experiments.reproduce import CHAPTERS

    parser = subparsers.add_parser(
        "reproduce",
        help="execute every chapter notebook with a tier's parameters, then build the book",
        description="Execute the notebooks (papermill) with the tier's parameters and build the Jupyter Book "
        "into <build-dir>/html.",
    )
    parser.add_argument(
        "--tier",
        choices=TIERS,
        default="default",
        help="smoke: minutes, CI; default: the book on a 2-core CPU; paper: GPUs and real models (default: %(default)s)",
    )
    parser.add_argument("--root", default=".", help="repository root (default: %(default)s)")
    parser.add_argument(
        "--build-dir", default="_build", help="build directory, relative to the root (default: %(default)s)"
    )
    parser.add_argument(
        "--chapter",
        action="append",
        choices=CHAPTERS,
        help="execute only this chapter (repeatable); the others must have been executed before",
    )
    parser.set_defaults(handler=_reproduce)


# Later verbs (pretrain, train, bench, ...) are added here.
VERBS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_reproduce,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cotlab", description="DPO vs GRPO for autoregressive image generation, reproduced."
    )
    parser.add_argument("--version", action="version", version=f"cotlab {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add_verb in VERBS:
        add_verb(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())

"""``gt-convert``: one command line over the gt_toolkit API.

Each subcommand lives in its own module under ``gt_toolkit.cli`` and exposes
``register(subparsers)``; :data:`COMMAND_MODULES` lists them. The CLI only converts strings to
API values and prints; errors the toolkit raises on purpose (:class:`GtToolkitError`) become
one line on stderr and exit code 1, anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from gt_toolkit.errors import GtToolkitError, ValidationError

__all__ = ["COMMAND_MODULES", "build_parser", "main"]

# One module per family of subcommands; each defines register(subparsers).
COMMAND_MODULES: tuple[str, ...] = (
    "manifest",
    "evaluate",
    "review",
    "template",
    "convert",
    "consolidate",
    "agreement",
    "demo",
)


class _Parser(argparse.ArgumentParser):
    """argparse with gt-convert's error contract: one line on stderr and exit code 1.

    argparse's own ``error`` prints the whole usage and exits 2; subparsers inherit this class.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Version(argparse.Action):
    """``--version``: the installed package's version, looked up only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(
            option_strings, dest=argparse.SUPPRESS, nargs=0, help="print the version and exit"
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        from gt_toolkit import __version__

        print(f"{parser.prog} {__version__}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The full ``gt-convert`` parser with every registered subcommand."""
    parser = _Parser(
        prog="gt-convert",
        description="Ground Truth manifests, consolidation, conversion and review.",
    )
    parser.add_argument("--version", action=_Version)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``gt-convert``; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except GtToolkitError as exc:
        # One line, whatever the message.
        if isinstance(exc, ValidationError):
            text = exc.one_line()
        else:
            text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"gt-convert: {type(exc).__name__}: {text}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gt-convert: interrupted", file=sys.stderr)
        return 130
    return code

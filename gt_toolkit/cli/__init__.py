"""``gt-convert``: one command line over the gt_toolkit API.

Each subcommand lives in its own module under ``gt_toolkit.cli`` and exposes
``register(subparsers)``; :data:`COMMAND_MODULES` lists them. The CLI only converts strings to
API values and prints; errors the toolkit raises on purpose (:class:`GtToolkitError`) and
faults of the machine (a full disk, a permission, a full temporary folder) become one line on
stderr and exit code 1; anything else is a bug and keeps its traceback. Ctrl-C exits 130,
``kill`` (SIGTERM, as ``docker stop`` sends) 143 and a closed stdout pipe 141, as a shell
reports a process those signals stopped; the first two clean up what the run staged.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sqlite3
import sys
import tempfile
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any, NoReturn

from gt_toolkit.errors import GtToolkitError, ValidationError
from gt_toolkit.text import not_utf8_at

__all__ = [
    "COMMAND_MODULES",
    "EXIT_BROKEN_PIPE",
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "build_parser",
    "main",
]

EXIT_INTERRUPTED = 130
"""Ctrl-C: 128 + SIGINT, what a shell reports for a process the signal stopped."""
EXIT_BROKEN_PIPE = 141
"""The reader of stdout went away (``| head``): 128 + SIGPIPE."""
EXIT_TERMINATED = 143
"""``kill`` or ``docker stop``: 128 + SIGTERM."""


class _Terminated(BaseException):
    """SIGTERM as an exception, so the ``with`` blocks that stage outputs remove them.

    Not an ``Exception``: no ``except Exception`` may swallow it, as none swallows Ctrl-C.
    """


def _terminate(signum: int, frame: FrameType | None) -> NoReturn:
    raise _Terminated


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


# The arguments that name a file, folder or prefix (each subcommand's ``dest``).
_PATHS = frozenset(
    {
        "answers_folder",
        "coco_reference",
        "full_instructions_file",
        "images_dir",
        "input",
        "label_file",
        "manifest",
        "out",
        "output",
        "predictions",
        "preview",
        "preview_out",
        "quality",
        "reference",
        "rejects",
        "samples",
        "short_instructions_file",
        "source",
        "src",
        "summary",
        "worker_model",
        "worker_responses",
        "write_label_config",
    }
)

# Repeated pairs whose first value names a file (template's ``--good IMAGE DESCRIPTION``).
_PAIRED_PATHS = frozenset({"good", "bad"})


class _Parser(argparse.ArgumentParser):
    """argparse with gt-convert's error contract: one line on stderr and exit code 1.

    argparse's own ``error`` prints the whole usage and exits 2; subparsers inherit this class.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Also refuse an empty path: ``""`` named the working folder.

        ``-o ""`` made split write its manifests into the working folder, and an empty
        input read as "cannot read : Is a directory".
        """
        parsed, extras = super().parse_known_args(args, namespace)
        for action in self._actions:
            value = getattr(parsed, action.dest, None)
            if action.dest in _PAIRED_PATHS and any(pair[0] == "" for pair in value or ()):
                value = ""  # --good "" DESCRIPTION read the working folder as the image
            if (action.dest in _PATHS or action.dest in _PAIRED_PATHS) and value == "":
                name = "/".join(action.option_strings) or action.metavar or action.dest
                self.error(f"argument {name}: the path is empty")
        return parsed, extras


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
    bad = _not_utf8(sys.argv[1:] if argv is None else argv)
    if bad:  # before anything is read or written: the run could not record these names
        problems = [
            f"{os.fsencode(arg)!r} holds {char!r}, not valid Unicode (bytes that are not UTF-8;"
            " the outputs record paths and names as JSON text)"
            for arg, char in bad
        ]
        text = ValidationError(problems, what="arguments").one_line()
        print(f"gt-convert: ValidationError: {text}", file=sys.stderr)
        return 1
    # Python's default for SIGTERM is to die on the spot, leaving staged files and folders
    # to a later run's sweep; only the main thread may set a handler.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _run(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _not_utf8(argv: Sequence[str]) -> list[tuple[str, str]]:
    """The arguments that are not UTF-8, each with its first such character.

    A shell passes bytes, which Python escapes (PEP 383). Every summary and rejects file
    records its paths as JSON text: a run given such a name wrote its outputs, then stopped
    with a traceback writing the summary, leaving them.
    """
    return [(arg, arg[at]) for arg in argv if (at := not_utf8_at(arg)) is not None]


def _run(args: argparse.Namespace) -> int:
    """The subcommand, with gt-convert's exit codes for every way it can end."""
    try:
        code: int = args.func(args)
    except GtToolkitError as exc:
        # One line, whatever the message.
        if isinstance(exc, ValidationError):
            text = exc.one_line()
        else:
            text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"gt-convert: {type(exc).__name__}: {text}", file=sys.stderr)
        _print_notes(exc)
        return 1
    except BrokenPipeError:
        # Python would print a traceback flushing stdout at exit; point it at nothing instead.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        print(f"gt-convert: {type(exc).__name__}: {exc.strerror or exc}{where}", file=sys.stderr)
        _print_notes(exc)
        return 1
    except sqlite3.OperationalError as exc:
        if not _temporary_disk_fault(exc):
            raise
        print(
            f"gt-convert: the temporary index in {tempfile.gettempdir()} failed: {exc} "
            "(a full or read-only disk? TMPDIR moves it)",
            file=sys.stderr,
        )
        _print_notes(exc)
        return 1
    except KeyboardInterrupt as exc:
        print("gt-convert: interrupted", file=sys.stderr)
        _print_notes(exc)
        return EXIT_INTERRUPTED
    except _Terminated as exc:
        print("gt-convert: terminated", file=sys.stderr)
        _print_notes(exc)
        return EXIT_TERMINATED
    return code


def _print_notes(exc: BaseException) -> None:
    """What the run's clean-up added to the error, a line each.

    ``AllOrNone`` notes an earlier file it could not put back (and where its copy is kept,
    in a ``.kept`` folder no later run sweeps) and a file it could not remove: the one-line
    error left them out, so that copy went unsaid.
    """
    from gt_toolkit.text import printable

    for note in getattr(exc, "__notes__", None) or ():
        print(f"gt-convert: {printable(str(note))}", file=sys.stderr)


def _temporary_disk_fault(exc: sqlite3.OperationalError) -> bool:
    """True for SQLite's full-disk, I/O and cannot-open errors; SQL mistakes stay bugs.

    The one SQLite database is the crowd sources' scratch index in the temporary folder.
    """
    name = getattr(exc, "sqlite_errorname", "")
    return name.startswith(("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_CANTOPEN"))

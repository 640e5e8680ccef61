"""Text from anyone's files made safe to print on a terminal.

Used by every command that echoes labels, keys or reasons (``evaluate``, ``review``); it
lives here, not in one of them, so a command does not load another's module to print.
"""

from __future__ import annotations

__all__ = ["not_utf8_at", "printable", "utf8_text"]


def printable(text: str) -> str:
    r"""``text`` with line breaks, escapes and other invisible characters spelled out.

    Labels and source-refs come from anyone's files: printed as they are, a label
    ``"cat\nmean ..."`` added a row of its own to the class table, a terminal escape
    (``\x1b[2J``) cleared the screen, and a right-to-left override reordered the figures.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def not_utf8_at(text: str) -> int | None:
    """Where ``text`` first holds a character UTF-8 cannot write, or ``None`` if none.

    A file named in bytes that are not UTF-8 is read as surrogates (PEP 383); the outputs
    record names as JSON text and S3 keys are UTF-8, so each caller that takes such a name
    refuses it (an argument, a file it lists, a local key) in its own words.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def utf8_text(text: str) -> str:
    r"""``text`` with its surrogates written as escapes of the bytes they stand for.

    A file named in bytes that are not UTF-8 is read as surrogates (PEP 383), which JSON text
    cannot hold: a reject or failure naming it stopped a run with a traceback ('str is not
    valid UTF-8') as it was written. ``'r\udce9.json'`` becomes ``'r\\xe9.json'``.
    """
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that stands for no byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")

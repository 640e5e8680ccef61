"""Text from anyone's files made safe to print on a terminal.

Used by every command that echoes labels, keys or reasons (``evaluate``, ``review``); it
lives here, not in one of them, so a command does not load another's module to print.
"""

from __future__ import annotations

__all__ = ["printable"]


def printable(text: str) -> str:
    r"""``text`` with line breaks, escapes and other invisible characters spelled out.

    Labels and source-refs come from anyone's files: printed as they are, a label
    ``"cat\nmean ..."`` added a row of its own to the class table, a terminal escape
    (``\x1b[2J``) cleared the screen, and a right-to-left override reordered the figures.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)

"""How the targets write pixel values."""

from __future__ import annotations

__all__ = ["pixel"]


def pixel(x: float) -> int | float:
    """Whole pixel values as integers (how Ground Truth and most readers write them)."""
    return int(x) if float(x).is_integer() else round(x, 3)

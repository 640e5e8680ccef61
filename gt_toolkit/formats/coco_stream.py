"""The end of a COCO file written as a stream, in constant memory.

Writers put each image into the file as it comes and spill its annotations to a temporary
file; the annotations follow the images, then the categories, once every image is written
(``gt-convert coco`` and ``jumpstart-od``, and ``consolidate --output-format coco``).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from typing import IO, Any

import orjson

__all__ = ["close_coco"]


def close_coco(out: IO[bytes], annotations: IO[bytes], categories: Sequence[Any]) -> None:
    """Close the ``images`` list in ``out``; append the spilled ``annotations`` and categories."""
    out.write(b'],"annotations":[')
    annotations.seek(0)
    shutil.copyfileobj(annotations, out, 1 << 20)
    out.write(b'],"categories":' + orjson.dumps(list(categories)) + b"}\n")

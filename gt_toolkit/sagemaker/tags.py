"""AWS resource tags: the one place a ``{"key": "value"}`` mapping becomes a ``Tags`` list.

Every SageMaker request the toolkit builds (labeling, training, tuning, model, endpoint) takes
tags as a plain mapping; :func:`tag_list` writes the wire list and :func:`tag_problems` holds the
rule the service model cannot express: keys starting with ``aws:`` (in any case) are reserved
for AWS and refused by the service only after the call. Lengths and characters are checked by
the service model itself (:mod:`gt_toolkit.sagemaker.service_validation`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["RESERVED_TAG_PREFIX", "tag_list", "tag_problems"]

RESERVED_TAG_PREFIX: Final = "aws:"


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """``Tags`` as AWS reads them: ``[{"Key": ..., "Value": ...}]`` in the mapping's order.

    Examples:
        >>> tag_list({"project": "balls"})
        [{'Key': 'project', 'Value': 'balls'}]
    """
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def tag_problems(tags: Mapping[str, str] | None) -> list[str]:
    """Tag keys AWS reserves for itself (``aws:`` prefix, any case), one problem each."""
    return [
        f"tag key {key!r}: the prefix {RESERVED_TAG_PREFIX!r} is reserved for AWS"
        for key in tags or {}
        if key.lower().startswith(RESERVED_TAG_PREFIX)
    ]

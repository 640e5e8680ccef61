"""AWS resource tags: the one place a ``{"key": "value"}`` mapping and a ``Tags`` list meet.

Every SageMaker request the toolkit builds (labeling, training, tuning, model, endpoint) takes
tags as a plain mapping and writes them with :func:`tag_list`; :func:`tag_map` reads them back.
Keys starting with ``aws:`` (in any case) are reserved for AWS and refused by the service only
after the call; the request check (:mod:`gt_toolkit.sagemaker.service_validation`) applies
:func:`reserved_tag_key` to every tag key of every request, next to the lengths and characters
the service model declares.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["RESERVED_TAG_PREFIX", "reserved_tag_key", "tag_list", "tag_map"]

RESERVED_TAG_PREFIX: Final = "aws:"


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """``Tags`` as AWS reads them: ``[{"Key": ..., "Value": ...}]`` in the mapping's order.

    Examples:
        >>> tag_list({"project": "balls"})
        [{'Key': 'project', 'Value': 'balls'}]
    """
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def tag_map(tags: Any) -> dict[str, str]:
    """A ``Tags`` list (a request's, or ``ListTags``' answer) as a mapping.

    Entries without a ``Key`` are passed over; the opposite of :func:`tag_list`.
    """
    return {
        str(t["Key"]): str(t.get("Value", ""))
        for t in tags or []
        if isinstance(t, Mapping) and "Key" in t
    }


def reserved_tag_key(key: str) -> bool:
    """Whether AWS keeps ``key`` for itself (the ``aws:`` prefix, in any case)."""
    return key.lower().startswith(RESERVED_TAG_PREFIX)

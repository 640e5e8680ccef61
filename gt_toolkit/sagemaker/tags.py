"""AWS resource tags: the one place a ``{"key": "value"}`` mapping becomes a ``Tags`` list.

Every SageMaker request the toolkit builds (labeling, training, tuning, model, endpoint) takes
tags as a plain mapping and writes them with :func:`tag_list`. Keys starting with ``aws:`` (in
any case) are reserved for AWS and refused by the service only after the call; the request
check (:mod:`gt_toolkit.sagemaker.service_validation`) applies :func:`reserved_tag_key` to
every tag key of every request, next to the lengths and characters the service model declares.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["RESERVED_TAG_PREFIX", "reserved_tag_key", "tag_list"]

RESERVED_TAG_PREFIX: Final = "aws:"


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """``Tags`` as AWS reads them: ``[{"Key": ..., "Value": ...}]`` in the mapping's order.

    Examples:
        >>> tag_list({"project": "balls"})
        [{'Key': 'project', 'Value': 'balls'}]
    """
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def reserved_tag_key(key: str) -> bool:
    """Whether AWS keeps ``key`` for itself (the ``aws:`` prefix, in any case)."""
    return key.lower().startswith(RESERVED_TAG_PREFIX)

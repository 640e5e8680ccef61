"""Pre-annotation Lambda for Ground Truth custom workflows: one call into ``gt_toolkit``.

Handler: ``lambdas.pre_annotation.lambda_handler``. Settings come from environment variables
(see :class:`gt_toolkit.handlers.pre_annotation.PreAnnotationSettings`) and are read once per
cold start, including the label category file named by ``GT_LABELS_S3_URI`` (read with the
Lambda's role).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from gt_toolkit.handlers.pre_annotation import (
    PreAnnotationResponse,
    handle_pre_annotation,
    load_pre_annotation_settings,
)

logging.getLogger("gt_toolkit").setLevel(os.environ.get("GT_LOG_LEVEL", "INFO"))
# No S3 client unless a label file is configured: boto3's import alone is ~100 ms of cold start.
_SETTINGS = load_pre_annotation_settings(os.environ)


def lambda_handler(event: Mapping[str, Any], context: object) -> PreAnnotationResponse:
    """Answer one data object with its ``taskInput``."""
    return handle_pre_annotation(event, settings=_SETTINGS)

"""Post-annotation (consolidation) Lambda for Ground Truth: one call into ``gt_toolkit``.

Handler: ``lambdas.post_annotation.lambda_handler``. Settings come from environment variables
(``GT_IOU_THRESHOLD``, ``GT_MIN_SUPPORT``, ``GT_FUSION``, ``GT_QUORUM``, ``GT_KEEP``,
``GT_ASSUME_ROLE``, ``GT_WORKER_MODEL_S3_URI`` (a worker table read at cold start), ...; see
:class:`gt_toolkit.handlers.post_annotation.PostAnnotationSettings`);
``GT_ASSUME_ROLE_READ_PREFIX`` (``s3://bucket/prefix/``) narrows the assumed role to reading
that prefix, and ``GT_OUTPUT_KMS_KEY_ARN`` (the job's output KMS key) lets that session
decrypt with that key. Clients are built once per cold start and reused while the Lambda stays warm.
The invocation's context gives the deadline (:mod:`gt_toolkit.handlers.deadline`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import boto3

from gt_toolkit.handlers.deadline import LambdaContext
from gt_toolkit.handlers.post_annotation import (
    assumed_role_store_factory,
    handle_post_annotation,
    load_post_annotation_settings,
)
from gt_toolkit.storage.s3 import S3Store, make_s3_client

logging.getLogger("gt_toolkit").setLevel(os.environ.get("GT_LOG_LEVEL", "INFO"))
_STORE = S3Store(make_s3_client())
_SETTINGS = load_post_annotation_settings(os.environ, store=_STORE)
_ROLE_STORES = (
    assumed_role_store_factory(
        boto3.client("sts"),
        read_prefix=os.environ.get("GT_ASSUME_ROLE_READ_PREFIX") or None,
        kms_key_arn=os.environ.get("GT_OUTPUT_KMS_KEY_ARN") or None,
    )
    if _SETTINGS.assume_role
    else None
)


def lambda_handler(event: Mapping[str, Any], context: LambdaContext | None) -> list[Any]:
    """Consolidate one batch: one entry per ``datasetObjectId``, answered before the timeout."""
    return list(
        handle_post_annotation(
            event,
            store=_STORE,
            settings=_SETTINGS,
            store_for_role=_ROLE_STORES,
            context=context,
        )
    )

"""gt-toolkit: raw images to a trained detector through SageMaker Ground Truth.

The public API is what this module exports (``__all__``); everything else is internal.
"""

from __future__ import annotations

import importlib.metadata as _metadata

from .answers import BoundingBoxAnswer as BoundingBoxAnswer
from .answers import parse_bounding_box_answer as parse_bounding_box_answer
from .consolidate import ConsolidationSettings as ConsolidationSettings
from .consolidate import ImageConsolidation as ImageConsolidation
from .consolidate import consolidate_boxes as consolidate_boxes
from .consolidate import consolidate_image as consolidate_image
from .convert import ConversionResult as ConversionResult
from .convert import ConvertOptions as ConvertOptions
from .convert import Target as ConversionTarget
from .convert import convert_output as convert_output
from .deploy import DeployedLambdas as DeployedLambdas
from .deploy import deploy_lambdas as deploy_lambdas
from .endpoints import Deployment as Deployment
from .endpoints import delete_deployment as delete_deployment
from .endpoints import deploy_training_job as deploy_training_job
from .endpoints import invoke_classifier as invoke_classifier
from .endpoints import invoke_detector as invoke_detector
from .endpoints import wait_for_endpoint as wait_for_endpoint
from .errors import ConsolidationError as ConsolidationError
from .errors import ConversionError as ConversionError
from .errors import GtToolkitError as GtToolkitError
from .errors import ManifestError as ManifestError
from .errors import NoMatchingObjectsError as NoMatchingObjectsError
from .errors import S3UriError as S3UriError
from .errors import StorageError as StorageError
from .errors import TemplateError as TemplateError
from .errors import ValidationError as ValidationError
from .evaluate import EvaluationResult as EvaluationResult
from .evaluate import ScoredBox as ScoredBox
from .evaluate import evaluate_detections as evaluate_detections
from .evaluate import read_detection_set as read_detection_set
from .inputs import iter_input_records as iter_input_records
from .inputs import write_input_manifest as write_input_manifest
from .label_config import build_label_category_config as build_label_category_config
from .label_config import validate_labels as validate_labels
from .labeling_job import build_labeling_job_request as build_labeling_job_request
from .labeling_job import create_labeling_job as create_labeling_job
from .labeling_job import wait_for_labeling_job as wait_for_labeling_job
from .manifest import ManifestLine as ManifestLine
from .manifest import ReadStats as ReadStats
from .manifest import RejectedLine as RejectedLine
from .manifest import RejectPolicy as RejectPolicy
from .manifest import parse_manifest_lines as parse_manifest_lines
from .manifest import read_manifest as read_manifest
from .manifest import write_manifest as write_manifest
from .output import ClassificationRecord as ClassificationRecord
from .output import ClassMap as ClassMap
from .output import DetectionRecord as DetectionRecord
from .output import LabelAttribute as LabelAttribute
from .output import OutputStats as OutputStats
from .output import detect_label_attributes as detect_label_attributes
from .output import iter_classification_records as iter_classification_records
from .output import iter_detection_records as iter_detection_records
from .polygons import PolygonConsolidation as PolygonConsolidation
from .polygons import consolidate_polygons as consolidate_polygons
from .post_annotation import PostAnnotationSettings as PostAnnotationSettings
from .post_annotation import handle_post_annotation as handle_post_annotation
from .pre_annotation import PreAnnotationSettings as PreAnnotationSettings
from .pre_annotation import handle_pre_annotation as handle_pre_annotation
from .predictions import decode_classification as decode_classification
from .predictions import decode_detections as decode_detections
from .preflight import PreflightReport as PreflightReport
from .preflight import preflight_channels as preflight_channels
from .preflight import preflight_training_request as preflight_training_request
from .preview import render_liquid as render_liquid
from .preview import write_preview as write_preview
from .quality import QualityAccumulator as QualityAccumulator
from .quality import WorkerQuality as WorkerQuality
from .quality import quality_weights as quality_weights
from .reconsolidate import ReconsolidationReport as ReconsolidationReport
from .reconsolidate import reconsolidate as reconsolidate
from .regions import algorithm_image_uri as algorithm_image_uri
from .regions import builtin_lambda_arns as builtin_lambda_arns
from .render import Example as Example
from .render import render_bounding_box_template as render_bounding_box_template
from .render import render_image_classifier_template as render_image_classifier_template
from .review import ReviewSummary as ReviewSummary
from .review import write_review as write_review
from .s3 import S3Store as S3Store
from .s3 import make_s3_client as make_s3_client
from .s3 import parse_s3_uri as parse_s3_uri
from .sampling import sample_items as sample_items
from .sampling import sample_percent as sample_percent
from .sampling import split_name as split_name
from .service_validation import validate_request as validate_request
from .template_lint import LintFinding as LintFinding
from .template_lint import lint_template as lint_template
from .training import (
    build_image_classification_training_request as build_image_classification_training_request,
)
from .training import (
    build_object_detection_training_request as build_object_detection_training_request,
)
from .training import load_channel_facts as load_channel_facts
from .tuning import best_training_job as best_training_job
from .tuning import build_tuning_request as build_tuning_request

try:
    __version__ = _metadata.version("gt-toolkit")
except _metadata.PackageNotFoundError:  # running from a checkout that is not installed
    __version__ = "0.0.0"

# Keep sorted; tests/test_public_api.py checks it against the module's public names.
__all__ = [
    "BoundingBoxAnswer",
    "ClassMap",
    "ClassificationRecord",
    "ConsolidationError",
    "ConsolidationSettings",
    "ConversionError",
    "ConversionResult",
    "ConversionTarget",
    "ConvertOptions",
    "DeployedLambdas",
    "Deployment",
    "DetectionRecord",
    "EvaluationResult",
    "Example",
    "GtToolkitError",
    "ImageConsolidation",
    "LabelAttribute",
    "LintFinding",
    "ManifestError",
    "ManifestLine",
    "NoMatchingObjectsError",
    "OutputStats",
    "PolygonConsolidation",
    "PostAnnotationSettings",
    "PreAnnotationSettings",
    "PreflightReport",
    "QualityAccumulator",
    "ReadStats",
    "ReconsolidationReport",
    "RejectPolicy",
    "RejectedLine",
    "ReviewSummary",
    "S3Store",
    "S3UriError",
    "ScoredBox",
    "StorageError",
    "TemplateError",
    "ValidationError",
    "WorkerQuality",
    "__version__",
    "algorithm_image_uri",
    "best_training_job",
    "build_image_classification_training_request",
    "build_label_category_config",
    "build_labeling_job_request",
    "build_object_detection_training_request",
    "build_tuning_request",
    "builtin_lambda_arns",
    "consolidate_boxes",
    "consolidate_image",
    "consolidate_polygons",
    "convert_output",
    "create_labeling_job",
    "decode_classification",
    "decode_detections",
    "delete_deployment",
    "deploy_lambdas",
    "deploy_training_job",
    "detect_label_attributes",
    "evaluate_detections",
    "handle_post_annotation",
    "handle_pre_annotation",
    "invoke_classifier",
    "invoke_detector",
    "iter_classification_records",
    "iter_detection_records",
    "iter_input_records",
    "lint_template",
    "load_channel_facts",
    "make_s3_client",
    "parse_bounding_box_answer",
    "parse_manifest_lines",
    "parse_s3_uri",
    "preflight_channels",
    "preflight_training_request",
    "quality_weights",
    "read_detection_set",
    "read_manifest",
    "reconsolidate",
    "render_bounding_box_template",
    "render_image_classifier_template",
    "render_liquid",
    "sample_items",
    "sample_percent",
    "split_name",
    "validate_labels",
    "validate_request",
    "wait_for_endpoint",
    "wait_for_labeling_job",
    "write_input_manifest",
    "write_manifest",
    "write_preview",
    "write_review",
]

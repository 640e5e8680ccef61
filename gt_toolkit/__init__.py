"""gt-toolkit: from raw images to a trained model, through labeling by several annotators.

The public API is what this module exports (``__all__``); everything else is internal. Names
load on first use (PEP 562), so ``import gt_toolkit`` costs almost nothing: a command, a
Lambda or a script pays only for the stages it touches (numpy, boto3, Pillow, Jinja, ...).
"""

from __future__ import annotations

import importlib as _importlib
import typing as _t

# Public name -> "module" (same attribute name) or "module:attribute", under gt_toolkit.
_EXPORTS: dict[str, str] = {
    "ConsolidationSettings": "consolidation.engine",
    "ImageConsolidation": "consolidation.engine",
    "consolidate_boxes": "consolidation.engine",
    "consolidate_boxes_batch": "consolidation.engine",
    "consolidate_image": "consolidation.engine",
    "consolidate_images": "consolidation.engine",
    "PolygonConsolidation": "consolidation.polygons",
    "consolidate_polygons": "consolidation.polygons",
    "ReconsolidationReport": "consolidation.reconsolidate",
    "reconsolidate": "consolidation.reconsolidate",
    "QualityAccumulator": "consolidation.worker_quality",
    "WorkerQuality": "consolidation.worker_quality",
    "quality_weights": "consolidation.worker_quality",
    "WorkerModel": "consolidation.worker_model",
    "WorkerSkill": "consolidation.worker_model",
    "fit_worker_model": "consolidation.worker_model",
    "ConversionResult": "convert",
    "ConversionTarget": "convert:Target",
    "ConvertOptions": "convert",
    "convert_output": "convert",
    "ConsolidationError": "errors",
    "CrowdSourceError": "errors",
    "ConversionError": "errors",
    "GtToolkitError": "errors",
    "LabelFormatError": "errors",
    "ManifestError": "errors",
    "NoMatchingObjectsError": "errors",
    "S3UriError": "errors",
    "ServiceClosureWarning": "errors",
    "ServiceQuotaWarning": "errors",
    "StorageError": "errors",
    "TemplateError": "errors",
    "ValidationError": "errors",
    "EndpointFailedError": "errors",
    "JobFailedError": "errors",
    "LabelingJobFailedError": "errors",
    "LambdaResponseSizeWarning": "errors",
    "LambdaZipError": "errors",
    "WaitTimeoutError": "errors",
    "EvaluationResult": "evaluation.metrics",
    "evaluate_detections": "evaluation.metrics",
    "read_detection_set": "evaluation.metrics",
    "ReviewSummary": "evaluation.review",
    "write_review": "evaluation.review",
    "ScoredBox": "formats.detection_label",
    "iter_input_records": "formats.input_manifest",
    "write_input_manifest": "formats.input_manifest",
    "build_label_category_config": "formats.label_categories",
    "validate_labels": "formats.label_categories",
    "ManifestLine": "formats.manifest",
    "ReadStats": "formats.manifest",
    "RejectPolicy": "formats.manifest",
    "RejectedLine": "formats.manifest",
    "parse_manifest_lines": "formats.manifest",
    "read_manifest": "formats.manifest",
    "write_manifest": "formats.manifest",
    "ClassMap": "formats.output_manifest",
    "ClassificationRecord": "formats.output_manifest",
    "DetectionRecord": "formats.output_manifest",
    "LabelAttribute": "formats.output_manifest",
    "OutputStats": "formats.output_manifest",
    "detect_label_attributes": "formats.output_manifest",
    "iter_classification_records": "formats.output_manifest",
    "iter_detection_records": "formats.output_manifest",
    "sample_items": "formats.sampling",
    "sample_percent": "formats.sampling",
    "split_name": "formats.sampling",
    "BoundingBoxAnswer": "formats.worker_answers",
    "CrowdImage": "formats.crowd",
    "iter_crowd_images": "formats.crowd.sources",
    "parse_bounding_box_answer": "formats.worker_answers",
    "PostAnnotationSettings": "handlers.post_annotation",
    "handle_post_annotation": "handlers.post_annotation",
    "PreAnnotationSettings": "handlers.pre_annotation",
    "handle_pre_annotation": "handlers.pre_annotation",
    "ProfilerSettings": "sagemaker.debugger",
    "attach_debugging": "sagemaker.debugger",
    "Deployment": "sagemaker.endpoints",
    "delete_deployment": "sagemaker.endpoints",
    "deploy_training_job": "sagemaker.endpoints",
    "invoke_classifier": "sagemaker.endpoints",
    "invoke_detector": "sagemaker.endpoints",
    "wait_for_endpoint": "sagemaker.endpoints",
    "build_jumpstart_training_request": "sagemaker.jumpstart",
    "read_jumpstart_spec": "sagemaker.jumpstart",
    "build_labeling_job_request": "sagemaker.labeling_job",
    "create_labeling_job": "sagemaker.labeling_job",
    "wait_for_labeling_job": "sagemaker.labeling_job",
    "DeployedLambdas": "sagemaker.lambda_deploy",
    "deploy_lambdas": "sagemaker.lambda_deploy",
    "decode_classification": "sagemaker.predictions",
    "decode_detections": "sagemaker.predictions",
    "PreflightReport": "sagemaker.preflight_report",
    "preflight_channels": "sagemaker.preflight",
    "preflight_training_request": "sagemaker.preflight",
    "preflight_class_folders": "sagemaker.preflight_data",
    "preflight_jumpstart_detection": "sagemaker.preflight_data",
    "PyTorchClassifierHyperparameters": "sagemaker.pytorch",
    "build_pytorch_training_request": "sagemaker.pytorch",
    "upload_pytorch_source": "sagemaker.pytorch",
    "algorithm_image_uri": "sagemaker.regions",
    "builtin_lambda_arns": "sagemaker.regions",
    "validate_request": "sagemaker.service_validation",
    "build_image_classification_training_request": "sagemaker.training",
    "build_object_detection_training_request": "sagemaker.training",
    "ImageClassificationHyperparameters": "sagemaker.training",
    "ObjectDetectionHyperparameters": "sagemaker.training",
    "TrainingResources": "sagemaker.training",
    "load_channel_facts": "formats.training_channels",
    "best_training_job": "sagemaker.tuning",
    "build_tuning_request": "sagemaker.tuning",
    "S3Store": "storage.s3",
    "make_s3_client": "storage.s3",
    "parse_s3_uri": "storage.s3",
    "LintFinding": "worker_ui.lint",
    "lint_template": "worker_ui.lint",
    "render_liquid": "worker_ui.preview",
    "write_preview": "worker_ui.preview",
    "Example": "worker_ui.render",
    "render_bounding_box_template": "worker_ui.render",
    "render_image_classifier_template": "worker_ui.render",
}

# Keep sorted; tests/test_public_api.py checks it against _EXPORTS and the loaded names.
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
    "CrowdImage",
    "CrowdSourceError",
    "DeployedLambdas",
    "Deployment",
    "DetectionRecord",
    "EndpointFailedError",
    "EvaluationResult",
    "Example",
    "GtToolkitError",
    "ImageClassificationHyperparameters",
    "ImageConsolidation",
    "JobFailedError",
    "LabelAttribute",
    "LabelFormatError",
    "LabelingJobFailedError",
    "LambdaResponseSizeWarning",
    "LambdaZipError",
    "LintFinding",
    "ManifestError",
    "ManifestLine",
    "NoMatchingObjectsError",
    "ObjectDetectionHyperparameters",
    "OutputStats",
    "PolygonConsolidation",
    "PostAnnotationSettings",
    "PreAnnotationSettings",
    "PreflightReport",
    "ProfilerSettings",
    "PyTorchClassifierHyperparameters",
    "QualityAccumulator",
    "ReadStats",
    "ReconsolidationReport",
    "RejectPolicy",
    "RejectedLine",
    "ReviewSummary",
    "S3Store",
    "S3UriError",
    "ScoredBox",
    "ServiceClosureWarning",
    "ServiceQuotaWarning",
    "StorageError",
    "TemplateError",
    "TrainingResources",
    "ValidationError",
    "WaitTimeoutError",
    "WorkerModel",
    "WorkerQuality",
    "WorkerSkill",
    "__version__",
    "algorithm_image_uri",
    "attach_debugging",
    "best_training_job",
    "build_image_classification_training_request",
    "build_jumpstart_training_request",
    "build_label_category_config",
    "build_labeling_job_request",
    "build_object_detection_training_request",
    "build_pytorch_training_request",
    "build_tuning_request",
    "builtin_lambda_arns",
    "consolidate_boxes",
    "consolidate_boxes_batch",
    "consolidate_image",
    "consolidate_images",
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
    "fit_worker_model",
    "handle_post_annotation",
    "handle_pre_annotation",
    "invoke_classifier",
    "invoke_detector",
    "iter_classification_records",
    "iter_crowd_images",
    "iter_detection_records",
    "iter_input_records",
    "lint_template",
    "load_channel_facts",
    "make_s3_client",
    "parse_bounding_box_answer",
    "parse_manifest_lines",
    "parse_s3_uri",
    "preflight_channels",
    "preflight_class_folders",
    "preflight_jumpstart_detection",
    "preflight_training_request",
    "quality_weights",
    "read_detection_set",
    "read_jumpstart_spec",
    "read_manifest",
    "reconsolidate",
    "render_bounding_box_template",
    "render_image_classifier_template",
    "render_liquid",
    "sample_items",
    "sample_percent",
    "split_name",
    "upload_pytorch_source",
    "validate_labels",
    "validate_request",
    "wait_for_endpoint",
    "wait_for_labeling_job",
    "write_input_manifest",
    "write_manifest",
    "write_preview",
    "write_review",
]


def __getattr__(name: str) -> _t.Any:
    """Load a public name on first use and cache it in the module."""
    if name == "__version__":
        value: _t.Any = _version()
    else:
        try:
            target = _EXPORTS[name]
        except KeyError:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
        module, _, attribute = target.partition(":")
        value = getattr(_importlib.import_module(f"{__name__}.{module}"), attribute or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("gt-toolkit")
    except importlib.metadata.PackageNotFoundError:  # a checkout that is not installed
        return "0.0.0"


if _t.TYPE_CHECKING:  # what mypy and editors see; at run time __getattr__ serves these
    from gt_toolkit.consolidation.engine import ConsolidationSettings as ConsolidationSettings
    from gt_toolkit.consolidation.engine import ImageConsolidation as ImageConsolidation
    from gt_toolkit.consolidation.engine import consolidate_boxes as consolidate_boxes
    from gt_toolkit.consolidation.engine import (
        consolidate_boxes_batch as consolidate_boxes_batch,
    )
    from gt_toolkit.consolidation.engine import consolidate_image as consolidate_image
    from gt_toolkit.consolidation.engine import consolidate_images as consolidate_images
    from gt_toolkit.consolidation.polygons import PolygonConsolidation as PolygonConsolidation
    from gt_toolkit.consolidation.polygons import consolidate_polygons as consolidate_polygons
    from gt_toolkit.consolidation.reconsolidate import (
        ReconsolidationReport as ReconsolidationReport,
    )
    from gt_toolkit.consolidation.reconsolidate import reconsolidate as reconsolidate
    from gt_toolkit.consolidation.worker_model import WorkerModel as WorkerModel
    from gt_toolkit.consolidation.worker_model import WorkerSkill as WorkerSkill
    from gt_toolkit.consolidation.worker_model import fit_worker_model as fit_worker_model
    from gt_toolkit.consolidation.worker_quality import QualityAccumulator as QualityAccumulator
    from gt_toolkit.consolidation.worker_quality import WorkerQuality as WorkerQuality
    from gt_toolkit.consolidation.worker_quality import quality_weights as quality_weights
    from gt_toolkit.convert import ConversionResult as ConversionResult
    from gt_toolkit.convert import ConvertOptions as ConvertOptions
    from gt_toolkit.convert import Target as ConversionTarget
    from gt_toolkit.convert import convert_output as convert_output
    from gt_toolkit.errors import ConsolidationError as ConsolidationError
    from gt_toolkit.errors import ConversionError as ConversionError
    from gt_toolkit.errors import CrowdSourceError as CrowdSourceError
    from gt_toolkit.errors import EndpointFailedError as EndpointFailedError
    from gt_toolkit.errors import GtToolkitError as GtToolkitError
    from gt_toolkit.errors import JobFailedError as JobFailedError
    from gt_toolkit.errors import LabelFormatError as LabelFormatError
    from gt_toolkit.errors import LabelingJobFailedError as LabelingJobFailedError
    from gt_toolkit.errors import LambdaResponseSizeWarning as LambdaResponseSizeWarning
    from gt_toolkit.errors import LambdaZipError as LambdaZipError
    from gt_toolkit.errors import ManifestError as ManifestError
    from gt_toolkit.errors import NoMatchingObjectsError as NoMatchingObjectsError
    from gt_toolkit.errors import S3UriError as S3UriError
    from gt_toolkit.errors import ServiceClosureWarning as ServiceClosureWarning
    from gt_toolkit.errors import ServiceQuotaWarning as ServiceQuotaWarning
    from gt_toolkit.errors import StorageError as StorageError
    from gt_toolkit.errors import TemplateError as TemplateError
    from gt_toolkit.errors import ValidationError as ValidationError
    from gt_toolkit.errors import WaitTimeoutError as WaitTimeoutError
    from gt_toolkit.evaluation.metrics import EvaluationResult as EvaluationResult
    from gt_toolkit.evaluation.metrics import evaluate_detections as evaluate_detections
    from gt_toolkit.evaluation.metrics import read_detection_set as read_detection_set
    from gt_toolkit.evaluation.review import ReviewSummary as ReviewSummary
    from gt_toolkit.evaluation.review import write_review as write_review
    from gt_toolkit.formats.crowd import CrowdImage as CrowdImage
    from gt_toolkit.formats.crowd.sources import iter_crowd_images as iter_crowd_images
    from gt_toolkit.formats.detection_label import ScoredBox as ScoredBox
    from gt_toolkit.formats.input_manifest import iter_input_records as iter_input_records
    from gt_toolkit.formats.input_manifest import write_input_manifest as write_input_manifest
    from gt_toolkit.formats.label_categories import (
        build_label_category_config as build_label_category_config,
    )
    from gt_toolkit.formats.label_categories import validate_labels as validate_labels
    from gt_toolkit.formats.manifest import ManifestLine as ManifestLine
    from gt_toolkit.formats.manifest import ReadStats as ReadStats
    from gt_toolkit.formats.manifest import RejectedLine as RejectedLine
    from gt_toolkit.formats.manifest import RejectPolicy as RejectPolicy
    from gt_toolkit.formats.manifest import parse_manifest_lines as parse_manifest_lines
    from gt_toolkit.formats.manifest import read_manifest as read_manifest
    from gt_toolkit.formats.manifest import write_manifest as write_manifest
    from gt_toolkit.formats.output_manifest import ClassificationRecord as ClassificationRecord
    from gt_toolkit.formats.output_manifest import ClassMap as ClassMap
    from gt_toolkit.formats.output_manifest import DetectionRecord as DetectionRecord
    from gt_toolkit.formats.output_manifest import LabelAttribute as LabelAttribute
    from gt_toolkit.formats.output_manifest import OutputStats as OutputStats
    from gt_toolkit.formats.output_manifest import (
        detect_label_attributes as detect_label_attributes,
    )
    from gt_toolkit.formats.output_manifest import (
        iter_classification_records as iter_classification_records,
    )
    from gt_toolkit.formats.output_manifest import iter_detection_records as iter_detection_records
    from gt_toolkit.formats.sampling import sample_items as sample_items
    from gt_toolkit.formats.sampling import sample_percent as sample_percent
    from gt_toolkit.formats.sampling import split_name as split_name
    from gt_toolkit.formats.training_channels import load_channel_facts as load_channel_facts
    from gt_toolkit.formats.worker_answers import BoundingBoxAnswer as BoundingBoxAnswer
    from gt_toolkit.formats.worker_answers import (
        parse_bounding_box_answer as parse_bounding_box_answer,
    )
    from gt_toolkit.handlers.post_annotation import PostAnnotationSettings as PostAnnotationSettings
    from gt_toolkit.handlers.post_annotation import handle_post_annotation as handle_post_annotation
    from gt_toolkit.handlers.pre_annotation import PreAnnotationSettings as PreAnnotationSettings
    from gt_toolkit.handlers.pre_annotation import handle_pre_annotation as handle_pre_annotation
    from gt_toolkit.sagemaker.debugger import ProfilerSettings as ProfilerSettings
    from gt_toolkit.sagemaker.debugger import attach_debugging as attach_debugging
    from gt_toolkit.sagemaker.endpoints import Deployment as Deployment
    from gt_toolkit.sagemaker.endpoints import delete_deployment as delete_deployment
    from gt_toolkit.sagemaker.endpoints import deploy_training_job as deploy_training_job
    from gt_toolkit.sagemaker.endpoints import invoke_classifier as invoke_classifier
    from gt_toolkit.sagemaker.endpoints import invoke_detector as invoke_detector
    from gt_toolkit.sagemaker.endpoints import wait_for_endpoint as wait_for_endpoint
    from gt_toolkit.sagemaker.jumpstart import (
        build_jumpstart_training_request as build_jumpstart_training_request,
    )
    from gt_toolkit.sagemaker.jumpstart import read_jumpstart_spec as read_jumpstart_spec
    from gt_toolkit.sagemaker.labeling_job import (
        build_labeling_job_request as build_labeling_job_request,
    )
    from gt_toolkit.sagemaker.labeling_job import create_labeling_job as create_labeling_job
    from gt_toolkit.sagemaker.labeling_job import wait_for_labeling_job as wait_for_labeling_job
    from gt_toolkit.sagemaker.lambda_deploy import DeployedLambdas as DeployedLambdas
    from gt_toolkit.sagemaker.lambda_deploy import deploy_lambdas as deploy_lambdas
    from gt_toolkit.sagemaker.predictions import decode_classification as decode_classification
    from gt_toolkit.sagemaker.predictions import decode_detections as decode_detections
    from gt_toolkit.sagemaker.preflight import preflight_channels as preflight_channels
    from gt_toolkit.sagemaker.preflight import (
        preflight_training_request as preflight_training_request,
    )
    from gt_toolkit.sagemaker.preflight_data import (
        preflight_class_folders as preflight_class_folders,
    )
    from gt_toolkit.sagemaker.preflight_data import (
        preflight_jumpstart_detection as preflight_jumpstart_detection,
    )
    from gt_toolkit.sagemaker.preflight_report import PreflightReport as PreflightReport
    from gt_toolkit.sagemaker.pytorch import (
        PyTorchClassifierHyperparameters as PyTorchClassifierHyperparameters,
    )
    from gt_toolkit.sagemaker.pytorch import (
        build_pytorch_training_request as build_pytorch_training_request,
    )
    from gt_toolkit.sagemaker.pytorch import upload_pytorch_source as upload_pytorch_source
    from gt_toolkit.sagemaker.regions import algorithm_image_uri as algorithm_image_uri
    from gt_toolkit.sagemaker.regions import builtin_lambda_arns as builtin_lambda_arns
    from gt_toolkit.sagemaker.service_validation import validate_request as validate_request
    from gt_toolkit.sagemaker.training import (
        ImageClassificationHyperparameters as ImageClassificationHyperparameters,
    )
    from gt_toolkit.sagemaker.training import (
        ObjectDetectionHyperparameters as ObjectDetectionHyperparameters,
    )
    from gt_toolkit.sagemaker.training import TrainingResources as TrainingResources
    from gt_toolkit.sagemaker.training import (
        build_image_classification_training_request as build_image_classification_training_request,
    )
    from gt_toolkit.sagemaker.training import (
        build_object_detection_training_request as build_object_detection_training_request,
    )
    from gt_toolkit.sagemaker.tuning import best_training_job as best_training_job
    from gt_toolkit.sagemaker.tuning import build_tuning_request as build_tuning_request
    from gt_toolkit.storage.s3 import S3Store as S3Store
    from gt_toolkit.storage.s3 import make_s3_client as make_s3_client
    from gt_toolkit.storage.s3 import parse_s3_uri as parse_s3_uri
    from gt_toolkit.worker_ui.lint import LintFinding as LintFinding
    from gt_toolkit.worker_ui.lint import lint_template as lint_template
    from gt_toolkit.worker_ui.preview import render_liquid as render_liquid
    from gt_toolkit.worker_ui.preview import write_preview as write_preview
    from gt_toolkit.worker_ui.render import Example as Example
    from gt_toolkit.worker_ui.render import (
        render_bounding_box_template as render_bounding_box_template,
    )
    from gt_toolkit.worker_ui.render import (
        render_image_classifier_template as render_image_classifier_template,
    )

    __version__: str

"""CreateLabelingJob requests built from a few arguments and refused with every problem listed.

Users assemble this request by hand, copy Lambda ARNs for the wrong region and then meet the
``ValidationException`` s one field at a time. :func:`build_labeling_job_request` is pure: it
returns the kwargs for ``sagemaker.create_labeling_job(**request)`` after checking them
against botocore's service model (:mod:`gt_toolkit.sagemaker.service_validation`) *and* the
Ground Truth rules the model does not carry (``docs/ground-truth-formats.md`` §5 and §8
pitfalls 12, 16, 17). Those rules are :data:`LABELING_JOB_RULES`, a table of small functions
that each read one :class:`LabelingJobCheck` and yield their problems.
:func:`create_labeling_job` is the I/O edge: it checks what needs the manifest (the size
automated labeling requires), uploads the worker template and the label file (encrypted as the
output is), then calls SageMaker; :func:`wait_for_labeling_job` polls ``LabelCounters``.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import orjson

from gt_toolkit.errors import (
    LabelingJobFailedError,
    LambdaResponseSizeWarning,
    S3UriError,
    ServiceQuotaWarning,
    StorageError,
    ValidationError,
    WaitTimeoutError,
)
from gt_toolkit.formats.detection_label import label_attribute_problems
from gt_toolkit.formats.label_categories import (
    TASK_TYPES,
    build_label_category_config,
    validate_labels,
)
from gt_toolkit.handlers.lambda_response import RESPONSE_BUDGET
from gt_toolkit.sagemaker.regions import (
    BUILTIN_LAMBDA_ACCOUNTS,
    BUILTIN_TASK_TYPES,
    HUMAN_TASK_UI_ACCOUNT,
    HUMAN_TASK_UIS,
    LABELING_ALGORITHMS,
    PUBLIC_WORKTEAM_ACCOUNT,
    builtin_lambda_arns,
    human_task_ui_arn,
    labeling_algorithm_arn,
    lambda_function_name,
    parse_arn,
    public_workteam_arn,
    region_partition,
)
from gt_toolkit.sagemaker.service_validation import problems_as_strings, validate_request
from gt_toolkit.sagemaker.tags import tag_list
from gt_toolkit.storage.files import iter_line_batches, join_location
from gt_toolkit.storage.s3 import S3Store, ServerSideEncryption, parse_s3_uri

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient

__all__ = [
    "ALLOWED_PRICES_USD",
    "AUTOMATED_LABELING_MIN_OBJECTS",
    "DEFAULT_MAX_CONCURRENT_TASKS",
    "LABELING_JOB_RULES",
    "PII_CLASSIFIER",
    "LabelingJobCheck",
    "LabelingProgress",
    "LambdaArns",
    "Workforce",
    "build_labeling_job_request",
    "consolidation_response_bytes",
    "create_labeling_job",
    "default_config_uris",
    "labeling_job_problems",
    "price_range",
    "usd_to_price",
    "wait_for_labeling_job",
]

Workforce = Literal["public", "private", "vendor"]


class LambdaArns(Protocol):
    """Our deployed pre/post-annotation Lambdas (e.g. ``lambda_deploy.DeployedLambdas``)."""

    @property
    def pre_annotation_arn(self) -> str:
        """The ``PreHumanTaskLambdaArn``."""
        ...

    @property
    def post_annotation_arn(self) -> str:
        """The ``AnnotationConsolidationLambdaArn``."""
        ...


PII_CLASSIFIER: Final = "FreeOfPersonallyIdentifiableInformation"

ALLOWED_PRICES_USD: Final[tuple[Decimal, ...]] = (
    *(Decimal(p) for p in ("0.012", "0.024", "0.036", "0.048", "0.060", "0.072")),
    *(Decimal("0.120") * i for i in range(1, 11)),
)
"""Every price Mechanical Turk accepts per task (botocore's ``PublicWorkforceTaskPrice``)."""

_NEEDS_PRICE: Final = "a public (Mechanical Turk) workforce needs a price per task (price_usd)"

_MAX_PRICE: Final = Decimal("1.200")
_LOWEST_PRICE: Final[dict[str, Decimal]] = {
    "BoundingBox": Decimal("0.036"),
    "VerificationBoundingBox": Decimal("0.036"),
    "AdjustmentBoundingBox": Decimal("0.036"),
    "SemanticSegmentation": Decimal("0.840"),
    "VerificationSemanticSegmentation": Decimal("0.840"),
    "AdjustmentSemanticSegmentation": Decimal("0.840"),
}
"""Lowest allowed price per task type; classification, text and custom tasks start at 0.012."""

# LabelAttributeName must end in -ref for these (botocore's LabelAttributeName docs).
_REF_TASK_TYPES: Final = frozenset(
    {
        "SemanticSegmentation",
        "AdjustmentSemanticSegmentation",
        "VideoObjectDetection",
        "AdjustmentVideoObjectDetection",
        "VideoObjectTracking",
        "AdjustmentVideoObjectTracking",
        "3DPointCloudSemanticSegmentation",
        "Adjustment3DPointCloudSemanticSegmentation",
        "3DPointCloudObjectTracking",
        "Adjustment3DPointCloudObjectTracking",
    }
)
_VIDEO_OR_3D: Final = ("Video", "3DPointCloud", "PointCloud")
# The managed AmazonSageMakerGroundTruthExecution policy only invokes functions whose name
# contains one of these (§8 pitfall 12).
_LAMBDA_NAME_MARKERS: Final = (
    "SageMaker",
    "sagemaker",
    "Sagemaker",
    "GtRecipe",
    "LabelingFunction",
)
_DEFAULT_WORKERS: Final = {"BoundingBox": 5}
_MTURK_MAX_LIFETIME: Final = 43_200
_PRIVATE_MAX_LIFETIME: Final = 30 * 24 * 3600
_IMAGE_TEXT_MAX_TIME: Final = 28_800
_VIDEO_3D_MAX_TIME: Final = 30 * 24 * 3600  # HumanTaskConfig's page; the model has no maximum

_PRE_PATH: Final = "HumanTaskConfig.PreHumanTaskLambdaArn"
_ACS_PATH: Final = "HumanTaskConfig.AnnotationConsolidationConfig.AnnotationConsolidationLambdaArn"
_TEAM_PATH: Final = "HumanTaskConfig.WorkteamArn"
_UI_ARN_PATH: Final = "HumanTaskConfig.UiConfig.HumanTaskUiArn"
_UI_TEMPLATE_PATH: Final = "HumanTaskConfig.UiConfig.UiTemplateS3Uri"
_ALGORITHM_PATH: Final = "LabelingJobAlgorithmsConfig.LabelingJobAlgorithmSpecificationArn"


def _is_video_or_3d(task_type: str) -> bool:
    return any(marker in task_type for marker in _VIDEO_OR_3D)


def _runs_ground_truth(region: str) -> bool:
    """Whether ``region`` is in AWS's tables; where not, only the ``region`` rule says so."""
    return region in BUILTIN_LAMBDA_ACCOUNTS


def price_range(task_type: str) -> tuple[Decimal, Decimal]:
    """``(lowest, highest)`` Mechanical Turk price per task for a task type, in USD."""
    return _LOWEST_PRICE.get(task_type, ALLOWED_PRICES_USD[0]), _MAX_PRICE


def usd_to_price(amount: Decimal) -> dict[str, dict[str, int]]:
    """``Decimal("0.036")`` -> ``{"AmountInUsd": {"Dollars": 0, "Cents": 3, ...: 6}}``."""
    tenths = int((amount * 1000).to_integral_value())
    return {
        "AmountInUsd": {
            "Dollars": tenths // 1000,
            "Cents": (tenths // 10) % 100,
            "TenthFractionsOfACent": tenths % 10,
        }
    }


def _parse_price(value: object, task_type: str, problems: list[str]) -> Decimal | None:
    """Read a user price (``"0.036"``, ``0.036``, ``Decimal``) and check it against the steps."""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        problems.append(f"price_usd {value!r} is not a number")
        return None
    if not amount.is_finite():
        problems.append(f"price_usd {value!r} is not a number")
        return None
    low, high = price_range(task_type)
    allowed = [p for p in ALLOWED_PRICES_USD if low <= p <= high]
    if amount not in allowed:
        problems.append(
            f"price_usd {value} is not an allowed Mechanical Turk price for {task_type} tasks; "
            f"use one of: {', '.join(str(p) for p in allowed)}"
        )
        return None
    return amount


def default_config_uris(output_uri: str, job_name: str) -> tuple[str, str]:
    """Where :func:`create_labeling_job` puts the template and label file by default.

    Beside the job's output folder (``<output>/<job>-config/``), so they never mix with the
    ``annotations/`` and ``manifests/`` Ground Truth writes under ``<output>/<job>/``.
    """
    base = join_location(output_uri, f"{job_name}-config")
    return join_location(base, "template.liquid.html"), join_location(base, "label-categories.json")


# ---------------------------------------------------------------- the response-size estimate

DEFAULT_MAX_CONCURRENT_TASKS: Final = 1000
"""SageMaker's ``MaxConcurrentTaskCount`` when the request leaves it out."""
AUTOMATED_LABELING_MIN_OBJECTS: Final = 1250
"""The fewest data objects a job with automated data labeling may have (AWS's minimum)."""
_CONCURRENT_TASK_QUOTA: Final = 1000  # more needs AWS Support to raise the quota (up to 5,000)

_BOX_BYTES: Final = 110  # one box in the label plus its metadata object, JSON as Lambda writes it
_OBJECT_BYTES: Final = 700  # datasetObjectId, image size, metadata fields, long names


def consolidation_response_bytes(
    *, workers: int, boxes_per_image: int, batch_size: int, labels: Sequence[str] = ()
) -> int:
    """Upper bound of one post-annotation response: ``batch x (object + workers x boxes x box)``.

    The formula is ``batch_size x (700 + class_map + workers x boxes_per_image x 110)`` bytes:
    110 bytes hold one box of the label (five-digit pixel coordinates) with its confidence
    entry, as Lambda's runtime encodes JSON (``", "`` separators); 700 bytes the object's
    envelope (id, image size, type, dates, job name, worker count); ``class_map`` the labels
    as JSON. Workers multiply the boxes because, in the worst case (workers who never agree
    and no agreement threshold), each worker's box survives as its own label. Diagnostics are
    not counted: the handler trims them before the labels. A batch holds up to
    ``MaxConcurrentTaskCount`` objects (``docs/ground-truth-formats.md`` §8 pitfall 19).

    Examples:
        >>> consolidation_response_bytes(workers=5, boxes_per_image=10, batch_size=1000)
        6200000
    """
    class_map = sum(len(json.dumps(label)) + 8 for label in labels)
    return batch_size * (_OBJECT_BYTES + class_map + workers * boxes_per_image * _BOX_BYTES)


def _warn_concurrent_task_quota(human: Mapping[str, Any]) -> None:
    """Warn when ``MaxConcurrentTaskCount`` passes the quota an account starts with.

    A warning, not a refusal: an account whose quota AWS Support has raised may use more.
    """
    tasks = human.get("MaxConcurrentTaskCount")
    if isinstance(tasks, int) and tasks > _CONCURRENT_TASK_QUOTA:
        warnings.warn(
            f"MaxConcurrentTaskCount {tasks} is above the {_CONCURRENT_TASK_QUOTA:,} objects at "
            "a time an AWS account may use by default: ask AWS Support to raise the quota for "
            f"this account (to at most 5,000) or lower max_concurrent_tasks to "
            f"{_CONCURRENT_TASK_QUOTA}",
            ServiceQuotaWarning,
            stacklevel=3,
        )


def _warn_response_size(human: Mapping[str, Any], boxes: int, labels: Sequence[str]) -> None:
    """Warn when a batch of this job's answers can pass :data:`RESPONSE_BUDGET`."""
    workers = human["NumberOfHumanWorkersPerDataObject"]
    batch = human.get("MaxConcurrentTaskCount", DEFAULT_MAX_CONCURRENT_TASKS)
    size = consolidation_response_bytes(
        workers=workers, boxes_per_image=boxes, batch_size=batch, labels=labels
    )
    if size > RESPONSE_BUDGET:
        fits = max(1, batch * RESPONSE_BUDGET // size)
        warnings.warn(
            f"{workers} workers x {boxes} boxes per image x {batch} objects per batch "
            f"(MaxConcurrentTaskCount) can make a post-annotation response of {size / 1e6:.1f} MB, "
            f"over Lambda's 6 MB limit, which fails the whole batch; lower max_concurrent_tasks "
            f"to about {fits}",
            LambdaResponseSizeWarning,
            stacklevel=3,
        )


# ---------------------------------------------------------------- the builder


def _build_ui_config(
    task_type: str,
    region: str,
    template_uri: str | None,
    ui_arn: str | None,
    default_template: str,
) -> dict[str, str]:
    """``UiConfig``: what was given, else the task type's hosted UI or our template's location.

    Given values are kept as given (both at once, or the wrong kind for the task type, are
    reported by the ``ui-config`` rule). Left empty in a region without Ground Truth.
    """
    if template_uri is not None or ui_arn is not None:
        return _optional_members(UiTemplateS3Uri=template_uri, HumanTaskUiArn=ui_arn)
    if task_type not in HUMAN_TASK_UIS:
        return {"UiTemplateS3Uri": default_template}
    if not _runs_ground_truth(region):
        return {}
    return {"HumanTaskUiArn": human_task_ui_arn(region, task_type)}


def _lambda_pair(
    region: str,
    task_type: str,
    pre_arn: str | None,
    acs_arn: str | None,
    lambdas: LambdaArns | None,
    problems: list[str],
) -> tuple[str, str]:
    """Given ARNs first, then ``lambdas``, then the region's built-in ``PRE-``/``ACS-``."""
    if lambdas is not None:
        pre_arn = pre_arn if pre_arn is not None else lambdas.pre_annotation_arn
        acs_arn = acs_arn if acs_arn is not None else lambdas.post_annotation_arn
    if (pre_arn is not None and acs_arn is not None) or not _runs_ground_truth(region):
        return pre_arn or "", acs_arn or ""
    try:
        builtin_pre, builtin_acs = builtin_lambda_arns(region, task_type)
    except ValidationError as exc:
        problems.extend(
            f"no built-in Lambdas to default to: {p}; pass pre_annotation_lambda_arn and "
            "consolidation_lambda_arn"
            for p in exc.problems
        )
        builtin_pre = builtin_acs = ""
    return pre_arn or builtin_pre, acs_arn or builtin_acs


def _workteam(
    workforce: Workforce, workteam_arn: str | None, region: str, problems: list[str]
) -> str:
    """The team ARN: given, or Mechanical Turk's for a public workforce."""
    if workforce == "public" and workteam_arn is None:
        return public_workteam_arn(region) if _runs_ground_truth(region) else ""
    if workforce not in ("public", "private", "vendor"):
        problems.append(f"workforce {workforce!r} is not one of: public, private, vendor")
    elif workforce != "public" and workteam_arn is None:
        problems.append(f"a {workforce} workforce needs workteam_arn")
    return workteam_arn or ""


def _optional_members(**members: object) -> dict[str, Any]:
    """The members that were given (not ``None``, not empty)."""
    return {name: value for name, value in members.items() if value not in (None, "", [], {})}


def build_labeling_job_request(
    *,
    job_name: str,
    manifest_uri: str,
    output_uri: str,
    role_arn: str,
    labels: Sequence[str],
    task_title: str,
    task_description: str,
    region: str,
    label_attribute: str | None = None,
    task_type: str = "BoundingBox",
    template_uri: str | None = None,
    human_task_ui_arn: str | None = None,
    label_category_uri: str | None = None,
    workforce: Workforce = "private",
    workteam_arn: str | None = None,
    price_usd: Decimal | float | str | None = None,
    workers_per_object: int | None = None,
    task_time_limit_seconds: int = 300,
    task_availability_lifetime_seconds: int | None = None,
    max_concurrent_tasks: int | None = None,
    expected_boxes_per_image: int | None = None,
    task_keywords: Sequence[str] = (),
    max_labeled_objects: int | None = None,
    max_percent_labeled: int | None = None,
    content_classifiers: Sequence[str] = (),
    pre_annotation_lambda_arn: str | None = None,
    consolidation_lambda_arn: str | None = None,
    lambdas: LambdaArns | None = None,
    source_label_attribute: str | None = None,
    output_kms_key_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    require_sagemaker_lambda_names: bool = True,
) -> dict[str, Any]:
    """The kwargs for ``sagemaker.create_labeling_job(**request)``, fully validated.

    Lambdas default to AWS's built-in ``PRE-<task_type>`` / ``ACS-<task_type>`` for ``region``;
    pass ``lambdas=deploy_lambdas(...)`` (or the two ARNs) to use ours instead. The template and
    the label file default to :func:`default_config_uris`.

    Args:
        label_attribute: the output key; defaults to ``job_name`` (as the console does),
            with ``-ref`` added for the task types whose label is a file reference.
        template_uri: the worker template; defaults to :func:`default_config_uris`' location.
            Not for NER, video-frame and 3D jobs: they take an AWS-hosted UI.
        human_task_ui_arn: the hosted UI of those jobs; defaults to
            :func:`~gt_toolkit.sagemaker.regions.human_task_ui_arn` for ``region``.
        workforce: ``public`` (Mechanical Turk; needs ``price_usd`` and the PII classifier),
            ``private`` or ``vendor`` (need ``workteam_arn``).
        price_usd: per task, one of :data:`ALLOWED_PRICES_USD` within :func:`price_range`.
        workers_per_object: defaults to 5 for bounding boxes, 3 otherwise (console defaults).
        max_concurrent_tasks: ``MaxConcurrentTaskCount``, also the most objects one
            post-annotation call answers (SageMaker's default: 1000). Above 1000 a
            :class:`~gt_toolkit.errors.ServiceQuotaWarning` is issued: the account needs AWS
            Support to raise its quota first.
        expected_boxes_per_image: the most boxes a worker may draw on one image; with it, a
            :class:`~gt_toolkit.errors.LambdaResponseSizeWarning` is issued when a batch of
            answers can pass Lambda's 6 MB response limit
            (:func:`consolidation_response_bytes`).
        source_label_attribute: for adjustment/verification jobs, the original job's attribute
            (the new one must differ).
        require_sagemaker_lambda_names: our Lambdas' names must contain "SageMaker" or similar
            so the managed Ground Truth policy may invoke them (§8 pitfall 12).

    Raises:
        ValidationError: every problem at once, from the service model and the GT rules.

    Examples:
        >>> request = build_labeling_job_request(
        ...     job_name="balls-1", manifest_uri="s3://bkt/in.manifest",
        ...     output_uri="s3://bkt/out", role_arn="arn:aws:iam::123456789012:role/gt",
        ...     labels=["ball"], task_title="Draw boxes", task_description="Box each ball",
        ...     region="us-east-1", workteam_arn=(
        ...         "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/team"))
        >>> request["HumanTaskConfig"]["PreHumanTaskLambdaArn"]
        'arn:aws:lambda:us-east-1:432418664414:function:PRE-BoundingBox'
    """
    problems = _positive_or_none("expected_boxes_per_image", expected_boxes_per_image)
    keywords = _string_list("task_keywords", task_keywords, problems)
    classifiers = list(
        dict.fromkeys(_string_list("content_classifiers", content_classifiers, problems))
    )
    default_template, default_labels = default_config_uris(output_uri, job_name)
    pre_arn, acs_arn = _lambda_pair(
        region, task_type, pre_annotation_lambda_arn, consolidation_lambda_arn, lambdas, problems
    )
    price = _parse_price(price_usd, task_type, problems) if price_usd is not None else None
    workers = (
        _DEFAULT_WORKERS.get(task_type, 3) if workers_per_object is None else workers_per_object
    )
    human: dict[str, Any] = {
        "WorkteamArn": _workteam(workforce, workteam_arn, region, problems),
        "UiConfig": _build_ui_config(
            task_type, region, template_uri, human_task_ui_arn, default_template
        ),
        "TaskTitle": task_title,
        "TaskDescription": task_description,
        "NumberOfHumanWorkersPerDataObject": workers,
        "TaskTimeLimitInSeconds": task_time_limit_seconds,
        **_optional_members(
            PreHumanTaskLambdaArn=pre_arn,
            AnnotationConsolidationConfig=acs_arn and {"AnnotationConsolidationLambdaArn": acs_arn},
            TaskKeywords=keywords,
            TaskAvailabilityLifetimeInSeconds=task_availability_lifetime_seconds,
            MaxConcurrentTaskCount=max_concurrent_tasks,
            PublicWorkforceTaskPrice=usd_to_price(price) if price is not None else None,
        ),
    }
    request: dict[str, Any] = {
        "LabelingJobName": job_name,
        "LabelAttributeName": (
            label_attribute
            if label_attribute is not None
            else _default_attribute(job_name, task_type)
        ),
        "InputConfig": {
            "DataSource": {"S3DataSource": {"ManifestS3Uri": manifest_uri}},
            **_optional_members(DataAttributes=classifiers and {"ContentClassifiers": classifiers}),
        },
        "OutputConfig": {
            "S3OutputPath": output_uri,
            **_optional_members(KmsKeyId=output_kms_key_id),
        },
        "RoleArn": role_arn,
        "LabelCategoryConfigS3Uri": label_category_uri or default_labels,
        "HumanTaskConfig": human,
        **_optional_members(
            StoppingConditions=_optional_members(
                MaxHumanLabeledObjectCount=max_labeled_objects,
                MaxPercentageOfInputDatasetLabeled=max_percent_labeled,
            ),
            Tags=tag_list(tags) if tags else None,
        ),
    }
    found = labeling_job_problems(
        request,
        region=region,
        task_type=task_type,
        workforce=workforce,
        labels=labels,
        source_label_attribute=source_label_attribute,
        require_sagemaker_lambda_names=require_sagemaker_lambda_names,
    )
    # Reported already: a given price refused above is left out of the request ("needs a
    # price" would report the same mistake again, wrongly), and so is the public team of a
    # region without Ground Truth, which the region rule names.
    no_team = workforce == "public" and workteam_arn is None and not _runs_ground_truth(region)
    problems.extend(
        p
        for p in found
        if not (price_usd is not None and p == _NEEDS_PRICE)
        and not (no_team and p.startswith(_TEAM_PATH))
    )
    if problems:
        raise ValidationError(list(dict.fromkeys(problems)), what="labeling job request")
    _warn_concurrent_task_quota(human)
    if expected_boxes_per_image is not None:
        _warn_response_size(human, expected_boxes_per_image, labels)
    return request


def _default_attribute(job_name: str, task_type: str) -> str:
    """The console's label attribute: the job name, ``-ref`` where the label is a file."""
    return f"{job_name}-ref" if task_type in _REF_TASK_TYPES else job_name


def _string_list(name: str, values: Sequence[str], problems: list[str]) -> list[str]:
    """``values`` as a list; one string is refused, not split into its characters."""
    if isinstance(values, str):
        problems.append(f"{name} must be a list of strings, got the single string {values!r}")
        return []
    return list(values)


def _positive_or_none(name: str, value: object) -> list[str]:
    """A problem when ``value`` is given and is not a positive integer."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return []
    return [f"{name} must be a positive integer, got {value!r}"]


# ---------------------------------------------------------------- the Ground Truth rules


@dataclass(frozen=True, slots=True)
class LabelingJobCheck:
    """A CreateLabelingJob request and what it does not say itself, as every rule reads it."""

    request: Mapping[str, Any]
    region: str
    task_type: str
    workforce: Workforce
    labels: Sequence[str] | None = None
    source_label_attribute: str | None = None
    require_sagemaker_lambda_names: bool = True

    @classmethod
    def of(
        cls,
        request: Mapping[str, Any],
        *,
        region: str,
        task_type: str = "BoundingBox",
        workforce: Workforce | None = None,
        labels: Sequence[str] | None = None,
        source_label_attribute: str | None = None,
        require_sagemaker_lambda_names: bool = True,
    ) -> LabelingJobCheck:
        """The check of ``request``; ``workforce`` is read from the workteam ARN when not given."""
        check = cls(
            request,
            region,
            task_type,
            "private",
            labels,
            source_label_attribute,
            require_sagemaker_lambda_names,
        )
        if workforce is None:
            team = check.team
            workforce = (
                "public"
                if "workteam/public-crowd" in team
                else ("vendor" if "workteam/vendor-crowd" in team else "private")
            )
        return replace(check, workforce=workforce)

    @property
    def human(self) -> Mapping[str, Any]:
        """``HumanTaskConfig``, or an empty mapping when it is missing or not an object."""
        human = self.request.get("HumanTaskConfig")
        return human if isinstance(human, Mapping) else {}

    @property
    def team(self) -> str:
        """The workteam ARN, or ``""``."""
        team = self.human.get("WorkteamArn")
        return team if isinstance(team, str) else ""

    def lambdas(self) -> dict[str, object]:
        """The two Lambda ARNs by request path (either may be missing or not a string)."""
        return {
            _PRE_PATH: self.human.get("PreHumanTaskLambdaArn"),
            _ACS_PATH: _dig(
                self.human, "AnnotationConsolidationConfig", "AnnotationConsolidationLambdaArn"
            ),
        }

    def regional_arns(self) -> dict[str, str]:
        """The ARNs that name the job's region, by request path (the given, non-empty ones).

        KMS keys may also be given as a bare key id or alias; those are no ARN and not checked.
        """
        algorithms = _dig(self.request, "LabelingJobAlgorithmsConfig")
        arns = {
            _TEAM_PATH: self.team,
            **self.lambdas(),
            _UI_ARN_PATH: _dig(self.human, "UiConfig", "HumanTaskUiArn"),
            # SSE-KMS keys must be in the output bucket's region, which is the job's.
            "OutputConfig.KmsKeyId": _dig(self.request, "OutputConfig", "KmsKeyId"),
            _ALGORITHM_PATH: _dig(algorithms, "LabelingJobAlgorithmSpecificationArn"),
            "LabelingJobAlgorithmsConfig.InitialActiveLearningModelArn": _dig(
                algorithms, "InitialActiveLearningModelArn"
            ),
            "LabelingJobAlgorithmsConfig.LabelingJobResourceConfig.VolumeKmsKeyId": _dig(
                algorithms, "LabelingJobResourceConfig", "VolumeKmsKeyId"
            ),
        }
        return {path: arn for path, arn in arns.items() if isinstance(arn, str) and arn}

    def all_arns(self) -> dict[str, str]:
        """Every ARN of the request by path: the (global) role too."""
        arns = {"RoleArn": self.request.get("RoleArn"), **self.regional_arns()}
        return {
            path: arn
            for path, arn in arns.items()
            if isinstance(arn, str) and arn.startswith("arn:")
        }


Rule = Callable[[LabelingJobCheck], Iterator[str]]
"""One Ground Truth rule: the problems it finds in a request (none for a good one)."""


def _dig(value: object, *keys: str) -> Any:
    """``value[k1][k2]...`` or ``None`` when any level is missing or not a mapping."""
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _check_task_type(job: LabelingJobCheck) -> Iterator[str]:
    if job.task_type not in BUILTIN_TASK_TYPES and job.task_type != "Custom":
        yield (
            f"task_type {job.task_type!r} is not a Ground Truth task type; one of: "
            f"{', '.join((*BUILTIN_TASK_TYPES, 'Custom'))}"
        )


def _check_region(job: LabelingJobCheck) -> Iterator[str]:
    if job.region not in BUILTIN_LAMBDA_ACCOUNTS:
        yield (
            f"region {job.region!r} does not run Ground Truth; one of: "
            f"{', '.join(sorted(BUILTIN_LAMBDA_ACCOUNTS))}"
        )


def _check_label_attribute(job: LabelingJobCheck) -> Iterator[str]:
    """§8 pitfall 17: the output key Ground Truth and the training channels read."""
    attribute = job.request.get("LabelAttributeName")
    if not isinstance(attribute, str):
        return
    needs_ref = job.task_type in _REF_TASK_TYPES
    for problem in label_attribute_problems(attribute, reference=needs_ref, pattern=False):
        yield f"LabelAttributeName: {problem} ({job.task_type} jobs)"
    if job.source_label_attribute is not None and attribute == job.source_label_attribute:
        yield (
            "LabelAttributeName must differ from the original job's "
            f"({job.source_label_attribute!r}) for adjustment and verification jobs"
        )


def _check_s3_locations(job: LabelingJobCheck) -> Iterator[str]:
    """Ground Truth reads and writes ``s3://`` only (the model also allows https)."""
    locations = {
        "InputConfig.DataSource.S3DataSource.ManifestS3Uri": _dig(
            job.request, "InputConfig", "DataSource", "S3DataSource", "ManifestS3Uri"
        ),
        "OutputConfig.S3OutputPath": _dig(job.request, "OutputConfig", "S3OutputPath"),
        "LabelCategoryConfigS3Uri": job.request.get("LabelCategoryConfigS3Uri"),
        "HumanTaskConfig.UiConfig.UiTemplateS3Uri": _dig(job.human, "UiConfig", "UiTemplateS3Uri"),
    }
    for path, uri in locations.items():
        if isinstance(uri, str):
            try:
                parse_s3_uri(uri, require_key=not path.startswith("OutputConfig"))
            except S3UriError as exc:
                yield f"{path}: {exc}"


def _check_ui_config(job: LabelingJobCheck) -> Iterator[str]:
    """NER, video-frame and 3D jobs take their own hosted UI; every other task a template."""
    ui = job.human.get("UiConfig")
    if not isinstance(ui, Mapping):
        return
    hosted = HUMAN_TASK_UIS.get(job.task_type)
    if not ui and hosted is not None and not _runs_ground_truth(job.region):
        return  # no hosted UI to name there: the region rule reports the region
    if len(ui) != 1:
        yield "HumanTaskConfig.UiConfig: set exactly one of UiTemplateS3Uri, HumanTaskUiArn"
        return
    ui_arn = ui.get("HumanTaskUiArn")
    if hosted is None and ui_arn is not None:
        yield (
            f"{_UI_ARN_PATH}: {job.task_type} jobs take a worker template (UiTemplateS3Uri); "
            "AWS hosts worker UIs only for NER, video-frame and 3D jobs"
        )
    elif hosted is not None and ui_arn is None:
        yield (
            f"{_UI_TEMPLATE_PATH}: {job.task_type} jobs take the AWS-hosted worker UI "
            f"human-task-ui/{hosted} (HumanTaskUiArn), not a template"
        )
    elif hosted is not None and isinstance(ui_arn, str):
        parsed = parse_arn(ui_arn)
        expected = f"human-task-ui/{hosted}"
        if parsed is not None and (
            parsed.account != HUMAN_TASK_UI_ACCOUNT or parsed.resource != expected
        ):
            yield (
                f"{_UI_ARN_PATH}: {job.task_type} jobs take AWS's {expected} of account "
                f"{HUMAN_TASK_UI_ACCOUNT}, got {parsed.resource} of account {parsed.account}"
            )


def _check_arn_regions(job: LabelingJobCheck) -> Iterator[str]:
    """§8 pitfall 16: teams, Lambdas and worker UIs live in the job's region."""
    for path, arn in job.regional_arns().items():
        parsed = parse_arn(arn)
        if parsed is not None and parsed.region and parsed.region != job.region:
            yield f"{path} is in {parsed.region}, but the job runs in {job.region}"


def _check_arn_empty_regions(job: LabelingJobCheck) -> Iterator[str]:
    for path, arn in job.regional_arns().items():
        parsed = parse_arn(arn)
        if parsed is not None and not parsed.region:
            yield f"{path} has an empty region; a {parsed.service} ARN names one ({job.region})"


def _check_arn_partitions(job: LabelingJobCheck) -> Iterator[str]:
    """An ARN of another partition (``aws-cn``, ``aws-us-gov``) is never the job's."""
    partition = region_partition(job.region)
    for path, arn in job.all_arns().items():
        parsed = parse_arn(arn)
        if parsed is not None and parsed.partition != partition:
            yield (
                f"{path} is in the {parsed.partition} partition, but {job.region} is in {partition}"
            )


def _builtin_kind(arn: object) -> str | None:
    """``BoundingBox`` for a ``PRE-``/``ACS-BoundingBox`` function ARN, else ``None``."""
    name = lambda_function_name(arn) if isinstance(arn, str) else None
    return name[4:] if name is not None and name.startswith(("PRE-", "ACS-")) else None


def _check_builtin_lambdas(job: LabelingJobCheck) -> Iterator[str]:
    """AWS's own Lambdas: the right prefix, a real task type, the region's account."""
    kinds: dict[str, str] = {}
    for (path, arn), prefix in zip(job.lambdas().items(), ("PRE-", "ACS-"), strict=True):
        kind = _builtin_kind(arn)
        if kind is None:
            continue
        name = lambda_function_name(str(arn))
        field = path.rsplit(".", 1)[-1]
        kinds[prefix] = kind
        if name is not None and not name.startswith(prefix):
            yield f"{field} must be a {prefix}* function, got {name}"
        if kind not in BUILTIN_TASK_TYPES:
            yield f"{field}: {name} is not a built-in Ground Truth Lambda"
        account = BUILTIN_LAMBDA_ACCOUNTS.get(job.region)
        if account is not None and f":{account}:function:" not in str(arn):
            yield f"{field}: the built-in {name} for {job.region} is owned by account {account}"
    if len(set(kinds.values())) > 1:
        yield (
            f"the built-in Lambdas disagree on the task type: PRE-{kinds['PRE-']} "
            f"vs ACS-{kinds['ACS-']}"
        )
    elif kinds and job.task_type not in kinds.values() and job.task_type != "Custom":
        kind = next(iter(kinds.values()))
        yield f"built-in {kind} Lambdas do not match task_type {job.task_type!r}"


def _check_lambda_names(job: LabelingJobCheck) -> Iterator[str]:
    """§8 pitfall 12: the managed Ground Truth policy invokes only some function names."""
    if not job.require_sagemaker_lambda_names:
        return
    for path, arn in job.lambdas().items():
        name = lambda_function_name(arn) if isinstance(arn, str) else None
        if name is None or _builtin_kind(arn) is not None:
            continue
        if not any(marker in name for marker in _LAMBDA_NAME_MARKERS):
            yield (
                f"{path.rsplit('.', 1)[-1]}: function name {name!r} must contain one of "
                f"{', '.join(_LAMBDA_NAME_MARKERS)} so the Ground Truth execution policy may "
                "invoke it (or pass require_sagemaker_lambda_names=False)"
            )


def _check_workteam(job: LabelingJobCheck) -> Iterator[str]:
    team = job.team
    if job.workforce == "public":
        if f":{PUBLIC_WORKTEAM_ACCOUNT}:workteam/public-crowd/default" not in team:
            yield (
                f"{_TEAM_PATH}: the public workforce is "
                f"arn:aws:sagemaker:{job.region}:{PUBLIC_WORKTEAM_ACCOUNT}:workteam/public-crowd/default"
            )
        return
    if "workteam/public-crowd" in team:
        yield f"a {job.workforce} workforce cannot use the public-crowd workteam"
    expected = "workteam/vendor-crowd/" if job.workforce == "vendor" else "workteam/private-crowd/"
    if team and expected not in team:
        yield f"{_TEAM_PATH}: a {job.workforce} team ARN has '{expected}'"


def _check_price(job: LabelingJobCheck) -> Iterator[str]:
    """Mechanical Turk needs a price on its steps; other workforces take none."""
    price = job.human.get("PublicWorkforceTaskPrice")
    if job.workforce != "public" and price is not None:
        yield f"PublicWorkforceTaskPrice applies only to the public workforce, not {job.workforce}"
    elif job.workforce == "public" and price is None:
        yield _NEEDS_PRICE
    elif job.workforce == "public" and isinstance(price, Mapping):
        yield from _price_problems(price, job.task_type)


def _price_problems(price: Mapping[str, Any], task_type: str) -> list[str]:
    """A hand-written PublicWorkforceTaskPrice checked against the steps for ``task_type``."""
    usd = price.get("AmountInUsd")
    if not isinstance(usd, Mapping):
        return []  # the service-model check already reported the shape
    try:
        amount = (
            Decimal(int(usd.get("Dollars", 0)))
            + Decimal(int(usd.get("Cents", 0))) / 100
            + Decimal(int(usd.get("TenthFractionsOfACent", 0))) / 1000
        )
    except (TypeError, ValueError):
        return []
    problems: list[str] = []
    _parse_price(amount.quantize(Decimal("0.001")), task_type, problems)
    return problems


def _check_content_classifiers(job: LabelingJobCheck) -> Iterator[str]:
    classifiers = _dig(job.request, "InputConfig", "DataAttributes", "ContentClassifiers") or []
    if job.workforce == "public" and PII_CLASSIFIER not in classifiers:
        yield (
            f"a public workforce requires the {PII_CLASSIFIER} content classifier "
            "(declare that the data holds no personal information); otherwise the job fails"
        )


def _check_mturk_task_type(job: LabelingJobCheck) -> Iterator[str]:
    if job.workforce == "public" and _is_video_or_3d(job.task_type):
        yield f"Mechanical Turk cannot work on {job.task_type} jobs"


def _check_availability_lifetime(job: LabelingJobCheck) -> Iterator[str]:
    lifetime = job.human.get("TaskAvailabilityLifetimeInSeconds")
    public = job.workforce == "public"
    maximum = _MTURK_MAX_LIFETIME if public else _PRIVATE_MAX_LIFETIME
    if isinstance(lifetime, int) and lifetime > maximum:
        whose = "Mechanical Turk's" if public else f"the {job.workforce} workforce"
        yield (
            f"TaskAvailabilityLifetimeInSeconds {lifetime} exceeds {whose} maximum of "
            f"{maximum} ({maximum // 3600} hours)"
        )


def _check_task_time_limit(job: LabelingJobCheck) -> Iterator[str]:
    """A worker's time on one task: 8 or 720 hours by task type, never past the lifetime."""
    limit = job.human.get("TaskTimeLimitInSeconds")
    if not isinstance(limit, int):
        return
    if not _is_video_or_3d(job.task_type) and limit > _IMAGE_TEXT_MAX_TIME:
        yield (
            f"TaskTimeLimitInSeconds {limit} exceeds the {_IMAGE_TEXT_MAX_TIME} s (8 hours) "
            "allowed for image, text and custom tasks"
        )
    elif limit > _VIDEO_3D_MAX_TIME:
        yield (
            f"TaskTimeLimitInSeconds {limit} exceeds the {_VIDEO_3D_MAX_TIME} s (30 days) "
            "allowed for video and 3D point cloud tasks"
        )
    lifetime = job.human.get("TaskAvailabilityLifetimeInSeconds")
    if isinstance(lifetime, int) and limit > lifetime:
        yield (
            f"TaskTimeLimitInSeconds {limit} is longer than TaskAvailabilityLifetimeInSeconds "
            f"{lifetime}: a task would expire while a worker still has time on it"
        )


def _check_automated_labeling(job: LabelingJobCheck) -> Iterator[str]:
    """Automated data labeling serves four task types, each with AWS's own algorithm ARN."""
    arn = _dig(job.request, "LabelingJobAlgorithmsConfig", "LabelingJobAlgorithmSpecificationArn")
    if not isinstance(arn, str):
        return
    if job.task_type not in LABELING_ALGORITHMS:
        yield (
            f"LabelingJobAlgorithmsConfig: automated data labeling does not serve {job.task_type} "
            f"jobs; only {', '.join(LABELING_ALGORITHMS)}"
        )
        return
    try:
        expected = labeling_algorithm_arn(job.region, job.task_type)
    except ValidationError:
        return  # the region rule names the region
    parsed, wanted = parse_arn(arn), parse_arn(expected)
    if parsed is None or wanted is None:
        return  # the service model reports a non-ARN
    if (parsed.account, parsed.resource) != (wanted.account, wanted.resource):
        yield f"{_ALGORITHM_PATH}: {job.task_type} jobs take {expected}"


def _check_labels(job: LabelingJobCheck) -> Iterator[str]:
    if job.labels is None:
        return
    task_type = job.task_type if job.task_type in TASK_TYPES else "Custom"
    for problem in validate_labels(job.labels, task_type=task_type):
        yield f"labels: {problem}"


LABELING_JOB_RULES: Final[Mapping[str, Rule]] = {
    "task-type": _check_task_type,
    "region": _check_region,
    "label-attribute": _check_label_attribute,
    "s3-locations": _check_s3_locations,
    "ui-config": _check_ui_config,
    "arn-regions": _check_arn_regions,
    "arn-empty-regions": _check_arn_empty_regions,
    "arn-partitions": _check_arn_partitions,
    "builtin-lambdas": _check_builtin_lambdas,
    "lambda-names": _check_lambda_names,
    "workteam": _check_workteam,
    "price": _check_price,
    "content-classifiers": _check_content_classifiers,
    "mturk-task-type": _check_mturk_task_type,
    "availability-lifetime": _check_availability_lifetime,
    "task-time-limit": _check_task_time_limit,
    "automated-labeling": _check_automated_labeling,
    "labels": _check_labels,
}
"""The Ground Truth rules the service model does not carry, by name, in the order reported."""


def labeling_job_problems(
    request: Mapping[str, Any],
    *,
    region: str,
    task_type: str = "BoundingBox",
    workforce: Workforce | None = None,
    labels: Sequence[str] | None = None,
    source_label_attribute: str | None = None,
    require_sagemaker_lambda_names: bool = True,
) -> list[str]:
    """Every problem with a CreateLabelingJob request: service model plus Ground Truth rules.

    Works on any request dict (also hand-written ones), so a notebook user can check theirs.
    ``workforce`` is inferred from the workteam ARN when not given.
    """
    job = LabelingJobCheck.of(
        request,
        region=region,
        task_type=task_type,
        workforce=workforce,
        labels=labels,
        source_label_attribute=source_label_attribute,
        require_sagemaker_lambda_names=require_sagemaker_lambda_names,
    )
    problems = problems_as_strings(validate_request("CreateLabelingJob", request))
    for rule in LABELING_JOB_RULES.values():
        problems.extend(rule(job))
    return problems


def create_labeling_job(
    request: Mapping[str, Any],
    *,
    sagemaker: SageMakerClient,
    store: S3Store,
    labels: Sequence[str],
    template: str | bytes | None = None,
    task_type: str = "BoundingBox",
    short_instruction: str | None = None,
    full_instruction: str | None = None,
    audit_label_attribute: str | None = None,
    sse: ServerSideEncryption | None = None,
) -> str:
    """Upload the worker template and label file where ``request`` points, then create the job.

    The request is re-checked against the service model first, so nothing is uploaded for a
    request SageMaker would refuse. Returns the ``LabelingJobArn``.

    ``task_type`` must be the one the request was built for (its built-in Lambdas and hosted
    UI name it): the label file is written for it.

    The uploads are encrypted with the request's ``OutputConfig.KmsKeyId`` (SSE-KMS) when it
    names one, else as ``sse`` asks, so a bucket whose policy refuses unencrypted puts takes
    them; the job's role must be allowed to decrypt with that key.

    Args:
        sse: ``"AES256"`` (SSE-S3) or ``"aws:kms"`` (the bucket's or AWS's default KMS key)
            for the uploads when the request names no KMS key.
        short_instruction: NER jobs read their worker instructions from the label file, so
            they need this or ``full_instruction``.
        full_instruction: as ``short_instruction``.
        audit_label_attribute: the original job's label attribute, which video-frame and 3D
            adjustment jobs name in their label file (``auditLabelAttributeName``).
    """
    problems = problems_as_strings(validate_request("CreateLabelingJob", request))
    template_uri = _dig(request, "HumanTaskConfig", "UiConfig", "UiTemplateS3Uri")
    if template_uri is not None and template is None:
        problems.append("the request names UiTemplateS3Uri, so pass the template to upload")
    if template_uri is None and template is not None:
        problems.append("the request uses an AWS-hosted worker UI, so no template is used")
    problems.extend(_task_type_problems(request, task_type))
    # a custom template over AWS's own Lambdas: their task type reads the label file
    builtin = _builtin_kind(_dig(request, "HumanTaskConfig", "PreHumanTaskLambdaArn"))
    problems.extend(
        _label_file_problems(
            builtin if task_type == "Custom" and builtin is not None else task_type,
            short_instruction or full_instruction,
            audit_label_attribute,
        )
    )
    kms_key = _dig(request, "OutputConfig", "KmsKeyId") or None
    if kms_key is not None and sse == "AES256":
        problems.append(
            "the request's OutputConfig.KmsKeyId asks for SSE-KMS uploads, but sse is 'AES256'"
        )
    problems.extend(_automated_labeling_size_problems(request, store))
    label_uri = request.get("LabelCategoryConfigS3Uri")
    if problems:
        raise ValidationError(problems, what="labeling job request")
    config = build_label_category_config(
        labels,
        task_type=task_type if task_type in TASK_TYPES else "Custom",
        short_instruction=short_instruction,
        full_instruction=full_instruction,
        audit_label_attribute=audit_label_attribute,
    )
    encryption: dict[str, Any] = {"sse": sse, "kms_key_id": kms_key}
    if template_uri is not None and template is not None:
        body = template.encode("utf-8") if isinstance(template, str) else template
        store.put_bytes(template_uri, body, content_type="text/html", **encryption)
    if isinstance(label_uri, str):
        store.put_bytes(
            label_uri, orjson.dumps(config), content_type="application/json", **encryption
        )
    response = sagemaker.create_labeling_job(**request)
    return response["LabelingJobArn"]


def _automated_labeling_size_problems(request: Mapping[str, Any], store: S3Store) -> list[str]:
    """Automated data labeling refuses a manifest of under 1,250 objects (§5).

    Counts the manifest's non-blank lines, streaming, and stops at the minimum. A manifest
    that cannot be read here (another account's bucket, no permission) is left to SageMaker.
    """
    manifest = _dig(request, "InputConfig", "DataSource", "S3DataSource", "ManifestS3Uri")
    if not isinstance(manifest, str) or not _dig(request, "LabelingJobAlgorithmsConfig"):
        return []
    try:
        count = _count_objects(manifest, store, at_most=AUTOMATED_LABELING_MIN_OBJECTS)
    except (StorageError, S3UriError):
        return []
    if count >= AUTOMATED_LABELING_MIN_OBJECTS:
        return []
    return [
        f"LabelingJobAlgorithmsConfig: automated data labeling needs at least "
        f"{AUTOMATED_LABELING_MIN_OBJECTS:,} data objects, but {manifest} holds {count}; "
        "leave LabelingJobAlgorithmsConfig out to have workers label them all"
    ]


def _count_objects(manifest: str, store: S3Store, *, at_most: int) -> int:
    """The manifest's non-blank lines (its data objects), counting no further than ``at_most``."""
    count = 0
    for batch in iter_line_batches(manifest, store=store):
        count += sum(1 for line in batch if line.strip())
        if count >= at_most:
            return at_most
    return count


def _task_type_problems(request: Mapping[str, Any], task_type: str) -> list[str]:
    """Where the request itself says it is for another task type than ``task_type``.

    The label file is written for ``task_type`` (NER instructions, an adjustment job's audited
    attribute), so a request built for NER and created with the default ``BoundingBox`` would
    go out with a label file its job cannot use. AWS's own Lambdas and hosted UIs name theirs.
    A ``Custom`` job (a template of its own) may use AWS's Lambdas, as the request's checks
    allow; its label file then answers to their task type (:func:`create_labeling_job`).
    """
    pre = _builtin_kind(_dig(request, "HumanTaskConfig", "PreHumanTaskLambdaArn"))
    if pre is not None and pre != task_type and task_type != "Custom":
        return [
            f"the request's built-in Lambdas are for {pre} jobs, but task_type is {task_type!r}: "
            f"pass task_type={pre!r}, which the label file is written for"
        ]
    ui = _dig(request, "HumanTaskConfig", "UiConfig", "HumanTaskUiArn")
    if isinstance(ui, str) and HUMAN_TASK_UIS.get(task_type) != ui.rsplit("/", 1)[-1]:
        return [
            f"the request's worker UI {ui.rsplit(':', 1)[-1]} is not one of {task_type!r} "
            "jobs: pass the task_type the request was built for, which the label file is "
            "written for"
        ]
    return []


def _label_file_problems(
    task_type: str, instructions: str | None, audit_label_attribute: str | None
) -> list[str]:
    """What the label file of ``task_type`` must hold beyond its labels.

    botocore's ``LabelCategoryConfigS3Uri``: NER jobs take their instructions from it, and
    video-frame and 3D adjustment jobs the attribute they adjust.
    """
    problems = []
    if task_type == "NamedEntityRecognition" and not instructions:
        problems.append(
            "NamedEntityRecognition jobs read their worker instructions from the label file: "
            "pass short_instruction and/or full_instruction"
        )
    audited = task_type in HUMAN_TASK_UIS and task_type.startswith("Adjustment")
    if audited and not audit_label_attribute:
        problems.append(
            f"{task_type} jobs name the label attribute they adjust in the label file: pass "
            "audit_label_attribute (the original job's LabelAttributeName)"
        )
    return problems


@dataclass(frozen=True, slots=True)
class LabelingProgress:
    """A snapshot of a labeling job's status and ``LabelCounters``."""

    status: str
    total_labeled: int
    human_labeled: int
    machine_labeled: int
    failed: int
    unlabeled: int

    @classmethod
    def from_description(cls, description: Mapping[str, Any]) -> LabelingProgress:
        """Read ``describe_labeling_job``'s answer."""
        counters = description.get("LabelCounters") or {}
        return cls(
            status=str(description.get("LabelingJobStatus", "Unknown")),
            total_labeled=int(counters.get("TotalLabeled", 0)),
            human_labeled=int(counters.get("HumanLabeled", 0)),
            machine_labeled=int(counters.get("MachineLabeled", 0)),
            failed=int(counters.get("FailedNonRetryableError", 0)),
            unlabeled=int(counters.get("Unlabeled", 0)),
        )

    @property
    def total(self) -> int:
        """Objects in the job: labeled, failed and still waiting."""
        return self.total_labeled + self.failed + self.unlabeled

    @property
    def fraction_done(self) -> float:
        """Share of objects finished (labeled or failed), 0 for an empty job."""
        total = self.total
        return (self.total_labeled + self.failed) / total if total else 0.0

    def format(self) -> str:
        """One human line: ``InProgress 12/40 labeled (30%), 1 failed``."""
        return (
            f"{self.status} {self.total_labeled}/{self.total} labeled "
            f"({self.fraction_done:.0%}; human {self.human_labeled}, machine "
            f"{self.machine_labeled}), {self.failed} failed"
        )


_TERMINAL: Final = frozenset({"Completed", "Failed", "Stopped"})


def _print_progress(progress: LabelingProgress) -> None:
    print(progress.format(), file=sys.stderr, flush=True)


def wait_for_labeling_job(
    sagemaker: SageMakerClient,
    job_name: str,
    *,
    poll_seconds: float = 60.0,
    timeout_seconds: float | None = None,
    on_progress: Callable[[LabelingProgress], None] | None = _print_progress,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    raise_on_failure: bool = True,
) -> dict[str, Any]:
    """Poll ``describe_labeling_job`` until it ends, reporting each change of ``LabelCounters``.

    ``sleep`` and ``clock`` are injectable so tests (and notebooks) control time.

    Raises:
        LabelingJobFailedError: the job ended ``Failed`` or ``Stopped`` (``raise_on_failure``).
        WaitTimeoutError: still running after ``timeout_seconds``.
    """
    started = clock()
    last: LabelingProgress | None = None
    while True:
        description: dict[str, Any] = dict(
            sagemaker.describe_labeling_job(LabelingJobName=job_name)
        )
        progress = LabelingProgress.from_description(description)
        if on_progress is not None and progress != last:
            on_progress(progress)
        last = progress
        if progress.status in _TERMINAL:
            if raise_on_failure and progress.status != "Completed":
                raise LabelingJobFailedError(description)
            return description
        if timeout_seconds is not None and clock() - started >= timeout_seconds:
            raise WaitTimeoutError(
                f"labeling job {job_name} still {progress.status} after {timeout_seconds:g} s "
                f"({progress.format()})"
            )
        sleep(poll_seconds)

"""CreateLabelingJob requests built from a few arguments and refused with every problem listed.

Users assemble this request by hand, copy Lambda ARNs for the wrong region and then meet the
``ValidationException`` s one field at a time. :func:`build_labeling_job_request` is pure: it
returns the kwargs for ``sagemaker.create_labeling_job(**request)`` after checking them
against botocore's service model (:mod:`gt_toolkit.sagemaker.service_validation`) *and* the Ground
Truth
rules the model does not carry (``docs/ground-truth-formats.md`` §5 and §8 pitfalls 12, 16,
17). :func:`create_labeling_job` is the I/O edge: it uploads the worker template and the label
file, then calls SageMaker; :func:`wait_for_labeling_job` polls ``LabelCounters``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import orjson

from gt_toolkit.errors import GtToolkitError, S3UriError, ValidationError
from gt_toolkit.formats.label_categories import (
    TASK_TYPES,
    build_label_category_config,
    validate_labels,
)
from gt_toolkit.sagemaker.regions import (
    BUILTIN_LAMBDA_ACCOUNTS,
    BUILTIN_TASK_TYPES,
    PUBLIC_WORKTEAM_ACCOUNT,
    arn_region,
    builtin_lambda_arns,
    lambda_function_name,
    public_workteam_arn,
)
from gt_toolkit.sagemaker.service_validation import problems_as_strings, validate_request
from gt_toolkit.storage.files import join_location
from gt_toolkit.storage.s3 import S3Store, parse_s3_uri

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient

__all__ = [
    "ALLOWED_PRICES_USD",
    "PII_CLASSIFIER",
    "LabelingJobFailedError",
    "LabelingProgress",
    "LambdaArns",
    "WaitTimeoutError",
    "Workforce",
    "build_labeling_job_request",
    "create_labeling_job",
    "default_config_uris",
    "labeling_job_problems",
    "price_range",
    "usd_to_price",
    "wait_for_labeling_job",
]

Workforce = Literal["public", "private", "vendor"]


class LambdaArns(Protocol):
    """Our deployed pre/post-annotation Lambdas.

    ``gt_toolkit.sagemaker.lambda_deploy.DeployedLambdas``).
    """

    @property
    def pre_annotation_arn(self) -> str:
        """The ``PreHumanTaskLambdaArn``."""
        ...

    @property
    def post_annotation_arn(self) -> str:
        """The ``AnnotationConsolidationLambdaArn``."""
        ...


PII_CLASSIFIER: Final = "FreeOfPersonallyIdentifiableInformation"
ADULT_CLASSIFIER: Final = "FreeOfAdultContent"

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
_HUMAN_TASK_UI_TYPES: Final = ("NamedEntityRecognition", *_VIDEO_OR_3D)
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
_RESERVED_ATTRIBUTES: Final = frozenset({"source", "source-ref"})


def _is_video_or_3d(task_type: str) -> bool:
    return any(marker in task_type for marker in _VIDEO_OR_3D)


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
        label_attribute: the output key; defaults to ``job_name`` (as the console does).
        workforce: ``public`` (Mechanical Turk; needs ``price_usd`` and the PII classifier),
            ``private`` or ``vendor`` (need ``workteam_arn``).
        price_usd: per task, one of :data:`ALLOWED_PRICES_USD` within :func:`price_range`.
        workers_per_object: defaults to 5 for bounding boxes, 3 otherwise (console defaults).
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
    problems: list[str] = []
    attribute = label_attribute if label_attribute is not None else job_name
    default_template, default_labels = default_config_uris(output_uri, job_name)
    ui_config: dict[str, str] = {}
    uses_hosted_ui = task_type.startswith(_HUMAN_TASK_UI_TYPES) or _is_video_or_3d(task_type)
    if human_task_ui_arn is not None:
        ui_config["HumanTaskUiArn"] = human_task_ui_arn
    if template_uri is not None or human_task_ui_arn is None:
        if uses_hosted_ui and template_uri is None:
            problems.append(
                f"{task_type} jobs use an AWS-hosted worker UI: pass human_task_ui_arn "
                "(regions.human_task_ui_arn)"
            )
        else:
            ui_config["UiTemplateS3Uri"] = template_uri or default_template

    pre_arn, acs_arn = pre_annotation_lambda_arn, consolidation_lambda_arn
    if lambdas is not None:
        pre_arn = pre_arn if pre_arn is not None else lambdas.pre_annotation_arn
        acs_arn = acs_arn if acs_arn is not None else lambdas.post_annotation_arn
    if pre_arn is None or acs_arn is None:
        try:
            builtin_pre, builtin_acs = builtin_lambda_arns(region, task_type)
        except ValidationError as exc:
            problems.extend(
                f"no built-in Lambdas to default to: {p}; pass pre_annotation_lambda_arn and "
                "consolidation_lambda_arn"
                for p in exc.problems
            )
            builtin_pre = builtin_acs = ""
        pre_arn = pre_arn if pre_arn is not None else builtin_pre
        acs_arn = acs_arn if acs_arn is not None else builtin_acs

    if workforce == "public":
        team = workteam_arn
        if team is None:
            try:
                team = public_workteam_arn(region)
            except ValidationError as exc:
                problems.extend(exc.problems)
                team = ""
    elif workforce in ("private", "vendor"):
        if workteam_arn is None:
            problems.append(f"a {workforce} workforce needs workteam_arn")
        team = workteam_arn or ""
    else:
        problems.append(f"workforce {workforce!r} is not one of: public, private, vendor")
        team = workteam_arn or ""

    workers = workers_per_object
    if workers is None:
        workers = _DEFAULT_WORKERS.get(task_type, 3)

    human: dict[str, Any] = {
        "WorkteamArn": team,
        "UiConfig": ui_config,
        "TaskTitle": task_title,
        "TaskDescription": task_description,
        "NumberOfHumanWorkersPerDataObject": workers,
        "TaskTimeLimitInSeconds": task_time_limit_seconds,
    }
    if pre_arn:
        human["PreHumanTaskLambdaArn"] = pre_arn
    if acs_arn:
        human["AnnotationConsolidationConfig"] = {"AnnotationConsolidationLambdaArn": acs_arn}
    if task_keywords:
        human["TaskKeywords"] = list(task_keywords)
    if task_availability_lifetime_seconds is not None:
        human["TaskAvailabilityLifetimeInSeconds"] = task_availability_lifetime_seconds
    if max_concurrent_tasks is not None:
        human["MaxConcurrentTaskCount"] = max_concurrent_tasks
    if price_usd is not None:
        amount = _parse_price(price_usd, task_type, problems)
        if amount is not None:
            human["PublicWorkforceTaskPrice"] = usd_to_price(amount)

    request: dict[str, Any] = {
        "LabelingJobName": job_name,
        "LabelAttributeName": attribute,
        "InputConfig": {"DataSource": {"S3DataSource": {"ManifestS3Uri": manifest_uri}}},
        "OutputConfig": {"S3OutputPath": output_uri},
        "RoleArn": role_arn,
        "LabelCategoryConfigS3Uri": label_category_uri or default_labels,
        "HumanTaskConfig": human,
    }
    if output_kms_key_id is not None:
        request["OutputConfig"]["KmsKeyId"] = output_kms_key_id
    if content_classifiers:
        request["InputConfig"]["DataAttributes"] = {
            "ContentClassifiers": list(dict.fromkeys(content_classifiers))
        }
    stopping: dict[str, int] = {}
    if max_labeled_objects is not None:
        stopping["MaxHumanLabeledObjectCount"] = max_labeled_objects
    if max_percent_labeled is not None:
        stopping["MaxPercentageOfInputDatasetLabeled"] = max_percent_labeled
    if stopping:
        request["StoppingConditions"] = stopping
    if tags:
        request["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]

    found = labeling_job_problems(
        request,
        region=region,
        task_type=task_type,
        workforce=workforce,
        labels=labels,
        source_label_attribute=source_label_attribute,
        require_sagemaker_lambda_names=require_sagemaker_lambda_names,
    )
    if price_usd is not None:
        # A given price that was refused above is left out of the request; "needs a price"
        # would then be a second, wrong report of the same mistake.
        found = [p for p in found if p != _NEEDS_PRICE]
    problems.extend(found)
    if problems:
        raise ValidationError(list(dict.fromkeys(problems)), what="labeling job request")
    return request


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
    problems = problems_as_strings(validate_request("CreateLabelingJob", request))
    human = request.get("HumanTaskConfig")
    human = human if isinstance(human, Mapping) else {}
    team = human.get("WorkteamArn")
    team = team if isinstance(team, str) else ""
    if workforce is None:
        workforce = (
            "public"
            if "workteam/public-crowd" in team
            else ("vendor" if "workteam/vendor-crowd" in team else "private")
        )

    if task_type not in BUILTIN_TASK_TYPES and task_type != "Custom":
        problems.append(
            f"task_type {task_type!r} is not a Ground Truth task type; one of: "
            f"{', '.join((*BUILTIN_TASK_TYPES, 'Custom'))}"
        )
    if region not in BUILTIN_LAMBDA_ACCOUNTS:
        problems.append(
            f"region {region!r} does not run Ground Truth; one of: "
            f"{', '.join(sorted(BUILTIN_LAMBDA_ACCOUNTS))}"
        )

    # Label attribute (§8 pitfall 17).
    attribute = request.get("LabelAttributeName")
    if isinstance(attribute, str):
        if attribute.endswith("-metadata"):
            problems.append(f"LabelAttributeName {attribute!r} must not end with '-metadata'")
        if task_type in _REF_TASK_TYPES and not attribute.endswith("-ref"):
            problems.append(f"LabelAttributeName must end with '-ref' for {task_type} jobs")
        if task_type not in _REF_TASK_TYPES and attribute.endswith("-ref"):
            problems.append(f"LabelAttributeName must not end with '-ref' for {task_type} jobs")
        if attribute in _RESERVED_ATTRIBUTES:
            problems.append(
                f"LabelAttributeName {attribute!r} would overwrite the input manifest's own key"
            )
        if source_label_attribute is not None and attribute == source_label_attribute:
            problems.append(
                "LabelAttributeName must differ from the original job's "
                f"({source_label_attribute!r}) for adjustment and verification jobs"
            )

    # S3 locations: Ground Truth reads and writes s3:// only (the model also allows https).
    locations = {
        "InputConfig.DataSource.S3DataSource.ManifestS3Uri": _dig(
            request, "InputConfig", "DataSource", "S3DataSource", "ManifestS3Uri"
        ),
        "OutputConfig.S3OutputPath": _dig(request, "OutputConfig", "S3OutputPath"),
        "LabelCategoryConfigS3Uri": request.get("LabelCategoryConfigS3Uri"),
        "HumanTaskConfig.UiConfig.UiTemplateS3Uri": _dig(human, "UiConfig", "UiTemplateS3Uri"),
    }
    for path, uri in locations.items():
        if isinstance(uri, str):
            try:
                parse_s3_uri(uri, require_key=not path.startswith("OutputConfig"))
            except S3UriError as exc:
                problems.append(f"{path}: {exc}")
    ui = human.get("UiConfig")
    if isinstance(ui, Mapping) and len(ui) != 1:
        problems.append(
            "HumanTaskConfig.UiConfig: set exactly one of UiTemplateS3Uri, HumanTaskUiArn"
        )

    # ARNs must be in the job's region (§8 pitfall 16).
    arns = {
        "HumanTaskConfig.WorkteamArn": team,
        "HumanTaskConfig.PreHumanTaskLambdaArn": human.get("PreHumanTaskLambdaArn"),
        "HumanTaskConfig.AnnotationConsolidationConfig.AnnotationConsolidationLambdaArn": _dig(
            human, "AnnotationConsolidationConfig", "AnnotationConsolidationLambdaArn"
        ),
        "HumanTaskConfig.UiConfig.HumanTaskUiArn": _dig(human, "UiConfig", "HumanTaskUiArn"),
    }
    for path, arn in arns.items():
        if isinstance(arn, str) and arn:
            arn_at = arn_region(arn)
            if arn_at is not None and arn_at != region:
                problems.append(f"{path} is in {arn_at}, but the job runs in {region}")
    problems.extend(_lambda_problems(human, region, task_type, require_sagemaker_lambda_names))

    # Workforce rules.
    price = human.get("PublicWorkforceTaskPrice")
    classifiers = _dig(request, "InputConfig", "DataAttributes", "ContentClassifiers") or []
    if workforce == "public":
        if f":{PUBLIC_WORKTEAM_ACCOUNT}:workteam/public-crowd/default" not in team:
            problems.append(
                "HumanTaskConfig.WorkteamArn: the public workforce is "
                f"arn:aws:sagemaker:{region}:{PUBLIC_WORKTEAM_ACCOUNT}:workteam/public-crowd/default"
            )
        if price is None:
            problems.append(_NEEDS_PRICE)
        elif isinstance(price, Mapping):
            problems.extend(_price_problems(price, task_type))
        if PII_CLASSIFIER not in classifiers:
            problems.append(
                f"a public workforce requires the {PII_CLASSIFIER} content classifier "
                "(declare that the data holds no personal information); otherwise the job fails"
            )
        if _is_video_or_3d(task_type):
            problems.append(f"Mechanical Turk cannot work on {task_type} jobs")
        lifetime = human.get("TaskAvailabilityLifetimeInSeconds")
        if isinstance(lifetime, int) and lifetime > _MTURK_MAX_LIFETIME:
            problems.append(
                f"TaskAvailabilityLifetimeInSeconds {lifetime} exceeds Mechanical Turk's "
                f"maximum of {_MTURK_MAX_LIFETIME} (12 hours)"
            )
    else:
        if price is not None:
            problems.append(
                f"PublicWorkforceTaskPrice applies only to the public workforce, not {workforce}"
            )
        if "workteam/public-crowd" in team:
            problems.append(f"a {workforce} workforce cannot use the public-crowd workteam")
        expected = "workteam/vendor-crowd/" if workforce == "vendor" else "workteam/private-crowd/"
        if team and expected not in team:
            problems.append(f"HumanTaskConfig.WorkteamArn: a {workforce} team ARN has '{expected}'")
        lifetime = human.get("TaskAvailabilityLifetimeInSeconds")
        if isinstance(lifetime, int) and lifetime > _PRIVATE_MAX_LIFETIME:
            problems.append(
                f"TaskAvailabilityLifetimeInSeconds {lifetime} exceeds the {workforce} "
                f"workforce maximum of {_PRIVATE_MAX_LIFETIME} (30 days)"
            )
    limit = human.get("TaskTimeLimitInSeconds")
    if isinstance(limit, int) and not _is_video_or_3d(task_type) and limit > _IMAGE_TEXT_MAX_TIME:
        problems.append(
            f"TaskTimeLimitInSeconds {limit} exceeds the {_IMAGE_TEXT_MAX_TIME} s (8 hours) "
            "allowed for image, text and custom tasks"
        )

    if labels is not None:
        problems.extend(
            f"labels: {p}"
            for p in validate_labels(
                labels, task_type=task_type if task_type in TASK_TYPES else "Custom"
            )
        )
    return problems


def _dig(value: object, *keys: str) -> Any:
    """``value[k1][k2]...`` or ``None`` when any level is missing or not a mapping."""
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


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


def _lambda_problems(
    human: Mapping[str, Any], region: str, task_type: str, require_names: bool
) -> list[str]:
    """Built-in Lambdas must be the region's own; ours must be invocable by the GT policy."""
    problems: list[str] = []
    pairs = (
        ("PreHumanTaskLambdaArn", human.get("PreHumanTaskLambdaArn"), "PRE-"),
        (
            "AnnotationConsolidationLambdaArn",
            _dig(human, "AnnotationConsolidationConfig", "AnnotationConsolidationLambdaArn"),
            "ACS-",
        ),
    )
    builtin_types: dict[str, str] = {}
    for field, arn, prefix in pairs:
        if not isinstance(arn, str) or not arn:
            continue
        name = lambda_function_name(arn)
        if name is None:
            continue
        if name.startswith(("PRE-", "ACS-")):
            if not name.startswith(prefix):
                problems.append(f"{field} must be a {prefix}* function, got {name}")
            kind = name[4:]
            builtin_types[prefix] = kind
            if kind not in BUILTIN_TASK_TYPES:
                problems.append(f"{field}: {name} is not a built-in Ground Truth Lambda")
            account = BUILTIN_LAMBDA_ACCOUNTS.get(region)
            if account is not None and f":{account}:function:" not in arn:
                problems.append(
                    f"{field}: the built-in {name} for {region} is owned by account {account}"
                )
        elif require_names and not any(m in name for m in _LAMBDA_NAME_MARKERS):
            problems.append(
                f"{field}: function name {name!r} must contain one of "
                f"{', '.join(_LAMBDA_NAME_MARKERS)} so the Ground Truth execution policy may "
                "invoke it (or pass require_sagemaker_lambda_names=False)"
            )
    if len(set(builtin_types.values())) > 1:
        problems.append(
            f"the built-in Lambdas disagree on the task type: PRE-{builtin_types['PRE-']} "
            f"vs ACS-{builtin_types['ACS-']}"
        )
    elif builtin_types and task_type not in builtin_types.values() and task_type != "Custom":
        kind = next(iter(builtin_types.values()))
        problems.append(f"built-in {kind} Lambdas do not match task_type {task_type!r}")
    return problems


def create_labeling_job(
    request: Mapping[str, Any],
    *,
    sagemaker: SageMakerClient,
    store: S3Store,
    labels: Sequence[str],
    template: str | bytes | None = None,
    task_type: str = "BoundingBox",
) -> str:
    """Upload the worker template and label file where ``request`` points, then create the job.

    The request is re-checked against the service model first, so nothing is uploaded for a
    request SageMaker would refuse. Returns the ``LabelingJobArn``.
    """
    problems = problems_as_strings(validate_request("CreateLabelingJob", request))
    template_uri = _dig(request, "HumanTaskConfig", "UiConfig", "UiTemplateS3Uri")
    if template_uri is not None and template is None:
        problems.append("the request names UiTemplateS3Uri, so pass the template to upload")
    label_uri = request.get("LabelCategoryConfigS3Uri")
    if problems:
        raise ValidationError(problems, what="labeling job request")
    config = build_label_category_config(
        labels, task_type=task_type if task_type in TASK_TYPES else "Custom"
    )
    if template_uri is not None and template is not None:
        body = template.encode("utf-8") if isinstance(template, str) else template
        store.put_bytes(template_uri, body, content_type="text/html")
    if isinstance(label_uri, str):
        store.put_bytes(label_uri, orjson.dumps(config), content_type="application/json")
    response = sagemaker.create_labeling_job(**request)
    return response["LabelingJobArn"]


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


class LabelingJobFailedError(GtToolkitError):
    """A labeling job ended Failed or Stopped; carries the last description."""

    def __init__(self, description: Mapping[str, Any]) -> None:
        self.description = dict(description)
        status = description.get("LabelingJobStatus")
        reason = description.get("FailureReason", "no reason given")
        super().__init__(f"labeling job {description.get('LabelingJobName')} {status}: {reason}")


class WaitTimeoutError(GtToolkitError, TimeoutError):
    """A job or endpoint did not finish within the allowed time."""


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

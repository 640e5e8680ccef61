"""Per-region AWS accounts behind Ground Truth's built-in Lambdas, workteams and algorithms.

Users copy these ARNs by hand from five different pages and get a ``ValidationException``
when the account belongs to another region (§8 pitfall 16). The tables below come from
``docs/ground-truth-formats.md`` §5 (Lambdas, workteams) and §6 (algorithm images),
cross-checked against botocore's ``CreateLabelingJob`` documentation. The Deep Learning
Container and Debugger rule-evaluator accounts, and the PyTorch versions with their Python tags,
restate the SageMaker Python SDK's image tables (``image_uri_config/pytorch.json`` and
``debugger.json``) for the commercial regions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from gt_toolkit.errors import ValidationError

__all__ = [
    "ALGORITHM_IMAGE_ACCOUNTS",
    "BUILTIN_LAMBDA_ACCOUNTS",
    "BUILTIN_TASK_TYPES",
    "DEBUGGER_RULE_ACCOUNTS",
    "DLC_ACCOUNTS",
    "HUMAN_TASK_UIS",
    "HUMAN_TASK_UI_ACCOUNT",
    "LABELING_ALGORITHMS",
    "LABELING_ALGORITHM_ACCOUNT",
    "PUBLIC_WORKTEAM_ACCOUNT",
    "PYTORCH_INFERENCE_VERSIONS",
    "PYTORCH_TRAINING_VERSIONS",
    "Arn",
    "algorithm_image_uri",
    "builtin_lambda_arns",
    "human_task_ui_arn",
    "is_gpu_instance",
    "labeling_algorithm_arn",
    "lambda_function_name",
    "parse_arn",
    "public_workteam_arn",
    "pytorch_image_uri",
    "region_partition",
    "rule_evaluator_image_uri",
]

BUILTIN_LAMBDA_ACCOUNTS: Final[dict[str, str]] = {
    "us-east-1": "432418664414",
    "us-east-2": "266458841044",
    "us-west-2": "081040173940",
    "eu-west-1": "568282634449",
    "eu-west-2": "487402164563",
    "eu-central-1": "203001061592",
    "ca-central-1": "918755190332",
    "ap-northeast-1": "477331159723",
    "ap-northeast-2": "845288260483",
    "ap-south-1": "565803892007",
    "ap-southeast-1": "377565633583",
    "ap-southeast-2": "454466003867",
}
"""Region -> account owning the ``PRE-*`` / ``ACS-*`` Lambdas (the regions Ground Truth runs in)."""

ALGORITHM_IMAGE_ACCOUNTS: Final[dict[str, str]] = {
    "us-east-1": "811284229777",
    "us-east-2": "825641698319",
    "us-west-1": "632365934929",
    "us-west-2": "433757028032",
    "eu-west-1": "685385470294",
    "eu-west-2": "644912444149",
    "eu-central-1": "813361260812",
    "ap-northeast-1": "501404015308",
    "ap-southeast-1": "475088953585",
    "ap-southeast-2": "544295431143",
    "ap-south-1": "991648021394",
    "ca-central-1": "469771592824",
}
"""Region -> ECR account of the built-in ``object-detection:1`` / ``image-classification:1``."""

PUBLIC_WORKTEAM_ACCOUNT: Final = "394669845002"
HUMAN_TASK_UI_ACCOUNT: Final = "394669845002"

HUMAN_TASK_UIS: Final[dict[str, str]] = {
    "NamedEntityRecognition": "NamedEntityRecognition",
    **dict.fromkeys(
        ("VideoObjectDetection", "AdjustmentVideoObjectDetection"), "VideoObjectDetection"
    ),
    **dict.fromkeys(
        ("VideoObjectTracking", "AdjustmentVideoObjectTracking"), "VideoObjectTracking"
    ),
    **{
        f"{prefix}3DPointCloud{kind}": f"PointCloud{kind}"
        for prefix in ("", "Adjustment")
        for kind in ("ObjectDetection", "ObjectTracking", "SemanticSegmentation")
    },
}
"""Task type -> its AWS-hosted worker UI (``human-task-ui/<name>``), botocore's ``UiConfig`` list.

Only these task types take a ``HumanTaskUiArn``; every other one (images, text, video
classification, custom) takes a ``UiTemplateS3Uri``. The 3D names drop the ``3D`` prefix.
"""

LABELING_ALGORITHM_ACCOUNT: Final = "027400017018"
LABELING_ALGORITHMS: Final[dict[str, str]] = {
    "BoundingBox": "object-detection",
    "ImageMultiClass": "image-classification",
    "TextMultiClass": "text-classification",
    "SemanticSegmentation": "semantic-segmentation",
}
"""The task types automated data labeling serves -> their algorithm specification."""

BUILTIN_TASK_TYPES: Final[tuple[str, ...]] = (
    "BoundingBox",
    "ImageMultiClass",
    "ImageMultiClassMultiLabel",
    "SemanticSegmentation",
    "TextMultiClass",
    "TextMultiClassMultiLabel",
    "NamedEntityRecognition",
    "VerificationBoundingBox",
    "VerificationSemanticSegmentation",
    "AdjustmentBoundingBox",
    "AdjustmentSemanticSegmentation",
    "VideoMultiClass",
    "VideoObjectDetection",
    "VideoObjectTracking",
    "AdjustmentVideoObjectDetection",
    "AdjustmentVideoObjectTracking",
    "3DPointCloudObjectDetection",
    "3DPointCloudObjectTracking",
    "3DPointCloudSemanticSegmentation",
    "Adjustment3DPointCloudObjectDetection",
    "Adjustment3DPointCloudObjectTracking",
    "Adjustment3DPointCloudSemanticSegmentation",
    "PassThrough",
)
"""Suffixes of the built-in ``PRE-<type>`` / ``ACS-<type>`` Lambdas (botocore's list)."""

Algorithm = Literal["object-detection", "image-classification"]
_ARN_RE = re.compile(
    r"arn:(?P<partition>aws[a-z\-]*):(?P<service>[a-z0-9\-]+):(?P<region>[a-z0-9\-]*):"
    r"(?P<account>\d{12}|aws|):(?P<resource>.+)",
    re.DOTALL,
)


def _require(table: dict[str, str], region: str, what: str) -> str:
    """Look ``region`` up, or fail listing the regions that do have ``what``."""
    try:
        return table[region]
    except KeyError:
        raise ValidationError(
            [f"region {region!r} has no {what}; known regions: {', '.join(sorted(table))}"]
        ) from None


def builtin_lambda_arns(region: str, task_type: str = "BoundingBox") -> tuple[str, str]:
    """The AWS-owned ``(PRE-<task_type>, ACS-<task_type>)`` Lambda ARNs for ``region``.

    Raises:
        ValidationError: an unknown region or task type (listing the valid ones).
    """
    problems = []
    if task_type not in BUILTIN_TASK_TYPES:
        problems.append(
            f"unknown built-in task type {task_type!r}; one of: {', '.join(BUILTIN_TASK_TYPES)}"
        )
    if region not in BUILTIN_LAMBDA_ACCOUNTS:
        problems.append(
            f"region {region!r} has no Ground Truth built-in Lambdas; known regions: "
            f"{', '.join(sorted(BUILTIN_LAMBDA_ACCOUNTS))}"
        )
    if problems:
        raise ValidationError(problems)
    account = BUILTIN_LAMBDA_ACCOUNTS[region]
    base = f"arn:aws:lambda:{region}:{account}:function:"
    return f"{base}PRE-{task_type}", f"{base}ACS-{task_type}"


def public_workteam_arn(region: str) -> str:
    """The Amazon Mechanical Turk (public crowd) workteam ARN for ``region``."""
    _require(BUILTIN_LAMBDA_ACCOUNTS, region, "Ground Truth public workforce")
    return f"arn:aws:sagemaker:{region}:{PUBLIC_WORKTEAM_ACCOUNT}:workteam/public-crowd/default"


def human_task_ui_arn(region: str, task_type: str) -> str:
    """The AWS-hosted worker UI (NER, video-frame and 3D tasks only) for ``region``.

    ``task_type`` is the job's (``3DPointCloudObjectDetection``) or the UI's own name
    (``PointCloudObjectDetection``); an invented name is refused, since SageMaker refuses it
    only when the job is created (§8 pitfall 16).

    Raises:
        ValidationError: a region without Ground Truth, or a task type without a hosted UI.

    Examples:
        >>> human_task_ui_arn("us-east-1", "Adjustment3DPointCloudObjectTracking")
        'arn:aws:sagemaker:us-east-1:394669845002:human-task-ui/PointCloudObjectTracking'
    """
    _require(BUILTIN_LAMBDA_ACCOUNTS, region, "Ground Truth human task UIs")
    name = HUMAN_TASK_UIS.get(task_type, task_type)
    if name not in HUMAN_TASK_UIS.values():
        raise ValidationError(
            [
                f"{task_type!r} has no AWS-hosted worker UI (only NER, video-frame and 3D task "
                f"types do; the others take a worker template): one of {', '.join(HUMAN_TASK_UIS)}"
            ]
        )
    return f"arn:aws:sagemaker:{region}:{HUMAN_TASK_UI_ACCOUNT}:human-task-ui/{name}"


def labeling_algorithm_arn(region: str, task_type: str) -> str:
    """The ``LabelingJobAlgorithmSpecificationArn`` of automated data labeling for a task type.

    Raises:
        ValidationError: a region without Ground Truth, or a task type automated labeling
            does not serve (listing those it does).

    Examples:
        >>> labeling_algorithm_arn("eu-west-1", "BoundingBox").rsplit(":", 1)[-1]
        'labeling-job-algorithm-specification/object-detection'
    """
    _require(BUILTIN_LAMBDA_ACCOUNTS, region, "Ground Truth automated data labeling")
    algorithm = LABELING_ALGORITHMS.get(task_type)
    if algorithm is None:
        raise ValidationError(
            [
                f"automated data labeling does not serve {task_type} jobs; only "
                f"{', '.join(LABELING_ALGORITHMS)}"
            ]
        )
    return (
        f"arn:aws:sagemaker:{region}:{LABELING_ALGORITHM_ACCOUNT}:"
        f"labeling-job-algorithm-specification/{algorithm}"
    )


def algorithm_image_uri(region: str, algorithm: Algorithm = "object-detection") -> str:
    """The built-in algorithm image, as ``sagemaker.image_uris.retrieve`` would give it.

    Raises:
        ValidationError: a region without a known account, or an unknown algorithm.
    """
    if algorithm not in ("object-detection", "image-classification"):
        raise ValidationError(
            [f"unknown algorithm {algorithm!r}; one of: object-detection, image-classification"]
        )
    account = _require(ALGORITHM_IMAGE_ACCOUNTS, region, "known built-in algorithm images")
    return f"{account}.dkr.ecr.{region}.amazonaws.com/{algorithm}:1"


@dataclass(frozen=True, slots=True)
class Arn:
    """The fields of an ARN: ``arn:<partition>:<service>:<region>:<account>:<resource>``.

    ``region`` is ``""`` for global services (IAM) and for an ARN written without one.
    """

    partition: str
    service: str
    region: str
    account: str
    resource: str


def parse_arn(arn: str) -> Arn | None:
    """The fields of ``arn``, or ``None`` when it is not an ARN.

    Examples:
        >>> parse_arn("arn:aws-cn:iam::123456789012:role/gt").partition
        'aws-cn'
    """
    match = _ARN_RE.fullmatch(arn)
    return Arn(**match.groupdict()) if match is not None else None


def region_partition(region: str) -> str:
    """The partition a region belongs to: ``aws-cn`` for China, ``aws-us-gov``, else ``aws``."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def lambda_function_name(arn: str) -> str | None:
    """The function name of a Lambda ARN (without a version or alias), else ``None``."""
    _, sep, rest = arn.partition(":function:")
    if not sep or not rest:
        return None
    return rest.split(":", 1)[0]


# -- framework images (script mode) and the Debugger rule evaluator -------------------------

DLC_ACCOUNTS: Final[dict[str, str]] = {
    **dict.fromkeys(
        (
            "us-east-1",
            "us-east-2",
            "us-west-1",
            "us-west-2",
            "ca-central-1",
            "sa-east-1",
            "eu-central-1",
            "eu-north-1",
            "eu-west-1",
            "eu-west-2",
            "eu-west-3",
            "ap-northeast-1",
            "ap-northeast-2",
            "ap-south-1",
            "ap-southeast-1",
            "ap-southeast-2",
        ),
        "763104351884",
    ),
    "af-south-1": "626614931356",
    "ap-east-1": "871362719292",
    "ap-northeast-3": "364406365360",
    "ap-south-2": "772153158452",
    "ap-southeast-3": "907027046896",
    "ap-southeast-4": "457447274322",
    "ca-west-1": "204538143572",
    "eu-central-2": "380420809688",
    "eu-south-1": "692866216735",
    "eu-south-2": "503227376785",
    "il-central-1": "780543022126",
    "me-central-1": "914824155844",
    "me-south-1": "217643126080",
}
"""Region -> ECR account of the AWS Deep Learning Containers (``pytorch-training``,
``pytorch-inference``), as the SageMaker Python SDK's image table lists them."""

PYTORCH_TRAINING_VERSIONS: Final[dict[str, str]] = {
    "2.3.0": "py311",
    "2.4.0": "py311",
    "2.5.1": "py311",
    "2.6.0": "py312",
    "2.7.1": "py312",
    "2.8.0": "py312",
}
"""PyTorch training image versions -> their Python tag (tag ``<version>-<cpu|gpu>-<py>``)."""

PYTORCH_INFERENCE_VERSIONS: Final[dict[str, str]] = {
    "2.3.0": "py311",
    "2.4.0": "py311",
    "2.5.1": "py311",
    "2.6.0": "py312",
}
"""PyTorch inference image versions (the serving images trail the training ones)."""

DEBUGGER_RULE_ACCOUNTS: Final[dict[str, str]] = {
    "us-east-1": "503895931360",
    "us-east-2": "915447279597",
    "us-west-1": "685455198987",
    "us-west-2": "895741380848",
    "ca-central-1": "519511493484",
    "sa-east-1": "818342061345",
    "eu-central-1": "482524230118",
    "eu-north-1": "314864569078",
    "eu-south-1": "563282790590",
    "eu-west-1": "929884845733",
    "eu-west-2": "250201462417",
    "eu-west-3": "447278800020",
    "af-south-1": "314341159256",
    "ap-east-1": "199566480951",
    "ap-northeast-1": "430734990657",
    "ap-northeast-2": "578805364391",
    "ap-northeast-3": "479947661362",
    "ap-south-1": "904829902805",
    "ap-southeast-1": "972752614525",
    "ap-southeast-2": "184798709955",
    "me-south-1": "986000313247",
}
"""Region -> ECR account of ``sagemaker-debugger-rules:latest`` (Debugger and Profiler rules)."""

ImageScope = Literal["training", "inference"]


def is_gpu_instance(instance_type: str) -> bool:
    """``ml.p*`` and ``ml.g*`` instances carry NVIDIA GPUs (and take the ``gpu`` images)."""
    return instance_type.startswith(("ml.p", "ml.g"))


def pytorch_image_uri(
    region: str, version: str, *, instance_type: str, scope: ImageScope = "training"
) -> str:
    """The PyTorch Deep Learning Container, e.g. ``…/pytorch-training:2.6.0-gpu-py312``.

    Raises:
        ValidationError: an unknown region or version, or an instance type (Inferentia,
            Trainium) that these images do not run on; every problem at once.
    """
    versions = PYTORCH_TRAINING_VERSIONS if scope == "training" else PYTORCH_INFERENCE_VERSIONS
    problems = []
    if version not in versions:
        problems.append(
            f"no PyTorch {scope} image for version {version!r}; known: {', '.join(versions)}"
        )
    if instance_type.startswith(("ml.inf", "ml.trn")):
        problems.append(f"{instance_type} needs a Neuron image, not the PyTorch {scope} image")
    if region not in DLC_ACCOUNTS:
        problems.append(
            f"region {region!r} has no known Deep Learning Containers; known regions: "
            f"{', '.join(sorted(DLC_ACCOUNTS))}"
        )
    if problems:
        raise ValidationError(problems)
    processor = "gpu" if is_gpu_instance(instance_type) else "cpu"
    return (
        f"{DLC_ACCOUNTS[region]}.dkr.ecr.{region}.amazonaws.com/pytorch-{scope}:"
        f"{version}-{processor}-{versions[version]}"
    )


def rule_evaluator_image_uri(region: str) -> str:
    """The Debugger/Profiler rule evaluator image for ``region``."""
    account = _require(DEBUGGER_RULE_ACCOUNTS, region, "Debugger rule evaluator image")
    return f"{account}.dkr.ecr.{region}.amazonaws.com/sagemaker-debugger-rules:latest"

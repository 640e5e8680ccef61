"""Labeling-job requests, the service-model validator and the region tables.

moto does not implement labeling jobs, so the SageMaker side is checked with botocore's
Stubber, which validates both our request and the canned response against the service model.
S3 uploads go to moto's server.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import warnings
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from gt_toolkit import ValidationError, build_labeling_job_request
from gt_toolkit.errors import (
    LabelingJobFailedError,
    LambdaResponseSizeWarning,
    ServiceQuotaWarning,
    WaitTimeoutError,
)
from gt_toolkit.formats.detection_label import build_detection_label
from gt_toolkit.handlers.lambda_response import RESPONSE_BUDGET
from gt_toolkit.sagemaker.labeling_job import (
    ALLOWED_PRICES_USD,
    LABELING_JOB_RULES,
    LabelingJobCheck,
    LabelingProgress,
    consolidation_response_bytes,
    create_labeling_job,
    labeling_job_problems,
    price_range,
    usd_to_price,
    wait_for_labeling_job,
)
from gt_toolkit.sagemaker.regions import (
    ALGORITHM_IMAGE_ACCOUNTS,
    BUILTIN_LAMBDA_ACCOUNTS,
    HUMAN_TASK_UIS,
    LABELING_ALGORITHMS,
    algorithm_image_uri,
    builtin_lambda_arns,
    human_task_ui_arn,
    labeling_algorithm_arn,
    lambda_function_name,
    parse_arn,
    public_workteam_arn,
)
from gt_toolkit.sagemaker.service_validation import (
    Problem,
    botocore_report,
    check_request,
    operation_model,
    validate_request,
)
from gt_toolkit.storage.s3 import S3Store
from tests.helpers import FakeTime, assert_refused

ROLE = "arn:aws:iam::123456789012:role/GroundTruthRole"
TEAM = "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/ball-team"
OUR_PRE = "arn:aws:lambda:us-east-1:123456789012:function:gt-toolkit-sagemaker-pre"
OUR_ACS = "arn:aws:lambda:us-east-1:123456789012:function:gt-toolkit-sagemaker-post"
UI = "arn:aws:sagemaker:us-east-1:394669845002:human-task-ui/"
AL_BOXES = (
    "arn:aws:sagemaker:us-east-1:027400017018:labeling-job-algorithm-specification/object-detection"
)
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def base_args(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "job_name": "balls-2026-11-24",
        "manifest_uri": "s3://gt-toolkit-demo/input.manifest",
        "output_uri": "s3://gt-toolkit-demo/output",
        "role_arn": ROLE,
        "labels": ["ball", "bat"],
        "task_title": "Draw a box around each ball",
        "task_description": "Draw one tight box around every ball you can see.",
        "region": "us-east-1",
        "workteam_arn": TEAM,
    }
    args.update(overrides)
    return args


def public_args(**overrides: Any) -> dict[str, Any]:
    args = base_args(
        workforce="public",
        workteam_arn=None,
        price_usd="0.036",
        content_classifiers=["FreeOfPersonallyIdentifiableInformation"],
    )
    args.update(overrides)
    return args


def assert_valid_for_service(operation: str, request: dict[str, Any]) -> None:
    """Both botocore's own validator and our full walk accept the request."""
    assert botocore_report(operation, request) == []
    assert validate_request(operation, request) == []


# ---------------------------------------------------------------- builder: good requests


def test_private_request_defaults_to_builtin_lambdas_and_config_uris() -> None:
    request = build_labeling_job_request(**base_args())
    assert_valid_for_service("CreateLabelingJob", request)
    human = request["HumanTaskConfig"]
    assert human["PreHumanTaskLambdaArn"] == (
        "arn:aws:lambda:us-east-1:432418664414:function:PRE-BoundingBox"
    )
    assert human["AnnotationConsolidationConfig"]["AnnotationConsolidationLambdaArn"] == (
        "arn:aws:lambda:us-east-1:432418664414:function:ACS-BoundingBox"
    )
    assert human["NumberOfHumanWorkersPerDataObject"] == 5
    assert human["WorkteamArn"] == TEAM
    assert "PublicWorkforceTaskPrice" not in human
    assert request["LabelAttributeName"] == "balls-2026-11-24"
    assert request["LabelCategoryConfigS3Uri"] == (
        "s3://gt-toolkit-demo/output/balls-2026-11-24-config/label-categories.json"
    )
    assert human["UiConfig"] == {
        "UiTemplateS3Uri": "s3://gt-toolkit-demo/output/balls-2026-11-24-config/template.liquid.html"
    }


def test_public_request_has_price_workteam_and_classifier() -> None:
    request = build_labeling_job_request(
        **public_args(
            price_usd=0.036,
            content_classifiers=[
                "FreeOfPersonallyIdentifiableInformation",
                "FreeOfAdultContent",
            ],
            tags={"project": "balls", "team": "vision"},
            max_labeled_objects=100,
            max_percent_labeled=50,
            max_concurrent_tasks=200,
            task_availability_lifetime_seconds=21_600,
            task_keywords=["image", "bounding box"],
            label_attribute="boxes",
            workers_per_object=3,
        )
    )
    assert_valid_for_service("CreateLabelingJob", request)
    human = request["HumanTaskConfig"]
    assert human["WorkteamArn"] == (
        "arn:aws:sagemaker:us-east-1:394669845002:workteam/public-crowd/default"
    )
    assert human["PublicWorkforceTaskPrice"] == {
        "AmountInUsd": {"Dollars": 0, "Cents": 3, "TenthFractionsOfACent": 6}
    }
    assert request["InputConfig"]["DataAttributes"]["ContentClassifiers"] == [
        "FreeOfPersonallyIdentifiableInformation",
        "FreeOfAdultContent",
    ]
    assert request["Tags"] == [
        {"Key": "project", "Value": "balls"},
        {"Key": "team", "Value": "vision"},
    ]
    assert request["StoppingConditions"] == {
        "MaxHumanLabeledObjectCount": 100,
        "MaxPercentageOfInputDatasetLabeled": 50,
    }
    assert human["NumberOfHumanWorkersPerDataObject"] == 3
    assert human["MaxConcurrentTaskCount"] == 200


def test_our_lambdas_replace_the_builtins() -> None:
    request = build_labeling_job_request(
        **base_args(pre_annotation_lambda_arn=OUR_PRE, consolidation_lambda_arn=OUR_ACS)
    )
    assert_valid_for_service("CreateLabelingJob", request)
    human = request["HumanTaskConfig"]
    assert human["PreHumanTaskLambdaArn"] == OUR_PRE
    assert human["AnnotationConsolidationConfig"]["AnnotationConsolidationLambdaArn"] == OUR_ACS


def test_deploy_api_result_plugs_in() -> None:
    from gt_toolkit.sagemaker.lambda_deploy import DeployedLambdas

    deployed = DeployedLambdas(
        pre_annotation_arn=OUR_PRE,
        post_annotation_arn=OUR_ACS,
        pre_annotation_role_arn="arn:aws:iam::123456789012:role/gt-toolkit-pre",
        post_annotation_role_arn="arn:aws:iam::123456789012:role/gt-toolkit-post",
    )
    request = build_labeling_job_request(**base_args(lambdas=deployed))
    assert_valid_for_service("CreateLabelingJob", request)
    human = request["HumanTaskConfig"]
    assert human["PreHumanTaskLambdaArn"] == OUR_PRE
    assert human["AnnotationConsolidationConfig"]["AnnotationConsolidationLambdaArn"] == OUR_ACS


def test_vendor_and_classification_defaults() -> None:
    vendor = "arn:aws:sagemaker:eu-west-1:123456789012:workteam/vendor-crowd/acme"
    request = build_labeling_job_request(
        **base_args(
            workforce="vendor",
            workteam_arn=vendor,
            region="eu-west-1",
            task_type="ImageMultiClass",
            labels=["cat", "dog"],
        )
    )
    assert_valid_for_service("CreateLabelingJob", request)
    assert request["HumanTaskConfig"]["NumberOfHumanWorkersPerDataObject"] == 3
    assert request["HumanTaskConfig"]["PreHumanTaskLambdaArn"].endswith(
        ":568282634449:function:PRE-ImageMultiClass"
    )


@pytest.mark.parametrize("task_type", sorted(HUMAN_TASK_UIS))
def test_hosted_ui_task_types_default_to_their_own_worker_ui(task_type: str) -> None:
    """NER, video-frame and 3D jobs build without a template, on AWS's UI for the type."""
    request = build_labeling_job_request(**base_args(task_type=task_type, labels=["car"]))
    assert_valid_for_service("CreateLabelingJob", request)
    assert request["HumanTaskConfig"]["UiConfig"] == {
        "HumanTaskUiArn": UI + HUMAN_TASK_UIS[task_type]
    }


@pytest.mark.parametrize(
    ("task_type", "attribute"),
    [
        ("SemanticSegmentation", "balls-2026-11-24-ref"),
        ("AdjustmentVideoObjectTracking", "balls-2026-11-24-ref"),
        ("VerificationSemanticSegmentation", "balls-2026-11-24"),
        ("3DPointCloudObjectDetection", "balls-2026-11-24"),
    ],
)
def test_the_default_label_attribute_ends_in_ref_where_the_task_type_needs_it(
    task_type: str, attribute: str
) -> None:
    request = build_labeling_job_request(**base_args(task_type=task_type, labels=["car"]))
    assert request["LabelAttributeName"] == attribute


def test_video_classification_takes_a_template_not_a_hosted_ui() -> None:
    request = build_labeling_job_request(**base_args(task_type="VideoMultiClass"))
    assert_valid_for_service("CreateLabelingJob", request)
    assert list(request["HumanTaskConfig"]["UiConfig"]) == ["UiTemplateS3Uri"]


def test_a_kms_key_of_the_jobs_region_or_without_one_is_accepted() -> None:
    for key in (KMS_KEY, "alias/labels", "1234abcd-12ab-34cd-56ef-1234567890ab"):
        request = build_labeling_job_request(**base_args(output_kms_key_id=key))
        assert request["OutputConfig"]["KmsKeyId"] == key


@pytest.mark.parametrize("region", sorted(BUILTIN_LAMBDA_ACCOUNTS))
def test_every_region_in_the_table_builds_a_valid_public_request(region: str) -> None:
    request = build_labeling_job_request(**public_args(region=region))
    assert_valid_for_service("CreateLabelingJob", request)
    account = BUILTIN_LAMBDA_ACCOUNTS[region]
    assert request["HumanTaskConfig"]["PreHumanTaskLambdaArn"] == (
        f"arn:aws:lambda:{region}:{account}:function:PRE-BoundingBox"
    )
    parsed = parse_arn(request["HumanTaskConfig"]["WorkteamArn"])
    assert parsed is not None and parsed.region == region


@pytest.mark.parametrize("price", [str(p) for p in ALLOWED_PRICES_USD if p >= Decimal("0.036")])
def test_every_allowed_bounding_box_price_round_trips(price: str) -> None:
    request = build_labeling_job_request(**public_args(price_usd=price))
    usd = request["HumanTaskConfig"]["PublicWorkforceTaskPrice"]["AmountInUsd"]
    cents = usd["Dollars"] * 1000 + usd["Cents"] * 10 + usd["TenthFractionsOfACent"]
    assert Decimal(cents) / 1000 == Decimal(price)


def test_price_ranges_per_task_type() -> None:
    assert price_range("BoundingBox") == (Decimal("0.036"), Decimal("1.200"))
    assert price_range("ImageMultiClass") == (Decimal("0.012"), Decimal("1.200"))
    assert price_range("SemanticSegmentation") == (Decimal("0.840"), Decimal("1.200"))
    assert usd_to_price(Decimal("1.2")) == {
        "AmountInUsd": {"Dollars": 1, "Cents": 20, "TenthFractionsOfACent": 0}
    }


# ---------------------------------------------------------------- builder: bad inputs


BAD_INPUTS: list[tuple[str, dict[str, Any], list[str]]] = [
    ("name pattern", base_args(job_name="bad_name!"), ["LabelingJobName", "does not match"]),
    ("name too long", base_args(job_name="a" * 64), ["LabelingJobName: length 64", "63"]),
    (
        "metadata suffix",
        base_args(label_attribute="boxes-metadata"),
        ["must not end with '-metadata'"],
    ),
    ("ref on bbox", base_args(label_attribute="boxes-ref"), ["must not end with '-ref'"]),
    (
        "no ref on semseg",
        base_args(task_type="SemanticSegmentation", label_attribute="mask"),
        ["must end with '-ref'"],
    ),
    ("source-ref attribute", base_args(label_attribute="source-ref"), ["overwrite"]),
    (
        "price off the steps",
        public_args(price_usd="0.05"),
        ["0.05 is not an allowed Mechanical Turk price", "0.036, 0.048"],
    ),
    (
        "price below bbox floor",
        public_args(price_usd="0.012"),
        ["not an allowed Mechanical Turk price for BoundingBox"],
    ),
    ("price not a number", public_args(price_usd="cheap"), ["is not a number"]),
    ("public without price", public_args(price_usd=None), ["needs a price per task"]),
    (
        "public without PII classifier",
        public_args(content_classifiers=["FreeOfAdultContent"]),
        ["requires the FreeOfPersonallyIdentifiableInformation"],
    ),
    (
        "price on a private team",
        base_args(price_usd="0.036"),
        ["applies only to the public workforce"],
    ),
    ("private without team", base_args(workteam_arn=None), ["needs workteam_arn"]),
    (
        "team in another region",
        base_args(region="eu-west-1"),
        ["WorkteamArn is in us-east-1, but the job runs in eu-west-1"],
    ),
    (
        "lambda in another region",
        base_args(
            pre_annotation_lambda_arn=(
                "arn:aws:lambda:us-west-2:081040173940:function:PRE-BoundingBox"
            )
        ),
        ["PreHumanTaskLambdaArn is in us-west-2", "owned by account 432418664414"],
    ),
    (
        "invented built-in",
        base_args(
            consolidation_lambda_arn=(
                "arn:aws:lambda:us-east-1:432418664414:function:ACS-3DBoundingBox"
            )
        ),
        ["ACS-3DBoundingBox is not a built-in Ground Truth Lambda"],
    ),
    (
        "pre and acs swapped",
        base_args(
            pre_annotation_lambda_arn=(
                "arn:aws:lambda:us-east-1:432418664414:function:ACS-BoundingBox"
            )
        ),
        ["must be a PRE-* function"],
    ),
    (
        "our lambda without sagemaker in its name",
        base_args(
            pre_annotation_lambda_arn="arn:aws:lambda:us-east-1:123456789012:function:my-pre"
        ),
        ["'my-pre' must contain one of SageMaker"],
    ),
    (
        "too few labels for classification",
        base_args(task_type="ImageMultiClass", labels=["cat"]),
        ["at least 2 labels"],
    ),
    (
        "duplicate labels",
        base_args(labels=["ball", "ball"]),
        ["labels: label 'ball' appears 2 times"],
    ),
    ("too many labels", base_args(labels=[f"c{i}" for i in range(51)]), ["at most 50 labels"]),
    ("region without GT", base_args(region="sa-east-1"), ["'sa-east-1' does not run Ground Truth"]),
    (
        "workers 0",
        base_args(workers_per_object=0),
        ["NumberOfHumanWorkersPerDataObject", "below the minimum 1"],
    ),
    ("workers 10", base_args(workers_per_object=10), ["above the maximum 9"]),
    ("time limit 10", base_args(task_time_limit_seconds=10), ["below the minimum 30"]),
    ("time limit 9h", base_args(task_time_limit_seconds=32_400), ["exceeds the 28800 s"]),
    (
        "3D time limit 31 days",
        base_args(
            task_type="3DPointCloudObjectDetection",
            human_task_ui_arn=UI + "3DPointCloudObjectDetection",
            task_time_limit_seconds=31 * 86_400,
        ),
        ["TaskTimeLimitInSeconds 2678400 exceeds the 2592000 s (30 days)"],
    ),
    (
        "mturk lifetime 13h",
        public_args(task_availability_lifetime_seconds=46_800),
        ["exceeds Mechanical Turk's maximum of 43200"],
    ),
    ("bad keyword", base_args(task_keywords=["ok", "not ok!"]), ["TaskKeywords[1]"]),
    ("six keywords", base_args(task_keywords=["a", "b", "c", "d", "e", "f"]), ["item count 6"]),
    (
        "one keyword string",
        base_args(task_keywords="image"),
        ["task_keywords must be a list of strings, got the single string 'image'"],
    ),
    (
        "one classifier string",
        public_args(content_classifiers="FreeOfPersonallyIdentifiableInformation"),
        ["content_classifiers must be a list of strings, got the single string"],
    ),
    (
        "bad classifier",
        public_args(content_classifiers=["FreeOfPersonallyIdentifiableInformation", "Safe"]),
        ["'Safe' is not one of"],
    ),
    ("manifest not s3", base_args(manifest_uri="/tmp/in.manifest"), ["ManifestS3Uri"]),
    ("role not an arn", base_args(role_arn="GroundTruthRole"), ["RoleArn"]),
    ("percent 0", base_args(max_percent_labeled=0), ["MaxPercentageOfInputDatasetLabeled"]),
    ("long tag", base_args(tags={"k" * 129: "v"}), ["Tags[0].Key: length 129"]),
    ("unknown workforce", base_args(workforce="friends"), ["not one of: public, private, vendor"]),
    (
        "video on mturk",
        public_args(
            task_type="VideoObjectDetection",
            label_attribute="v-ref",
            human_task_ui_arn="arn:aws:sagemaker:us-east-1:394669845002:human-task-ui/VideoObjectDetection",
        ),
        ["Mechanical Turk cannot work on VideoObjectDetection"],
    ),
    (
        "video with a template",
        base_args(
            task_type="VideoObjectDetection", template_uri="s3://gt-toolkit-demo/t.liquid.html"
        ),
        ["VideoObjectDetection jobs take the AWS-hosted worker UI human-task-ui/VideoObject"],
    ),
    (
        "NER with a template",
        base_args(
            task_type="NamedEntityRecognition",
            template_uri="s3://gt-toolkit-demo/t.liquid.html",
        ),
        ["take the AWS-hosted worker UI human-task-ui/NamedEntityRecognition"],
    ),
    (
        "bounding boxes on a hosted ui",
        base_args(human_task_ui_arn=UI + "VideoObjectDetection"),
        ["BoundingBox jobs take a worker template (UiTemplateS3Uri)"],
    ),
    (
        "invented 3D ui name",
        base_args(
            task_type="3DPointCloudObjectDetection",
            human_task_ui_arn=UI + "3DPointCloudObjectDetection",
        ),
        ["take AWS's human-task-ui/PointCloudObjectDetection of account 394669845002"],
    ),
    (
        "hosted ui of another account",
        base_args(
            task_type="VideoObjectTracking",
            human_task_ui_arn=UI.replace("394669845002", "123456789012") + "VideoObjectTracking",
        ),
        ["got human-task-ui/VideoObjectTracking of account 123456789012"],
    ),
    (
        "output key in another region",
        base_args(output_kms_key_id=KMS_KEY.replace("us-east-1", "eu-west-1")),
        ["OutputConfig.KmsKeyId is in eu-west-1, but the job runs in us-east-1"],
    ),
    ("vendor with private team", base_args(workforce="vendor"), ["'workteam/vendor-crowd/'"]),
    (
        "role from another partition",
        base_args(role_arn="arn:aws-cn:iam::123456789012:role/GroundTruthRole"),
        ["RoleArn is in the aws-cn partition, but us-east-1 is in aws"],
    ),
    (
        "gov-cloud team for a commercial region",
        base_args(workteam_arn=TEAM.replace("arn:aws:", "arn:aws-us-gov:")),
        ["WorkteamArn is in the aws-us-gov partition"],
    ),
    (
        "lambda without a region",
        base_args(pre_annotation_lambda_arn=OUR_PRE.replace(":us-east-1:", "::")),
        ["PreHumanTaskLambdaArn has an empty region; a lambda ARN names one (us-east-1)"],
    ),
    (
        "reserved tag key",
        base_args(tags={"project": "balls", "aws:owner": "me"}),
        ["Tags[1].Key: 'aws:owner': the prefix 'aws:' is reserved for AWS"],
    ),
    (
        "time limit longer than the lifetime",
        base_args(task_time_limit_seconds=3600, task_availability_lifetime_seconds=1800),
        ["TaskTimeLimitInSeconds 3600 is longer than TaskAvailabilityLifetimeInSeconds 1800"],
    ),
    (
        "expected boxes 0",
        base_args(expected_boxes_per_image=0),
        ["expected_boxes_per_image must be a positive integer, got 0"],
    ),
]


@pytest.mark.parametrize(
    ("args", "expected"), [row[1:] for row in BAD_INPUTS], ids=[row[0] for row in BAD_INPUTS]
)
def test_bad_inputs_are_refused_with_the_expected_message(
    args: dict[str, Any], expected: list[str]
) -> None:
    assert_refused(build_labeling_job_request, args, expected)


# ---------------------------------------------------------------- the rule table

DELETE = object()  # an edit that removes the member


def edited(request: dict[str, Any], edits: dict[str, object]) -> dict[str, Any]:
    """A deep copy of ``request`` with each dotted path set to its value (or removed)."""
    out = copy.deepcopy(request)
    for path, value in edits.items():
        *parents, last = path.split(".")
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return out


GOOD = {"private": base_args, "public": public_args}

# rule, good request, edits that break it, check settings that break it, the problem named
RULE_ROWS: list[tuple[str, str, dict[str, object], dict[str, Any], str]] = [
    ("task-type", "private", {}, {"task_type": "Boxes"}, "'Boxes' is not a Ground Truth"),
    ("region", "private", {}, {"region": "sa-east-1"}, "'sa-east-1' does not run Ground Truth"),
    (
        "label-attribute",
        "private",
        {"LabelAttributeName": "boxes-metadata"},
        {},
        "must not end with '-metadata'",
    ),
    (
        "s3-locations",
        "private",
        {"InputConfig.DataSource.S3DataSource.ManifestS3Uri": "https://bkt/in.manifest"},
        {},
        "InputConfig.DataSource.S3DataSource.ManifestS3Uri:",
    ),
    (
        "ui-config",
        "private",
        {"HumanTaskConfig.UiConfig.HumanTaskUiArn": "arn:aws:sagemaker:us-east-1:1:x"},
        {},
        "set exactly one of UiTemplateS3Uri, HumanTaskUiArn",
    ),
    (
        "arn-regions",
        "private",
        {"HumanTaskConfig.WorkteamArn": TEAM.replace("us-east-1", "eu-west-1")},
        {},
        "WorkteamArn is in eu-west-1, but the job runs in us-east-1",
    ),
    (
        "arn-empty-regions",
        "private",
        {"HumanTaskConfig.WorkteamArn": TEAM.replace("us-east-1", "")},
        {},
        "WorkteamArn has an empty region; a sagemaker ARN names one",
    ),
    (
        "arn-partitions",
        "private",
        {"RoleArn": ROLE.replace("arn:aws:", "arn:aws-us-gov:")},
        {},
        "RoleArn is in the aws-us-gov partition, but us-east-1 is in aws",
    ),
    (
        "builtin-lambdas",
        "private",
        {"HumanTaskConfig.PreHumanTaskLambdaArn": builtin_lambda_arns("us-east-1")[1]},
        {},
        "PreHumanTaskLambdaArn must be a PRE-* function, got ACS-BoundingBox",
    ),
    (
        "lambda-names",
        "private",
        {"HumanTaskConfig.PreHumanTaskLambdaArn": OUR_PRE.replace("sagemaker-pre", "pre")},
        {},
        "function name 'gt-toolkit-pre' must contain one of",
    ),
    ("workteam", "private", {}, {"workforce": "vendor"}, "a vendor team ARN has"),
    (
        "price",
        "private",
        {"HumanTaskConfig.PublicWorkforceTaskPrice": usd_to_price(Decimal("0.036"))},
        {},
        "applies only to the public workforce, not private",
    ),
    (
        "content-classifiers",
        "public",
        {"InputConfig.DataAttributes": DELETE},
        {},
        "requires the FreeOfPersonallyIdentifiableInformation content classifier",
    ),
    (
        "mturk-task-type",
        "public",
        {},
        {"task_type": "VideoObjectDetection"},
        "Mechanical Turk cannot work on VideoObjectDetection",
    ),
    (
        "availability-lifetime",
        "public",
        {"HumanTaskConfig.TaskAvailabilityLifetimeInSeconds": 43_201},
        {},
        "exceeds Mechanical Turk's maximum of 43200",
    ),
    (
        "task-time-limit",
        "private",
        {"HumanTaskConfig.TaskAvailabilityLifetimeInSeconds": 299},
        {},
        "TaskTimeLimitInSeconds 300 is longer than TaskAvailabilityLifetimeInSeconds 299",
    ),
    (
        "automated-labeling",
        "private",
        {"LabelingJobAlgorithmsConfig": {"LabelingJobAlgorithmSpecificationArn": AL_BOXES}},
        {"task_type": "AdjustmentBoundingBox"},
        "automated data labeling does not serve AdjustmentBoundingBox jobs",
    ),
    ("labels", "private", {}, {"labels": ["ball", "ball"]}, "labels: label 'ball' appears 2"),
]


@pytest.mark.parametrize(
    ("rule", "good", "edits", "settings", "expected"), RULE_ROWS, ids=[row[0] for row in RULE_ROWS]
)
def test_each_rule_passes_a_good_request_and_names_what_breaks_it(
    rule: str, good: str, edits: dict[str, object], settings: dict[str, Any], expected: str
) -> None:
    request = build_labeling_job_request(**GOOD[good]())
    context = {"region": "us-east-1", "labels": ["ball", "bat"]}
    check = LABELING_JOB_RULES[rule]
    assert list(check(LabelingJobCheck.of(request, **context))) == []
    bad = LabelingJobCheck.of(edited(request, edits), **(context | settings))
    problems = list(check(bad))
    assert len(problems) == 1 and expected in problems[0], problems


def test_automated_labeling_takes_the_algorithm_of_its_task_type_and_region() -> None:
    request = build_labeling_job_request(**base_args())
    model = "arn:aws:sagemaker:us-east-1:123456789012:model/boxes-al"
    config = {
        "LabelingJobAlgorithmSpecificationArn": AL_BOXES,
        "InitialActiveLearningModelArn": model,
    }
    good = edited(request, {"LabelingJobAlgorithmsConfig": config})
    assert labeling_job_problems(good, region="us-east-1", labels=["ball", "bat"]) == []
    classes = AL_BOXES.replace("object-detection", "image-classification")
    bad = edited(
        request,
        {
            "LabelingJobAlgorithmsConfig.LabelingJobAlgorithmSpecificationArn": classes,
            "LabelingJobAlgorithmsConfig.InitialActiveLearningModelArn": model.replace(
                "us-east-1", "us-west-2"
            ),
        },
    )
    problems = labeling_job_problems(bad, region="us-east-1", labels=["ball", "bat"])
    assert problems == [
        "LabelingJobAlgorithmsConfig.InitialActiveLearningModelArn is in us-west-2, but the job "
        "runs in us-east-1",
        f"LabelingJobAlgorithmsConfig.LabelingJobAlgorithmSpecificationArn: BoundingBox jobs take "
        f"{AL_BOXES}",
    ]


def test_every_rule_has_a_row_in_the_table() -> None:
    assert [row[0] for row in RULE_ROWS] == list(LABELING_JOB_RULES)


def test_the_workforce_is_read_from_the_team_when_not_given() -> None:
    public = build_labeling_job_request(**public_args())
    assert LabelingJobCheck.of(public, region="us-east-1").workforce == "public"
    vendor = edited(public, {"HumanTaskConfig.WorkteamArn": TEAM.replace("private", "vendor")})
    assert LabelingJobCheck.of(vendor, region="us-east-1").workforce == "vendor"
    private = build_labeling_job_request(**base_args())
    assert LabelingJobCheck.of(private, region="us-east-1").workforce == "private"


@pytest.mark.parametrize("price", ["cheap", "0.05", "0.012", "-1"])
def test_an_invalid_price_is_reported_once_not_also_as_missing(price: str) -> None:
    with pytest.raises(ValidationError) as info:
        build_labeling_job_request(**public_args(price_usd=price))
    problems = info.value.problems
    assert [p for p in problems if p.startswith("price_usd") and price in p], problems
    assert not [p for p in problems if "needs a price per task" in p], problems


@pytest.mark.parametrize(
    ("task_type", "workforce"),
    [
        ("NamedEntityRecognition", "private"),
        ("NamedEntityRecognition", "public"),
        ("VideoObjectDetection", "private"),
        ("3DPointCloudObjectDetection", "private"),
        ("BoundingBox", "private"),
        ("BoundingBox", "public"),
    ],
)
def test_a_region_without_ground_truth_is_reported_once_and_alone(
    task_type: str, workforce: str
) -> None:
    team = TEAM.replace("us-east-1", "af-south-1")
    args = public_args() if workforce == "public" else base_args(workteam_arn=team)
    with pytest.raises(ValidationError) as info:
        build_labeling_job_request(
            **(args | {"region": "af-south-1", "task_type": task_type, "labels": ["ball"]})
        )
    problems = info.value.problems
    assert len(problems) == 1, problems
    assert problems[0].startswith("region 'af-south-1' does not run Ground Truth"), problems


def test_an_empty_ui_config_is_still_reported_where_a_template_was_due() -> None:
    request = edited(build_labeling_job_request(**base_args()), {"HumanTaskConfig.UiConfig": {}})
    problems = labeling_job_problems(request, region="af-south-1")
    assert "HumanTaskConfig.UiConfig: set exactly one of UiTemplateS3Uri, HumanTaskUiArn" in (
        problems
    )


def test_one_error_lists_every_problem_at_once() -> None:
    with pytest.raises(ValidationError) as info:
        build_labeling_job_request(
            **public_args(
                job_name="bad name",
                price_usd="0.05",
                content_classifiers=[],
                labels=[],
                label_attribute="x-metadata",
                workers_per_object=12,
            )
        )
    problems = info.value.problems
    for fragment in (
        "LabelingJobName",
        "0.05",
        "FreeOfPersonallyIdentifiableInformation",
        "at least 1 label",
        "-metadata",
        "above the maximum 9",
    ):
        assert any(fragment in p for p in problems), fragment
    assert len(problems) >= 6


def test_hand_written_request_is_checked_too() -> None:
    request = build_labeling_job_request(**public_args())
    request["HumanTaskConfig"]["PublicWorkforceTaskPrice"]["AmountInUsd"]["Cents"] = 5
    problems = labeling_job_problems(request, region="us-east-1")
    assert any("0.056 is not an allowed" in p for p in problems)


# ---------------------------------------------------------------- service validation


def test_validator_catches_what_botocore_leaves_to_the_service() -> None:
    request = build_labeling_job_request(**base_args())
    request["LabelingJobName"] = "bad_name!"  # pattern
    request["HumanTaskConfig"]["TaskTitle"] = "t" * 129  # max
    request["InputConfig"]["DataAttributes"] = {"ContentClassifiers": ["Nope"]}  # enum
    assert botocore_report("CreateLabelingJob", request) == []
    problems = validate_request("CreateLabelingJob", request)
    paths = {p.path for p in problems}
    assert paths == {
        "LabelingJobName",
        "HumanTaskConfig.TaskTitle",
        "InputConfig.DataAttributes.ContentClassifiers[0]",
    }


def test_validator_reports_everything_botocore_reports() -> None:
    bad = {"LabelingJobName": "", "Bogus": 1, "HumanTaskConfig": {"TaskTitle": 5}}
    assert botocore_report("CreateLabelingJob", bad)
    problems = validate_request("CreateLabelingJob", bad)
    text = "\n".join(str(p) for p in problems)
    assert "LabelingJobName: length 0 is below the minimum 1" in text
    assert "Bogus: unknown member" in text
    assert "HumanTaskConfig.TaskTitle: expected a string, got int" in text
    assert "RoleArn: missing required member" in text


def test_validator_rejects_bool_as_integer_and_checks_maps() -> None:
    problems = validate_request(
        "CreateTrainingJob",
        {
            "TrainingJobName": "j",
            "RoleArn": ROLE,
            "AlgorithmSpecification": {"TrainingInputMode": "Sideways"},
            "OutputDataConfig": {"S3OutputPath": "s3://b/o"},
            "ResourceConfig": {
                "InstanceType": "ml.p3.2xlarge",
                "InstanceCount": True,
                "VolumeSizeInGB": 50,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
            "HyperParameters": {"epochs": 30},
        },
    )
    text = "\n".join(map(str, problems))
    assert "InstanceCount: expected an integer, got bool" in text
    assert "TrainingInputMode: 'Sideways' is not one of" in text
    assert "HyperParameters['epochs']: expected a string, got int" in text


def test_java_patterns_compile_and_match_unicode_tags() -> None:
    ok = {
        "ResourceArn": "arn:aws:sagemaker:us-east-1:123456789012:model/m",
        "Tags": [{"Key": "Über", "Value": "ça va"}],
    }
    assert validate_request("AddTags", ok) == []
    bad = {"ResourceArn": ok["ResourceArn"], "Tags": [{"Key": "a|b", "Value": "v"}]}
    assert [p.path for p in validate_request("AddTags", bad)] == ["Tags[0].Key"]


def test_check_request_raises_one_error() -> None:
    with pytest.raises(ValidationError) as info:
        check_request("CreateEndpoint", {"EndpointName": "bad name", "EndpointConfigName": ""})
    problems = info.value.problems
    assert [p.split(":")[0] for p in problems] == ["EndpointName", "EndpointConfigName"]
    assert str(Problem("A.B", "m")) == "A.B: m"
    assert operation_model("CreateEndpoint").name == "CreateEndpoint"


# ---------------------------------------------------------------- regions


def test_region_helpers() -> None:
    assert builtin_lambda_arns("eu-central-1", "ImageMultiClass") == (
        "arn:aws:lambda:eu-central-1:203001061592:function:PRE-ImageMultiClass",
        "arn:aws:lambda:eu-central-1:203001061592:function:ACS-ImageMultiClass",
    )
    assert public_workteam_arn("ap-south-1").startswith(
        "arn:aws:sagemaker:ap-south-1:394669845002:"
    )
    assert algorithm_image_uri("us-west-1") == (
        "632365934929.dkr.ecr.us-west-1.amazonaws.com/object-detection:1"
    )
    assert algorithm_image_uri("eu-west-1", "image-classification") == (
        "685385470294.dkr.ecr.eu-west-1.amazonaws.com/image-classification:1"
    )
    assert len(ALGORITHM_IMAGE_ACCOUNTS) == 12
    assert lambda_function_name(OUR_PRE + ":live") == "gt-toolkit-sagemaker-pre"
    assert lambda_function_name("arn:aws:iam::1:role/x") is None
    assert parse_arn("not an arn") is None
    with pytest.raises(ValidationError, match="sa-east-1"):
        builtin_lambda_arns("sa-east-1")
    with pytest.raises(ValidationError, match="unknown built-in task type"):
        builtin_lambda_arns("us-east-1", "Boxes")
    with pytest.raises(ValidationError, match="known built-in algorithm images"):
        algorithm_image_uri("mars-north-1")


@pytest.mark.parametrize(
    ("task_type", "ui"),
    [
        ("3DPointCloudObjectDetection", "PointCloudObjectDetection"),
        ("Adjustment3DPointCloudSemanticSegmentation", "PointCloudSemanticSegmentation"),
        ("AdjustmentVideoObjectDetection", "VideoObjectDetection"),
        ("NamedEntityRecognition", "NamedEntityRecognition"),
        ("PointCloudObjectTracking", "PointCloudObjectTracking"),  # the UI's own name
    ],
)
def test_hosted_ui_arns_name_the_ui_of_the_task_type(task_type: str, ui: str) -> None:
    assert human_task_ui_arn("us-east-1", task_type) == UI + ui


@pytest.mark.parametrize("task_type", ["BoundingBox", "VideoMultiClass", "3DBoundingBox"])
def test_task_types_without_a_hosted_ui_get_no_invented_arn(task_type: str) -> None:
    with pytest.raises(ValidationError, match=f"'{task_type}' has no AWS-hosted worker UI"):
        human_task_ui_arn("us-east-1", task_type)


def test_automated_labeling_algorithms_per_task_type() -> None:
    assert labeling_algorithm_arn("us-east-1", "BoundingBox") == AL_BOXES
    for task_type, algorithm in LABELING_ALGORITHMS.items():
        assert labeling_algorithm_arn("ap-south-1", task_type).endswith("/" + algorithm)
    with pytest.raises(ValidationError, match="does not serve ImageMultiClassMultiLabel jobs"):
        labeling_algorithm_arn("us-east-1", "ImageMultiClassMultiLabel")


# ---------------------------------------------------------------- create + wait (Stubber)


@pytest.fixture
def sagemaker_stub() -> Any:
    client = boto3.client("sagemaker", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def test_create_labeling_job_uploads_template_and_labels_then_calls_sagemaker(
    sagemaker_stub: Any, store: S3Store, bucket: str
) -> None:
    client, stubber = sagemaker_stub
    request = build_labeling_job_request(
        **base_args(
            manifest_uri=f"s3://{bucket}/input.manifest",
            output_uri=f"s3://{bucket}/output",
        )
    )
    arn = "arn:aws:sagemaker:us-east-1:123456789012:labeling-job/balls-2026-11-24"
    stubber.add_response("create_labeling_job", {"LabelingJobArn": arn}, request)
    template = "<crowd-form><crowd-bounding-box name='boundingBox'/></crowd-form>"
    got = create_labeling_job(
        request, sagemaker=client, store=store, labels=["ball", "bat"], template=template
    )
    assert got == arn
    labels = json.loads(store.get_bytes(request["LabelCategoryConfigS3Uri"]))
    assert labels == {
        "document-version": "2018-11-28",
        "labels": [{"label": "ball"}, {"label": "bat"}],
    }
    ui = request["HumanTaskConfig"]["UiConfig"]["UiTemplateS3Uri"]
    assert store.get_bytes(ui).decode() == template


@pytest.mark.parametrize(
    ("kms_key", "sse", "expected"),
    [
        (KMS_KEY, None, ("aws:kms", KMS_KEY)),
        (None, "AES256", ("AES256", None)),
        (None, "aws:kms", ("aws:kms", "")),
    ],
    ids=["the-request-key", "sse-s3", "sse-kms-default-key"],
)
def test_the_uploads_are_encrypted_as_the_request_or_sse_asks(
    sagemaker_stub: Any,
    store: S3Store,
    bucket: str,
    s3_client: Any,
    kms_key: str | None,
    sse: Any,
    expected: tuple[str, str | None],
) -> None:
    client, stubber = sagemaker_stub
    request = build_labeling_job_request(
        **base_args(
            manifest_uri=f"s3://{bucket}/in.manifest",
            output_uri=f"s3://{bucket}/out",
            output_kms_key_id=kms_key,
        )
    )
    stubber.add_response("create_labeling_job", {"LabelingJobArn": "arn:x"}, request)
    create_labeling_job(
        request, sagemaker=client, store=store, labels=["ball"], template="<p/>", sse=sse
    )
    template = request["HumanTaskConfig"]["UiConfig"]["UiTemplateS3Uri"]
    for uri in (template, request["LabelCategoryConfigS3Uri"]):
        head = s3_client.head_object(Bucket=bucket, Key=uri.split("/", 3)[3])
        kind, key = expected
        assert head.get("ServerSideEncryption") == kind, uri
        if key is None:
            assert "SSEKMSKeyId" not in head
        elif key:
            assert head["SSEKMSKeyId"] == key


def test_sse_s3_beside_a_kms_key_in_the_request_is_refused_before_any_upload(
    sagemaker_stub: Any, store: S3Store, bucket: str
) -> None:
    client, _ = sagemaker_stub
    request = build_labeling_job_request(
        **base_args(
            manifest_uri=f"s3://{bucket}/in.manifest",
            output_uri=f"s3://{bucket}/out",
            output_kms_key_id=KMS_KEY,
        )
    )
    with pytest.raises(ValidationError, match="KmsKeyId asks for SSE-KMS uploads, but sse is"):
        create_labeling_job(
            request, sagemaker=client, store=store, labels=["ball"], template="x", sse="AES256"
        )
    assert not store.exists(request["LabelCategoryConfigS3Uri"])


def automated_request(bucket: str) -> dict[str, Any]:
    request = build_labeling_job_request(
        **base_args(manifest_uri=f"s3://{bucket}/in.manifest", output_uri=f"s3://{bucket}/out")
    )
    return edited(
        request, {"LabelingJobAlgorithmsConfig.LabelingJobAlgorithmSpecificationArn": AL_BOXES}
    )


@pytest.mark.parametrize(
    ("objects", "blank_lines", "refused"),
    [(1249, 0, True), (1249, 40, True), (1250, 0, False), (3000, 2, False)],
)
def test_automated_labeling_below_1250_objects_is_refused_before_any_upload(
    sagemaker_stub: Any,
    store: S3Store,
    bucket: str,
    objects: int,
    blank_lines: int,
    refused: bool,
) -> None:
    client, stubber = sagemaker_stub
    request = automated_request(bucket)
    lines = [b'{"source-ref": "s3://%b/%d.jpg"}' % (bucket.encode(), i) for i in range(objects)]
    lines[1:1] = [b"   \r"] * blank_lines  # blank and CRLF lines are no data objects
    store.put_bytes(
        request["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"],
        (b"\n".join(lines) + b"\n"),
    )
    common = {"sagemaker": client, "store": store, "labels": ["ball"], "template": "<p/>"}
    if refused:
        with pytest.raises(ValidationError) as info:
            create_labeling_job(request, **common)
        assert info.value.problems == [
            "LabelingJobAlgorithmsConfig: automated data labeling needs at least 1,250 data "
            f"objects, but s3://{bucket}/in.manifest holds {objects}; leave "
            "LabelingJobAlgorithmsConfig out to have workers label them all"
        ]
        assert not store.exists(request["LabelCategoryConfigS3Uri"])
    else:
        stubber.add_response("create_labeling_job", {"LabelingJobArn": "arn:x"}, request)
        assert create_labeling_job(request, **common) == "arn:x"


def test_a_manifest_that_cannot_be_read_is_left_to_sagemaker(
    sagemaker_stub: Any, store: S3Store, bucket: str
) -> None:
    client, stubber = sagemaker_stub
    request = automated_request(bucket)  # its manifest was never written
    stubber.add_response("create_labeling_job", {"LabelingJobArn": "arn:x"}, request)
    got = create_labeling_job(
        request, sagemaker=client, store=store, labels=["ball"], template="<p/>"
    )
    assert got == "arn:x"


def test_a_small_manifest_without_automated_labeling_is_not_counted(
    sagemaker_stub: Any, store: S3Store, bucket: str
) -> None:
    client, stubber = sagemaker_stub
    request = build_labeling_job_request(
        **base_args(manifest_uri=f"s3://{bucket}/in.manifest", output_uri=f"s3://{bucket}/out")
    )
    store.put_bytes(f"s3://{bucket}/in.manifest", b'{"source-ref": "s3://b/1.jpg"}\n')
    stubber.add_response("create_labeling_job", {"LabelingJobArn": "arn:x"}, request)
    got = create_labeling_job(
        request, sagemaker=client, store=store, labels=["ball"], template="<p/>"
    )
    assert got == "arn:x"


def test_create_labeling_job_uploads_nothing_for_a_bad_request(
    sagemaker_stub: Any, store: S3Store, bucket: str
) -> None:
    client, _ = sagemaker_stub
    request = build_labeling_job_request(
        **base_args(manifest_uri=f"s3://{bucket}/in.manifest", output_uri=f"s3://{bucket}/out")
    )
    request["HumanTaskConfig"]["TaskTimeLimitInSeconds"] = 5
    with pytest.raises(ValidationError, match="TaskTimeLimitInSeconds"):
        create_labeling_job(request, sagemaker=client, store=store, labels=["ball"], template="x")
    assert not store.exists(request["LabelCategoryConfigS3Uri"])


def test_a_ner_label_file_carries_the_instructions(
    sagemaker_stub: Any, store: S3Store, bucket: str
) -> None:
    client, stubber = sagemaker_stub
    request = build_labeling_job_request(
        **base_args(
            task_type="NamedEntityRecognition",
            manifest_uri=f"s3://{bucket}/in.manifest",
            output_uri=f"s3://{bucket}/out",
        )
    )
    common = {"sagemaker": client, "store": store, "labels": ["person"]}
    with pytest.raises(ValidationError, match="pass short_instruction and/or full_instruction"):
        create_labeling_job(request, task_type="NamedEntityRecognition", **common)
    with pytest.raises(ValidationError, match="an AWS-hosted worker UI, so no template is used"):
        create_labeling_job(
            request,
            task_type="NamedEntityRecognition",
            template="<crowd-form/>",
            short_instruction="Mark names",
            **common,
        )
    assert not store.exists(request["LabelCategoryConfigS3Uri"])
    stubber.add_response("create_labeling_job", {"LabelingJobArn": "arn:x"}, request)
    create_labeling_job(
        request, task_type="NamedEntityRecognition", short_instruction="<p>Mark names</p>", **common
    )
    config = json.loads(store.get_bytes(request["LabelCategoryConfigS3Uri"]))
    assert config["instructions"] == {
        "shortInstruction": "<p>Mark names</p>",
        "fullInstruction": "",
    }


@pytest.mark.parametrize(
    ("built_for", "created_as", "message"),
    [
        (
            "NamedEntityRecognition",
            "BoundingBox",
            "the request's built-in Lambdas are for NamedEntityRecognition jobs, but task_type "
            "is 'BoundingBox': pass task_type='NamedEntityRecognition'",
        ),
        (
            "ImageMultiClass",
            "BoundingBox",
            "the request's built-in Lambdas are for ImageMultiClass jobs, but task_type is "
            "'BoundingBox'",
        ),
    ],
)
def test_a_request_created_as_another_task_type_is_refused(
    sagemaker_stub: Any, store: S3Store, bucket: str, built_for: str, created_as: str, message: str
) -> None:
    """The label file follows create_labeling_job's task_type (default BoundingBox): an NER
    request created without it went out with a label file lacking the NER instructions."""
    client, _ = sagemaker_stub
    request = build_labeling_job_request(
        **base_args(
            task_type=built_for,
            labels=["person", "place"],
            manifest_uri=f"s3://{bucket}/in.manifest",
            output_uri=f"s3://{bucket}/out",
        )
    )
    template = None if built_for == "NamedEntityRecognition" else "<crowd-form/>"
    with pytest.raises(ValidationError) as info:
        create_labeling_job(
            request,
            sagemaker=client,
            store=store,
            labels=["person", "place"],
            template=template,
            task_type=created_as,
        )
    assert any(message in p for p in info.value.problems), info.value.problems
    assert not store.exists(request["LabelCategoryConfigS3Uri"])


def test_a_custom_lambda_request_names_no_task_type(
    sagemaker_stub: Any, store: S3Store, bucket: str
) -> None:
    """Our own Lambdas and a template say nothing about the task type: nothing to compare."""
    from gt_toolkit.sagemaker.labeling_job import _task_type_problems

    request = build_labeling_job_request(
        **base_args(
            manifest_uri=f"s3://{bucket}/in.manifest",
            output_uri=f"s3://{bucket}/out",
            pre_annotation_lambda_arn=(
                "arn:aws:lambda:us-east-1:123456789012:function:gt-SageMaker-pre"
            ),
            consolidation_lambda_arn=(
                "arn:aws:lambda:us-east-1:123456789012:function:gt-SageMaker-post"
            ),
        )
    )
    assert _task_type_problems(request, "BoundingBox") == []
    assert _task_type_problems(request, "Custom") == []


def test_a_3d_adjustment_label_file_names_the_audited_attribute(
    sagemaker_stub: Any, store: S3Store, bucket: str
) -> None:
    client, stubber = sagemaker_stub
    task_type = "Adjustment3DPointCloudObjectDetection"
    request = build_labeling_job_request(
        **base_args(
            task_type=task_type,
            labels=["car"],
            source_label_attribute="cars",
            manifest_uri=f"s3://{bucket}/in.manifest",
            output_uri=f"s3://{bucket}/out",
        )
    )
    common = {"sagemaker": client, "store": store, "labels": ["car"], "task_type": task_type}
    with pytest.raises(ValidationError, match="pass audit_label_attribute"):
        create_labeling_job(request, **common)
    stubber.add_response("create_labeling_job", {"LabelingJobArn": "arn:x"}, request)
    create_labeling_job(request, audit_label_attribute="cars", **common)
    config = json.loads(store.get_bytes(request["LabelCategoryConfigS3Uri"]))
    assert config["auditLabelAttributeName"] == "cars"


def describe_response(request: dict[str, Any], status: str, **counters: int) -> dict[str, Any]:
    now = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
    response: dict[str, Any] = {
        "LabelingJobStatus": status,
        "LabelCounters": {
            "TotalLabeled": counters.get("labeled", 0),
            "HumanLabeled": counters.get("labeled", 0),
            "MachineLabeled": 0,
            "FailedNonRetryableError": counters.get("failed", 0),
            "Unlabeled": counters.get("unlabeled", 0),
        },
        "CreationTime": now,
        "LastModifiedTime": now,
        "JobReferenceCode": "ref-1",
        "LabelingJobName": request["LabelingJobName"],
        "LabelingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:labeling-job/x",
        "LabelAttributeName": request["LabelAttributeName"],
        "InputConfig": request["InputConfig"],
        "OutputConfig": request["OutputConfig"],
        "RoleArn": request["RoleArn"],
        "HumanTaskConfig": request["HumanTaskConfig"],
    }
    if status == "Failed":
        response["FailureReason"] = "ClientError: workteam not found"
    return response


def test_wait_reports_each_change_of_counters(sagemaker_stub: Any) -> None:
    client, stubber = sagemaker_stub
    request = build_labeling_job_request(**base_args())
    params = {"LabelingJobName": request["LabelingJobName"]}
    for status, counters in [
        ("InProgress", {"unlabeled": 40}),
        ("InProgress", {"unlabeled": 40}),
        ("InProgress", {"labeled": 30, "failed": 1, "unlabeled": 9}),
        ("Completed", {"labeled": 39, "failed": 1}),
    ]:
        stubber.add_response(
            "describe_labeling_job", describe_response(request, status, **counters), params
        )
    seen: list[LabelingProgress] = []
    fake = FakeTime()
    final = wait_for_labeling_job(
        client,
        request["LabelingJobName"],
        poll_seconds=30,
        on_progress=seen.append,
        sleep=fake.sleep,
        clock=fake.clock,
    )
    assert final["LabelingJobStatus"] == "Completed"
    assert fake.sleeps == [30, 30, 30]
    assert [p.total_labeled for p in seen] == [0, 30, 39]  # the repeat is not reported
    assert seen[1].format() == "InProgress 30/40 labeled (78%; human 30, machine 0), 1 failed"


def test_wait_raises_on_failure_and_on_timeout(sagemaker_stub: Any) -> None:
    client, stubber = sagemaker_stub
    request = build_labeling_job_request(**base_args())
    params = {"LabelingJobName": request["LabelingJobName"]}
    stubber.add_response("describe_labeling_job", describe_response(request, "Failed"), params)
    with pytest.raises(LabelingJobFailedError, match="workteam not found"):
        wait_for_labeling_job(
            client, request["LabelingJobName"], on_progress=None, sleep=lambda s: None
        )
    for _ in range(3):
        stubber.add_response(
            "describe_labeling_job", describe_response(request, "InProgress", unlabeled=5), params
        )
    fake = FakeTime()
    with pytest.raises(WaitTimeoutError, match="still InProgress after 120 s"):
        wait_for_labeling_job(
            client,
            request["LabelingJobName"],
            poll_seconds=60,
            timeout_seconds=120,
            on_progress=None,
            sleep=fake.sleep,
            clock=fake.clock,
        )


# ---------------------------------------------------------------- the 6 MB response estimate


@pytest.mark.parametrize(("tasks", "warned"), [(None, False), (1000, False), (1001, True)])
def test_more_than_1000_concurrent_tasks_warns_of_the_quota_but_builds(
    tasks: int | None, warned: bool
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        request = build_labeling_job_request(**base_args(max_concurrent_tasks=tasks))
    quota = [w for w in caught if issubclass(w.category, ServiceQuotaWarning)]
    assert len(quota) == int(warned), [str(w.message) for w in caught]
    if warned:
        assert "MaxConcurrentTaskCount 1001 is above the 1,000 objects" in str(quota[0].message)
        assert quota[0].filename == __file__  # points at the caller's line
        assert request["HumanTaskConfig"]["MaxConcurrentTaskCount"] == 1001


def test_a_batch_that_can_pass_6_mb_is_warned_about_with_a_batch_that_fits() -> None:
    args = base_args(workers_per_object=5, expected_boxes_per_image=40)
    with pytest.warns(LambdaResponseSizeWarning, match="lower max_concurrent_tasks") as caught:
        build_labeling_job_request(**args)
    message = str(caught[0].message)
    assert "5 workers x 40 boxes per image x 1000 objects per batch" in message
    suggested = int(message.rsplit("about ", 1)[1])
    assert (
        consolidation_response_bytes(
            workers=5, boxes_per_image=40, batch_size=suggested, labels=["ball", "bat"]
        )
        <= RESPONSE_BUDGET
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_labeling_job_request(**args, max_concurrent_tasks=suggested)
        build_labeling_job_request(**base_args(expected_boxes_per_image=8))
        build_labeling_job_request(**base_args())  # no estimate without expected boxes


def test_the_estimate_bounds_a_real_response_of_that_size() -> None:
    labels = ["pedestrian", "Fußgänger", "自転車"]
    workers, boxes, batch = 5, 20, 50
    box = {"left": 12345.6, "top": 23456.7, "width": 1234.5, "height": 2345.6, "confidence": 0.5}
    response = [
        {
            "datasetObjectId": str(100_000 + i),
            "consolidatedAnnotation": {
                "content": build_detection_label(
                    "a-label-attribute-of-some-length",
                    [{**box, "label": labels[b % 3]} for b in range(workers * boxes)],
                    image_size={"width": 40_000, "height": 30_000},
                    labels=labels,
                    job_name="j" * 63,
                    extra_metadata={"worker-count": workers},
                )
            },
        }
        for i in range(batch)
    ]
    actual = len(json.dumps(response))  # Lambda's runtime encodes with the json module
    estimate = consolidation_response_bytes(
        workers=workers, boxes_per_image=boxes, batch_size=batch, labels=labels
    )
    assert actual <= estimate <= 1.3 * actual


@pytest.mark.parametrize("builtin", ["BoundingBox", "NamedEntityRecognition"])
def test_a_custom_template_over_builtin_lambdas_is_created_as_custom(
    sagemaker_stub: Any, store: S3Store, bucket: str, builtin: str
) -> None:
    """build_labeling_job_request(task_type="Custom") takes AWS's own Lambdas with a template
    of one's own; create_labeling_job(task_type="Custom") refused that very request."""
    client, stubber = sagemaker_stub
    pre, acs = builtin_lambda_arns("us-east-1", builtin)
    request = build_labeling_job_request(
        **base_args(
            task_type="Custom",
            manifest_uri=f"s3://{bucket}/in.manifest",
            output_uri=f"s3://{bucket}/out",
            pre_annotation_lambda_arn=pre,
            consolidation_lambda_arn=acs,
        )
    )
    common: dict[str, Any] = {"sagemaker": client, "store": store, "labels": ["ball", "bat"]}
    common |= {"template": "<crowd-form/>", "task_type": "Custom"}
    if builtin == "NamedEntityRecognition":  # its Lambdas read the instructions from the file
        with pytest.raises(ValidationError, match="pass short_instruction"):
            create_labeling_job(request, **common)
        assert not store.exists(request["LabelCategoryConfigS3Uri"])
        common["short_instruction"] = "Mark names"
    stubber.add_response("create_labeling_job", {"LabelingJobArn": "arn:x"}, request)
    assert create_labeling_job(request, **common) == "arn:x"
    config = json.loads(store.get_bytes(request["LabelCategoryConfigS3Uri"]))
    assert [entry["label"] for entry in config["labels"]] == ["ball", "bat"]

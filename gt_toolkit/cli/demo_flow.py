"""The demo's flow: every step a team runs, on the shipped samples, against moto or AWS.

Imported only when ``gt-convert demo`` runs (it pulls in every stage of the toolkit); the
command itself, its options and the local AWS live in :mod:`gt_toolkit.cli.demo`. Each step
prints what it ran and where its output is; phases pass what the next one needs as values.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from gt_toolkit.consolidation.reconsolidate import reconsolidate
from gt_toolkit.convert import ConvertOptions, convert_output
from gt_toolkit.errors import ManifestError
from gt_toolkit.evaluation.agreement import measure_agreement, write_agreement
from gt_toolkit.evaluation.metrics import evaluate_detections, format_evaluation, read_detection_set
from gt_toolkit.evaluation.review import write_review
from gt_toolkit.formats.crowd.sources import open_crowd_source
from gt_toolkit.formats.detection_label import parse_detection_label
from gt_toolkit.formats.input_manifest import write_input_manifest
from gt_toolkit.formats.manifest import read_manifest, write_manifest
from gt_toolkit.formats.sampling import item_key, percent_to_count, sample_items
from gt_toolkit.formats.training_channels import ChannelFacts, load_channel_facts
from gt_toolkit.handlers.post_annotation import PostAnnotationSettings, handle_post_annotation
from gt_toolkit.handlers.pre_annotation import PreAnnotationSettings, handle_pre_annotation
from gt_toolkit.sagemaker.labeling_job import build_labeling_job_request, create_labeling_job
from gt_toolkit.sagemaker.training import (
    ObjectDetectionHyperparameters,
    build_object_detection_training_request,
)
from gt_toolkit.sagemaker.tuning import (
    IntegerRange,
    best_training_job,
    build_tuning_request,
    default_ranges,
)
from gt_toolkit.storage.files import read_bytes, write_bytes, write_json
from gt_toolkit.storage.s3 import S3Store, make_s3_client
from gt_toolkit.testing.simulated_crowd import (
    CrowdImage,
    make_skills,
    simulate_worker,
    worker_response_document,
)
from gt_toolkit.types import ImageSize, WorkerBox
from gt_toolkit.worker_ui.lint import lint_template
from gt_toolkit.worker_ui.preview import write_preview
from gt_toolkit.worker_ui.render import render_bounding_box_template

__all__ = [
    "ACCOUNT",
    "LABEL",
    "REGION",
    "DemoConfig",
    "DemoStep",
    "bucket_location",
    "labeling_request",
    "run_demo",
]

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
LABEL = "ball"
ACCOUNT = "123456789012"
HEADER = "Draw a tight box around every ball"
LABELING_OUTPUT = "labeling/output"
"""The labeling job's output prefix in the demo's bucket (the post-annotation Lambda reads it)."""
ANSWERED_AT = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)
"""When the simulated crowd answers: a fixed time keeps every output reproducible."""


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """What the demo runs on and how big the crowd is."""

    out_dir: Path
    samples: Path = REPO / "samples"
    bucket: str = "gt-toolkit-demo"
    job_name: str = "balls-demo"
    percent: float = 20.0
    seed: int = 7
    workers: int = 5
    region: str = REGION
    role_arn: str = f"arn:aws:iam::{ACCOUNT}:role/GroundTruthDemoRole"
    workteam_arn: str = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:workteam/private-crowd/demo"
    submit: bool = True

    def s3(self, key: str) -> str:
        """The URI of ``key`` in the demo's bucket."""
        return f"s3://{self.bucket}/{key}"


@dataclass(slots=True)
class DemoStep:
    """One printed step: what ran, where its output is, one line of facts."""

    title: str
    output: str
    detail: str = ""
    seconds: float = 0.0


@dataclass(slots=True)
class _Run:
    config: DemoConfig
    clients: Callable[[str], Any]
    store: S3Store
    steps: list[DemoStep] = field(default_factory=list)

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[DemoStep]:
        record = DemoStep(title, "")
        start = time.perf_counter()
        yield record
        record.seconds = time.perf_counter() - start
        self.steps.append(record)
        print(f"[{len(self.steps):2d}] {title} ({record.seconds:.1f} s)")
        if record.output:
            print(f"     -> {record.output}")
        if record.detail:
            print(f"     {record.detail}")


@dataclass(frozen=True, slots=True)
class _Job:
    """The labeling job as the later steps see it."""

    label_attribute: str
    output_prefix: str  # s3://bucket/labeling/output/<job name>


Truth = Mapping[str, tuple[ImageSize, list[WorkerBox]]]


def _truth(samples: Path) -> dict[str, tuple[ImageSize, list[WorkerBox]]]:
    """The samples' true boxes by image file name, as worker-shaped boxes.

    Keyed by name, not source-ref: the demo may upload the images to any bucket.
    """
    out: dict[str, tuple[ImageSize, list[WorkerBox]]] = {}
    for line in read_manifest(samples / "truth.manifest"):
        size, boxes = parse_detection_label(line.data["truth"], line.data["truth-metadata"])
        if size is None:  # the shipped truth always has one; a hand-edited copy may not
            raise ManifestError(str(samples / "truth.manifest"), line.line_no, "no image_size")
        out[line.data["source-ref"].rsplit("/", 1)[-1]] = (size, [b.worker_box() for b in boxes])
    return out


def _post_annotation_handler() -> Callable[[Mapping[str, Any]], list[Any]]:
    """The deployed handler (``lambdas/post_annotation.py``) when run from a checkout.

    Installed from a wheel there is no ``lambdas`` folder; the handler is one call into
    :func:`handle_post_annotation`, so the demo makes that call itself.
    """
    try:
        module = importlib.import_module("lambdas.post_annotation")
        # A cold start: the handler builds its clients at import, from this run's endpoint.
        module = importlib.reload(module)
    except ImportError:
        settings = PostAnnotationSettings.from_env(os.environ)
        store = S3Store(make_s3_client())
        return lambda event: list(handle_post_annotation(event, store=store, settings=settings))
    return lambda event: list(module.lambda_handler(event, None))


def bucket_location(region: str) -> dict[str, Any]:
    """``create_bucket`` arguments for ``region``: us-east-1 refuses a location constraint."""
    if region == "us-east-1":
        return {}
    return {"CreateBucketConfiguration": {"LocationConstraint": region}}


def run_demo(config: DemoConfig, *, clients: Callable[[str], Any]) -> list[DemoStep]:
    """Run every step of the flow; ``clients(service)`` gives boto3 clients (moto or AWS)."""
    config.out_dir.mkdir(parents=True, exist_ok=True)
    run = _Run(config, clients, S3Store(clients("s3")))
    sample_uri, sampled = _input_steps(run)
    template = _template_step(run, sampled)
    job = _labeling_steps(run, sample_uri, template)
    payload_uri = _crowd_step(run, job, sampled, _truth(config.samples))
    output_manifest = _consolidation_steps(run, job, payload_uri, sampled)
    _training_steps(run, job)
    _evaluate_and_review(run, job, output_manifest, sampled)
    _other_tool_step(run)
    return run.steps


def _input_steps(run: _Run) -> tuple[str, list[dict[str, Any]]]:
    """Upload, list and sample: the sampled manifest's URI and its lines."""
    config, out, store = run.config, run.config.out_dir, run.store
    images_prefix = config.s3("images/")
    job_input = f"labeling/{config.job_name}/input"
    with run.step("Upload the sample images") as s:
        s3 = run.clients("s3")
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=config.bucket, **bucket_location(config.region))
        images = sorted((config.samples / "images").glob("*.jpg"))
        for path in images:
            store.upload_file(path, images_prefix + path.name)
        s.output, s.detail = images_prefix, f"{len(images)} images"

    with run.step("Build the input manifest from the S3 prefix") as s:
        manifest_uri = config.s3(f"{job_input}/all.manifest")
        n = write_input_manifest(images_prefix, manifest_uri, store=store)
        write_bytes(out / "all.manifest", read_bytes(manifest_uri, store=store))
        s.output, s.detail = manifest_uri, f"{n} lines (also {out / 'all.manifest'})"

    with run.step(f"Draw a {config.percent:g}% seeded sample") as s:
        lines = list(read_manifest(manifest_uri, store=store))
        count = percent_to_count(config.percent, len(lines))
        sample = sample_items(lines, count=count, seed=config.seed, key=lambda x: item_key(x.data))
        sample_uri = config.s3(f"{job_input}/sample.manifest")
        write_manifest(sample.items, sample_uri, store=store)
        write_manifest(sample.items, out / "sample.manifest")
        write_json(
            out / "sample.manifest.sample.json",
            {
                "seed": config.seed,
                "percent": config.percent,
                "total": sample.total,
                "lines": [x.line_no for x in sample.items],
                "keys": sample.keys,
            },
        )
        s.output = sample_uri
        s.detail = f"{len(sample.items)} of {sample.total} images, seed {config.seed}"
    return sample_uri, [x.data for x in sample.items]


def _template_step(run: _Run, sampled: Sequence[Mapping[str, Any]]) -> str:
    """Render, lint and preview the worker template; returns the template text."""
    config, out = run.config, run.config.out_dir
    with run.step("Render the worker template and its offline preview") as s:
        examples = config.samples / "examples"
        ui: dict[str, Any] = {
            "labels": [LABEL],
            "header": HEADER,
            "short_instructions": "One box per ball, touching its edge on all four sides.",
            "full_instructions": (
                "Draw one box around each ball you can see, including balls cut by the image "
                "edge.\n\n- The box touches the ball on all four sides.\n"
                "- Never one box around two balls."
            ),
            "good_examples": [(examples / "good_tight.jpg", "Tight: each box touches its ball.")],
            "bad_examples": [
                (examples / "bad_loose.jpg", "Too loose: the box leaves a margin."),
                (examples / "bad_missed.jpg", "A ball has no box."),
            ],
        }
        template = render_bounding_box_template(**ui)
        findings = lint_template(**ui, template_text=template, store=run.store)
        write_bytes(out / "template.liquid.html", template.encode())
        task_input = handle_pre_annotation(
            {"version": "2018-10-16", "labelingJobArn": "demo", "dataObject": sampled[0]},
            settings=PreAnnotationSettings(labels=(LABEL,), header=HEADER),
        )["taskInput"]
        write_preview(
            template,
            task_input,
            out / "template.preview.html",
            store=run.store,
            images_dir=config.samples / "images",
        )
        s.output = str(out / "template.liquid.html")
        s.detail = f"preview: {out / 'template.preview.html'}; lint: " + (
            ", ".join(f.code for f in findings) or "clean"
        )
    return template


def labeling_request(
    config: DemoConfig, sample_uri: str, *, pre_annotation_arn: str, consolidation_arn: str
) -> dict[str, Any]:
    """The demo's labeling-job request, validated (botocore's model and Ground Truth's rules)."""
    return build_labeling_job_request(
        job_name=config.job_name,
        manifest_uri=sample_uri,
        output_uri=config.s3(LABELING_OUTPUT),
        role_arn=config.role_arn,
        labels=[LABEL],
        task_title="Draw a box around every ball",
        task_description="Draw one tight box around each ball in the image",
        region=config.region,
        label_attribute="balls",
        workteam_arn=config.workteam_arn,
        workers_per_object=config.workers,
        pre_annotation_lambda_arn=pre_annotation_arn,
        consolidation_lambda_arn=consolidation_arn,
        task_keywords=["bounding box", "balls"],
    )


def _labeling_steps(run: _Run, sample_uri: str, template: str) -> _Job:
    config, out = run.config, run.config.out_dir
    with run.step("Package and deploy the pre- and post-annotation Lambdas") as s:
        from gt_toolkit.sagemaker.lambda_deploy import deploy_lambdas
        from gt_toolkit.sagemaker.lambda_zip import build_lambda_zip

        # The wheels are cached in ./.cache/lambda (shared with `make lambda-zip`).
        built = build_lambda_zip(out / "gt-toolkit-lambdas.zip")
        deployed = deploy_lambdas(
            built,
            iam_client=run.clients("iam"),
            lambda_client=run.clients("lambda"),
            output_bucket=config.bucket,
            output_prefix=f"{LABELING_OUTPUT}/",  # the job's S3OutputPath
            name_prefix="gt-toolkit-demo",
            pre_environment={"GT_LABELS": LABEL},
        )
        s.output = built.path.as_posix()
        s.detail = (
            f"{built.size / 1e6:.1f} MB zip; {deployed.pre_annotation_arn}, "
            f"{deployed.post_annotation_arn}"
        )

    with run.step("Build, validate and submit the labeling job request") as s:
        request = labeling_request(
            config,
            sample_uri,
            pre_annotation_arn=deployed.pre_annotation_arn,
            consolidation_arn=deployed.post_annotation_arn,
        )
        write_json(out / "labeling_job_request.json", request)
        s.output = str(out / "labeling_job_request.json")
        s.detail = _submit_labeling_job(run, request, template)
    output_path = request["OutputConfig"]["S3OutputPath"].rstrip("/")
    return _Job(request["LabelAttributeName"], f"{output_path}/{config.job_name}")


def _submit_labeling_job(run: _Run, request: Mapping[str, Any], template: str) -> str:
    """Submit (AWS), or upload what the job reads (moto, which has no labeling jobs)."""
    if not run.config.submit:
        return "validated; not submitted (pass --submit to create it)"
    if not os.environ.get("AWS_ENDPOINT_URL"):
        arn = create_labeling_job(
            request,
            sagemaker=run.clients("sagemaker"),
            store=run.store,
            labels=[LABEL],
            template=template,
        )
        return f"submitted: {arn}"
    run.store.put_bytes(
        request["HumanTaskConfig"]["UiConfig"]["UiTemplateS3Uri"],
        template.encode(),
        content_type="text/html",
    )
    run.store.put_bytes(
        request["LabelCategoryConfigS3Uri"],
        orjson.dumps({"document-version": "2018-11-28", "labels": [{"label": LABEL}]}),
    )
    return (
        "validated against botocore's model and Ground Truth's rules; template and label "
        "file uploaded (moto has no labeling jobs, so the crowd simulator stands in for it)"
    )


def _crowd_step(run: _Run, job: _Job, sampled: Sequence[Mapping[str, Any]], truth: Truth) -> str:
    """Simulated workers answer every sampled image; returns the consolidation payload URI."""
    config, prefix = run.config, job.output_prefix
    with run.step(f"Answer the tasks with the crowd simulator ({config.workers} workers)") as s:
        rng = random.Random(f"demo:{config.seed}")
        skills = make_skills(config.workers, seed=config.seed)
        payload = []
        for object_id, data in enumerate(sampled):
            size, boxes = truth[data["source-ref"].rsplit("/", 1)[-1]]
            answers = [simulate_worker(rng, boxes, skill, size, [LABEL]) for skill in skills]
            seconds = [round(6.0 * (len(a) + 1), 1) for a in answers]
            image = CrowdImage(size, boxes, answers, [k.worker_id for k in skills], seconds)
            document = worker_response_document(image, start=ANSWERED_AT)
            key = (
                f"{prefix}/annotations/worker-response/iteration-1/{object_id}/"
                f"{ANSWERED_AT:%Y-%m-%d_%H:%M:%S}.json"
            )
            run.store.put_bytes(key, orjson.dumps(document))
            payload.append(_payload_entry(object_id, data["source-ref"], document))
        payload_uri = (
            f"{prefix}/annotations/consolidated-annotation/consolidation-request/"
            f"iteration-1/{ANSWERED_AT:%Y-%m-%d_%H:%M:%S}.json"
        )
        run.store.put_bytes(payload_uri, orjson.dumps(payload))
        s.output = f"{prefix}/annotations/worker-response/"
        s.detail = f"{len(payload)} objects x {config.workers} answers; payload {payload_uri}"
    return payload_uri


def _payload_entry(object_id: int, source_ref: str, document: Mapping[str, Any]) -> dict[str, Any]:
    """One object of Ground Truth's consolidation payload, from its worker-response file."""
    return {
        "datasetObjectId": str(object_id),
        "dataObject": {"s3Uri": source_ref},
        "annotations": [
            {
                "workerId": a["workerId"],
                "annotationData": {"content": orjson.dumps(a["answerContent"]).decode()},
            }
            for a in document["answers"]
        ],
    }


def _consolidation_steps(
    run: _Run, job: _Job, payload_uri: str, sampled: Sequence[Mapping[str, Any]]
) -> Path:
    """Run the post-annotation Lambda and assemble ``output.manifest``; returns its local copy."""
    config, out, prefix = run.config, run.config.out_dir, job.output_prefix
    account = config.role_arn.split(":")[4]  # the job runs in the role's account
    with run.step("Run the post-annotation Lambda on the consolidation payload") as s:
        event = {
            "version": "2018-10-16",
            "labelingJobArn": f"arn:aws:sagemaker:{config.region}:{account}:"
            f"labeling-job/{config.job_name}",
            "labelCategories": [LABEL],
            "labelAttributeName": job.label_attribute,
            "roleArn": config.role_arn,
            "payload": {"s3Uri": payload_uri},
            "outputConfig": f"{prefix}/annotations/consolidated-annotation/consolidation-response",
        }
        response = _post_annotation_handler()(event)
        response_uri = (
            f"{prefix}/annotations/consolidated-annotation/consolidation-response/"
            f"iteration-1/{ANSWERED_AT:%Y-%m-%d_%H:%M:%S}.json"
        )
        run.store.put_bytes(response_uri, orjson.dumps(response))
        write_json(out / "consolidation_response.json", response)
        boxes = sum(
            len(r["consolidatedAnnotation"]["content"][job.label_attribute]["annotations"])
            for r in response
        )
        s.output = response_uri
        s.detail = f"{len(response)} objects back, {boxes} consolidated boxes"

    with run.step("Assemble output.manifest") as s:
        by_id = {r["datasetObjectId"]: r["consolidatedAnnotation"]["content"] for r in response}
        records = [{**data, **by_id[str(i)]} for i, data in enumerate(sampled)]
        output_uri = f"{prefix}/manifests/output/output.manifest"
        write_manifest(records, output_uri, store=run.store)
        write_manifest(records, out / "output.manifest")
        s.output = output_uri
        s.detail = f"{len(records)} lines (also {out / 'output.manifest'})"
    return out / "output.manifest"


def _training_steps(run: _Run, job: _Job) -> None:
    config, out = run.config, run.config.out_dir
    with run.step("gt-convert augmented: train and validation channels") as s:
        channels = config.s3("training/channels")
        result = convert_output(
            "augmented",
            job.output_prefix + "/manifests/output/output.manifest",
            channels,
            ConvertOptions(validation_fraction=0.25, seed=config.seed, store=run.store),
        )
        facts = load_channel_facts(channels + "/channels.json", store=run.store)
        for name in ("channels.json", "train.manifest", "validation.manifest"):
            write_bytes(out / name, read_bytes(f"{channels}/{name}", store=run.store))
        s.output = channels + "/"
        s.detail = (
            f"train {facts.samples.get('train', 0)}, validation "
            f"{facts.samples.get('validation', 0)}, label_width {facts.label_width}, "
            f"{result.stats.rejected_total} rejected (also {out}/train.manifest, "
            "validation.manifest, channels.json)"
        )

    with run.step("Build and submit the training and tuning requests") as s:
        training, tuning = _training_requests(config, job, facts, channels)
        write_json(out / "training_request.json", training)
        write_json(out / "tuning_request.json", tuning)
        s.output = str(out / "training_request.json")
        s.detail = _submit_training(run, training, tuning) if config.submit else "validated"


def _training_requests(
    config: DemoConfig, job: _Job, facts: ChannelFacts, channels: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Object-detection training and tuning requests sized to the demo's few images."""
    training = build_object_detection_training_request(
        job_name=f"{config.job_name}-od",
        role_arn=config.role_arn,
        region=config.region,
        train_manifest_uri=facts.manifest_uri("train") or channels + "/train.manifest",
        validation_manifest_uri=(
            facts.manifest_uri("validation") or channels + "/validation.manifest"
        ),
        label_attribute=facts.label_attribute or job.label_attribute,
        output_uri=config.s3("training/output"),
        hyperparameters=ObjectDetectionHyperparameters.from_facts(
            facts,
            epochs=10,
            # Eight sampled images leave six for training: a batch cannot be larger.
            mini_batch_size=min(32, facts.num_training_samples),
        ),
    )
    ranges = [
        r
        if r.name != "mini_batch_size"
        else IntegerRange("mini_batch_size", 2, max(3, facts.num_training_samples))
        for r in default_ranges("object-detection")
    ]
    tuning = build_tuning_request(
        training, job_name=f"{config.job_name}-hpo", max_jobs=6, ranges=ranges
    )
    return training, tuning


def _submit_training(run: _Run, training: Mapping[str, Any], tuning: Mapping[str, Any]) -> str:
    sm = run.clients("sagemaker")
    sm.create_training_job(**training)
    sm.create_hyper_parameter_tuning_job(**tuning)
    state = sm.describe_training_job(TrainingJobName=training["TrainingJobName"])
    hpo = sm.describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tuning["HyperParameterTuningJobName"]
    )
    best = best_training_job(sm, tuning["HyperParameterTuningJobName"])
    return (
        f"training {state['TrainingJobStatus']}, tuning "
        f"{hpo['HyperParameterTuningJobStatus']}, best job {best.name}"
    )


def _evaluate_and_review(
    run: _Run, job: _Job, output_manifest: Path, sampled: Sequence[Mapping[str, Any]]
) -> None:
    config, out = run.config, run.config.out_dir
    with run.step("Evaluate the consolidated labels against the samples' truth") as s:
        # The truth file names the shipped bucket; point it at where the demo uploaded.
        refs = {d["source-ref"].rsplit("/", 1)[-1]: d["source-ref"] for d in sampled}
        truth_lines = [
            {**x.data, "source-ref": refs[name]}
            for x in read_manifest(config.samples / "truth.manifest")
            if (name := x.data["source-ref"].rsplit("/", 1)[-1]) in refs
        ]
        write_manifest(truth_lines, out / "truth.sample.manifest")
        result = evaluate_detections(
            read_detection_set(output_manifest).boxes,
            read_detection_set(out / "truth.sample.manifest").boxes,
        )
        write_json(out / "evaluation.json", result.to_json())
        (out / "evaluation.txt").write_text(format_evaluation(result, worst=5) + "\n")
        s.output = str(out / "evaluation.json")
        s.detail = (
            f"AP@0.5 {result.map50:.3f}, AP@[.5:.95] {result.map:.3f}, "
            f"precision {result.precision:.3f}, recall {result.recall:.3f}"
        )

    with run.step("Write the review report") as s:
        summary = write_review(
            output_manifest,
            out / "review",
            worker_responses=job.output_prefix,
            images_dir=config.samples / "images",
            images_prefix=config.s3("images/"),
            store=run.store,
        )
        s.output = str(out / "review" / "report.html")
        s.detail = f"contact sheet {out / 'review' / 'contact_sheet.png'}; {summary.images} images"


def _other_tool_step(run: _Run) -> None:
    """The same crowd labeled in Label Studio: consolidated offline, agreement measured."""
    out = run.config.out_dir
    export = run.config.samples / "crowd" / "label-studio.json"
    with run.step("Consolidate a Label Studio export and measure agreement") as s:
        with open_crowd_source(export, "label-studio") as source:
            report = reconsolidate(source, out / "label-studio.manifest")
            agreement = measure_agreement(source.items())
        pages = write_agreement(agreement, out / "agreement", title="Agreement: Label Studio")
        s.output = pages["html"]
        s.detail = (
            f"{report.boxes} boxes on {report.objects} images; "
            f"alpha {agreement.alpha or 0:.3f} over {agreement.units} objects"
        )

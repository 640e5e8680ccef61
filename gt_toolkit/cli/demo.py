"""``make demo``: the whole flow on the shipped samples, against a local AWS, in one command.

Without an AWS session it starts moto's server on 127.0.0.1 (nothing leaves the machine) and
runs every step a team runs for real: upload the images, list them into an input manifest, draw
a seeded sample, render the worker template and its offline preview, package and deploy the
Lambdas and build the labeling-job request, answer the tasks with the crowd simulator, run the
post-annotation Lambda on Ground Truth's consolidation payload, assemble ``output.manifest``,
convert it to training channels, submit training and tuning, evaluate the consolidated labels
against the samples' truth and write the review report. Each step prints where its output is.

With a boto3 session (``--profile``) the same code runs against real AWS; it then stops short of
anything that costs money (labeling, training and tuning jobs are built and validated, not
submitted) unless ``--submit`` is given.
"""

from __future__ import annotations

import argparse
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

from gt_toolkit.convert import ConvertOptions, convert_output
from gt_toolkit.errors import GtToolkitError, StorageError, ValidationError
from gt_toolkit.evaluation.metrics import evaluate_detections, format_evaluation, read_detection_set
from gt_toolkit.evaluation.review import write_review
from gt_toolkit.formats.detection_label import parse_detection_label
from gt_toolkit.formats.input_manifest import write_input_manifest
from gt_toolkit.formats.manifest import read_manifest, write_manifest
from gt_toolkit.formats.sampling import item_key, percent_to_count, sample_items
from gt_toolkit.formats.training_channels import load_channel_facts
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
from gt_toolkit.storage.files import write_bytes, write_json
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

__all__ = ["DemoConfig", "DemoStep", "register", "run", "run_demo"]

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
LABEL = "ball"
ACCOUNT = "123456789012"


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
    facts: dict[str, Any] = field(default_factory=dict)

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[DemoStep]:
        record = DemoStep(title, "")
        start = time.perf_counter()
        yield record
        record.seconds = time.perf_counter() - start
        self.steps.append(record)
        n = len(self.steps)
        print(f"[{n:2d}] {title} ({record.seconds:.1f} s)")
        if record.output:
            print(f"     -> {record.output}")
        if record.detail:
            print(f"     {record.detail}")

    def s3(self, key: str) -> str:
        return f"s3://{self.config.bucket}/{key}"


@contextlib.contextmanager
def local_aws() -> Iterator[str]:
    """Start moto's server on 127.0.0.1 on a free port, with fake credentials for this process."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # pragma: no cover - the demo extra is missing
        raise GtToolkitError("the local demo needs moto: pip install 'gt-toolkit[demo]'") from exc
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    saved = {k: os.environ.get(k) for k in _FAKE_ENV}
    os.environ.update(_FAKE_ENV)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ["AWS_ENDPOINT_URL"] = endpoint  # the Lambda handlers build their own clients
    try:
        yield endpoint
    finally:
        server.stop()
        os.environ.pop("AWS_ENDPOINT_URL", None)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "demo",
    "AWS_SECRET_ACCESS_KEY": "demo",
    "AWS_DEFAULT_REGION": REGION,
}


def _truth(samples: Path) -> dict[str, tuple[ImageSize, list[WorkerBox]]]:
    """The samples' true boxes by image file name, as worker-shaped boxes.

    Keyed by name, not source-ref: the demo may upload the images to any bucket.
    """
    out: dict[str, tuple[ImageSize, list[WorkerBox]]] = {}
    for line in read_manifest(samples / "truth.manifest"):
        size, boxes = parse_detection_label(line.data["truth"], line.data["truth-metadata"])
        assert size is not None
        out[line.data["source-ref"].rsplit("/", 1)[-1]] = (
            size,
            [
                {
                    "label": b.label,
                    "left": b.left,
                    "top": b.top,
                    "width": b.width,
                    "height": b.height,
                }
                for b in boxes
            ],
        )
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


def run_demo(config: DemoConfig, *, clients: Callable[[str], Any]) -> list[DemoStep]:
    """Run every step of the flow; ``clients(service)`` gives boto3 clients (moto or AWS)."""
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    store = S3Store(clients("s3"))
    run = _Run(config, clients, store)
    truth = _truth(config.samples)
    images_prefix = run.s3("images/")
    job_prefix = f"labeling/{config.job_name}"

    with run.step("Upload the sample images") as s:
        s3 = clients("s3")
        location = (
            {"CreateBucketConfiguration": {"LocationConstraint": config.region}}
            if config.region != "us-east-1"  # the one region that refuses a constraint
            else {}
        )
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=config.bucket, **location)
        images = sorted((config.samples / "images").glob("*.jpg"))
        for path in images:
            store.upload_file(path, images_prefix + path.name)
        s.output, s.detail = images_prefix, f"{len(images)} images"

    with run.step("Build the input manifest from the S3 prefix") as s:
        manifest_uri = run.s3(f"{job_prefix}/input/all.manifest")
        n = write_input_manifest(images_prefix, manifest_uri, store=store)
        write_input_manifest(images_prefix, out / "all.manifest", store=store)
        s.output, s.detail = manifest_uri, f"{n} lines (also {out / 'all.manifest'})"

    with run.step(f"Draw a {config.percent:g}% seeded sample") as s:
        lines = list(read_manifest(manifest_uri, store=store))
        count = percent_to_count(config.percent, len(lines))
        sample = sample_items(lines, count=count, seed=config.seed, key=lambda x: item_key(x.data))
        sample_uri = run.s3(f"{job_prefix}/input/sample.manifest")
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
    sampled = [x.data for x in sample.items]

    with run.step("Render the worker template and its offline preview") as s:
        examples = config.samples / "examples"
        ui: dict[str, Any] = {
            "labels": [LABEL],
            "header": "Draw a tight box around every ball",
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
        findings = lint_template(**ui, template_text=template, store=store)
        write_bytes(out / "template.liquid.html", template.encode())
        task_input = handle_pre_annotation(
            {"version": "2018-10-16", "labelingJobArn": "demo", "dataObject": sampled[0]},
            settings=PreAnnotationSettings(
                labels=(LABEL,), header="Draw a tight box around every ball"
            ),
        )["taskInput"]
        write_preview(
            template,
            task_input,
            out / "template.preview.html",
            store=store,
            image_root=config.samples / "images",
        )
        s.output = str(out / "template.liquid.html")
        s.detail = f"preview: {out / 'template.preview.html'}; lint: " + (
            ", ".join(f.code for f in findings) or "clean"
        )
    run.facts["template"] = template

    _labeling_steps(run, sample_uri, job_prefix)
    payload_uri = _crowd_steps(run, sampled, truth, job_prefix)
    output_manifest = _consolidate_steps(run, payload_uri, sampled, job_prefix)
    _training_steps(run, output_manifest)
    _evaluate_and_review(run, output_manifest, sampled, truth, job_prefix)
    return run.steps


def _labeling_steps(run: _Run, sample_uri: str, job_prefix: str) -> None:
    config, out = run.config, run.config.out_dir
    with run.step("Package and deploy the pre- and post-annotation Lambdas") as s:
        from gt_toolkit.sagemaker.lambda_deploy import deploy_lambdas
        from gt_toolkit.sagemaker.lambda_zip import build_lambda_zip

        # The wheels are cached in ./.cache/lambda (shared with `make lambda-zip`).
        built = build_lambda_zip(config.out_dir / "gt-toolkit-lambdas.zip")
        deployed = deploy_lambdas(
            built,
            iam_client=run.clients("iam"),
            lambda_client=run.clients("lambda"),
            output_bucket=config.bucket,
            output_prefix="labeling/output/",  # the job's S3OutputPath below
            name_prefix="gt-toolkit-demo",
            pre_environment={"GT_LABELS": LABEL},
        )
        s.output = built.path.as_posix()
        s.detail = (
            f"{built.size / 1e6:.1f} MB zip; {deployed.pre_annotation_arn}, "
            f"{deployed.post_annotation_arn}"
        )
    run.facts["lambdas"] = deployed

    with run.step("Build, validate and submit the labeling job request") as s:
        request = build_labeling_job_request(
            job_name=config.job_name,
            manifest_uri=sample_uri,
            output_uri=run.s3("labeling/output"),
            role_arn=config.role_arn,
            labels=[LABEL],
            task_title="Draw a box around every ball",
            task_description="Draw one tight box around each ball in the image",
            region=config.region,
            label_attribute="balls",
            workteam_arn=config.workteam_arn,
            workers_per_object=config.workers,
            pre_annotation_lambda_arn=deployed.pre_annotation_arn,
            consolidation_lambda_arn=deployed.post_annotation_arn,
            task_keywords=["bounding box", "balls"],
        )
        write_json(out / "labeling_job_request.json", request)
        s.output = str(out / "labeling_job_request.json")
        if config.submit and os.environ.get("AWS_ENDPOINT_URL"):
            # moto implements no labeling jobs: upload what the job reads, then stop there.
            store = run.store
            store.put_bytes(
                request["HumanTaskConfig"]["UiConfig"]["UiTemplateS3Uri"],
                run.facts["template"].encode(),
                content_type="text/html",
            )
            store.put_bytes(
                request["LabelCategoryConfigS3Uri"],
                orjson.dumps({"document-version": "2018-11-28", "labels": [{"label": LABEL}]}),
            )
            s.detail = (
                "validated against botocore's model and Ground Truth's rules; template "
                "and label file uploaded (moto has no labeling jobs, so the crowd "
                "simulator stands in for it)"
            )
        elif config.submit:
            arn = create_labeling_job(
                request,
                sagemaker=run.clients("sagemaker"),
                store=run.store,
                labels=[LABEL],
                template=run.facts["template"],
            )
            s.detail = f"submitted: {arn}"
        else:
            s.detail = "validated; not submitted (pass --submit to create it)"
    run.facts["label_attribute"] = request["LabelAttributeName"]
    run.facts["output_prefix"] = (
        f"{request['OutputConfig']['S3OutputPath'].rstrip('/')}/{config.job_name}"
    )


def _crowd_steps(
    run: _Run,
    sampled: Sequence[Mapping[str, Any]],
    truth: Mapping[str, tuple[ImageSize, list[WorkerBox]]],
    job_prefix: str,
) -> str:
    config = run.config
    prefix = run.facts["output_prefix"]
    with run.step(f"Answer the tasks with the crowd simulator ({config.workers} workers)") as s:
        rng = random.Random(f"demo:{config.seed}")
        skills = make_skills(config.workers, seed=config.seed)
        start = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)
        payload = []
        for object_id, data in enumerate(sampled):
            size, boxes = truth[data["source-ref"].rsplit("/", 1)[-1]]
            answers = [simulate_worker(rng, boxes, skill, size, [LABEL]) for skill in skills]
            image = CrowdImage(
                size,
                boxes,
                answers,
                [k.worker_id for k in skills],
                [round(6.0 * (len(a) + 1), 1) for a in answers],
            )
            document = worker_response_document(image, start=start)
            key = (
                f"{prefix}/annotations/worker-response/iteration-1/{object_id}/"
                f"{start:%Y-%m-%d_%H:%M:%S}.json"
            )
            run.store.put_bytes(key, orjson.dumps(document))
            payload.append(
                {
                    "datasetObjectId": str(object_id),
                    "dataObject": {"s3Uri": data["source-ref"]},
                    "annotations": [
                        {
                            "workerId": a["workerId"],
                            "annotationData": {
                                "content": orjson.dumps(a["answerContent"]).decode()
                            },
                        }
                        for a in document["answers"]
                    ],
                }
            )
        payload_uri = (
            f"{prefix}/annotations/consolidated-annotation/consolidation-request/"
            "iteration-1/2026-11-24_09:00:00.json"
        )
        run.store.put_bytes(payload_uri, orjson.dumps(payload))
        s.output = f"{prefix}/annotations/worker-response/"
        s.detail = f"{len(payload)} objects x {config.workers} answers; payload {payload_uri}"
    return payload_uri


def _consolidate_steps(
    run: _Run, payload_uri: str, sampled: Sequence[Mapping[str, Any]], job_prefix: str
) -> str:
    config, out = run.config, run.config.out_dir
    prefix = run.facts["output_prefix"]
    with run.step("Run the post-annotation Lambda on the consolidation payload") as s:
        job_arn = f"arn:aws:sagemaker:{config.region}:{ACCOUNT}:labeling-job/{config.job_name}"
        event = {
            "version": "2018-10-16",
            "labelingJobArn": job_arn,
            "labelCategories": [LABEL],
            "labelAttributeName": run.facts["label_attribute"],
            "roleArn": config.role_arn,
            "payload": {"s3Uri": payload_uri},
            "outputConfig": f"{prefix}/annotations/consolidated-annotation/consolidation-response",
        }
        response = _post_annotation_handler()(event)
        response_uri = (
            f"{prefix}/annotations/consolidated-annotation/consolidation-response/"
            "iteration-1/2026-11-24_09:00:00.json"
        )
        run.store.put_bytes(response_uri, orjson.dumps(response))
        write_json(out / "consolidation_response.json", response)
        boxes = sum(
            len(r["consolidatedAnnotation"]["content"][run.facts["label_attribute"]]["annotations"])
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
    return str(out / "output.manifest")


def _training_steps(run: _Run, output_manifest: str) -> None:
    config, out = run.config, run.config.out_dir
    with run.step("gt-convert augmented: train and validation channels") as s:
        channels = run.s3("training/channels")
        result = convert_output(
            "augmented",
            run.facts["output_prefix"] + "/manifests/output/output.manifest",
            channels,
            ConvertOptions(validation_fraction=0.25, seed=config.seed, store=run.store),
        )
        facts = load_channel_facts(channels + "/channels.json", store=run.store)
        write_json(
            out / "channels.json", orjson.loads(run.store.get_bytes(channels + "/channels.json"))
        )
        s.output = channels + "/"
        s.detail = (
            f"train {facts.samples.get('train', 0)}, validation "
            f"{facts.samples.get('validation', 0)}, label_width {facts.label_width}, "
            f"{result.stats.rejected_total} rejected"
        )

    with run.step("Build and submit the training and tuning requests") as s:
        training = build_object_detection_training_request(
            job_name=f"{config.job_name}-od",
            role_arn=config.role_arn,
            region=config.region,
            train_manifest_uri=facts.manifest_uri("train") or channels + "/train.manifest",
            validation_manifest_uri=(
                facts.manifest_uri("validation") or channels + "/validation.manifest"
            ),
            label_attribute=facts.label_attribute or run.facts["label_attribute"],
            output_uri=run.s3("training/output"),
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
        write_json(out / "training_request.json", training)
        write_json(out / "tuning_request.json", tuning)
        detail = "validated"
        if config.submit:
            sm = run.clients("sagemaker")
            sm.create_training_job(**training)
            sm.create_hyper_parameter_tuning_job(**tuning)
            state = sm.describe_training_job(TrainingJobName=training["TrainingJobName"])
            hpo = sm.describe_hyper_parameter_tuning_job(
                HyperParameterTuningJobName=tuning["HyperParameterTuningJobName"]
            )
            best = best_training_job(sm, tuning["HyperParameterTuningJobName"])
            detail = (
                f"training {state['TrainingJobStatus']}, tuning "
                f"{hpo['HyperParameterTuningJobStatus']}, best job {best.name}"
            )
        s.output = str(out / "training_request.json")
        s.detail = detail


def _evaluate_and_review(
    run: _Run,
    output_manifest: str,
    sampled: Sequence[Mapping[str, Any]],
    truth: Mapping[str, tuple[ImageSize, list[WorkerBox]]],
    job_prefix: str,
) -> None:
    out = run.config.out_dir
    with run.step("Evaluate the consolidated labels against the samples' truth") as s:
        # The truth file names the shipped bucket; point it at where the demo uploaded.
        refs = {d["source-ref"].rsplit("/", 1)[-1]: d["source-ref"] for d in sampled}
        truth_lines = [
            {**x.data, "source-ref": refs[name]}
            for x in read_manifest(run.config.samples / "truth.manifest")
            if (name := x.data["source-ref"].rsplit("/", 1)[-1]) in refs
        ]
        write_manifest(truth_lines, out / "truth.sample.manifest")
        result = evaluate_detections(
            read_detection_set(output_manifest).boxes,
            read_detection_set(out / "truth.sample.manifest").boxes,
        )
        write_json(out / "evaluation.json", result.to_json())
        (out / "evaluation.txt").write_text(format_evaluation(result, worst=5) + "\n")
        run.facts["evaluation"] = result
        s.output = str(out / "evaluation.json")
        s.detail = (
            f"AP@0.5 {result.map50:.3f}, AP@[.5:.95] {result.map:.3f}, "
            f"precision {result.precision:.3f}, recall {result.recall:.3f}"
        )

    with run.step("Write the review report") as s:
        summary = write_review(
            output_manifest,
            out / "review",
            worker_responses=run.facts["output_prefix"],
            images_dir=run.config.samples / "images",
            images_prefix=run.s3("images/"),
            store=run.store,
        )
        s.output = str(out / "review" / "report.html")
        s.detail = f"contact sheet {out / 'review' / 'contact_sheet.png'}; {summary.images} images"


def _summary(steps: Sequence[DemoStep], out: Path) -> str:
    total = sum(s.seconds for s in steps)
    width = max(len(s.title) for s in steps) + 2
    lines = ["", "=" * 78, f"gt-toolkit demo: {len(steps)} steps in {total:.1f} s", "=" * 78]
    for i, step in enumerate(steps, 1):
        lines.append(f"{i:2d}. {step.title:<{width}} {step.seconds:5.1f} s")
    results = {s.title: s.detail for s in steps}
    lines += [
        "",
        "Consolidated: " + next(v for k, v in results.items() if k.startswith("Run the post")),
        "Against truth: " + next(v for k, v in results.items() if k.startswith("Evaluate")),
        "",
        f"Outputs in {out}/: all.manifest, sample.manifest, template.liquid.html,",
        "  template.preview.html, labeling_job_request.json, consolidation_response.json,",
        "  output.manifest, channels.json, training_request.json, tuning_request.json,",
        "  evaluation.json/.txt, review/report.html, review/contact_sheet.png",
    ]
    return "\n".join(lines)


def _local_config(args: argparse.Namespace) -> DemoConfig:
    """The moto run: fake account, ARNs in the chosen region."""
    region = args.region or REGION
    return DemoConfig(
        out_dir=Path(args.out),
        samples=Path(args.samples),
        bucket=args.bucket or "gt-toolkit-demo",
        region=region,
        role_arn=f"arn:aws:iam::{ACCOUNT}:role/GroundTruthDemoRole",
        workteam_arn=f"arn:aws:sagemaker:{region}:{ACCOUNT}:workteam/private-crowd/demo",
    )


def _aws_config(args: argparse.Namespace, region: str) -> DemoConfig:
    """The real-AWS run: everything that names an account must come from the user."""
    missing = [
        flag
        for flag, value in (
            ("--bucket", args.bucket),
            ("--role-arn", args.role_arn),
            ("--workteam-arn", args.workteam_arn),
        )
        if not value
    ]
    if missing:
        raise ValidationError(
            [f"{flag} is required with --profile" for flag in missing], what="demo options"
        )
    return DemoConfig(
        out_dir=Path(args.out),
        samples=Path(args.samples),
        bucket=args.bucket,
        region=region,
        role_arn=args.role_arn,
        workteam_arn=args.workteam_arn,
        submit=args.submit,
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``gt-convert demo`` (what ``make demo`` runs)."""
    p = subparsers.add_parser(
        "demo",
        help="run the whole flow on the shipped samples against a local AWS (moto)",
        description=__doc__,
    )
    p.add_argument("--out", default="demo-output", help="local output folder")
    p.add_argument("--samples", default=str(REPO / "samples"))
    p.add_argument("--profile", help="run against real AWS with this profile")
    p.add_argument("--bucket", help="bucket to upload to (required with --profile)")
    p.add_argument("--role-arn", help="the labeling/training role (required with --profile)")
    p.add_argument("--workteam-arn", help="a private workteam (required with --profile)")
    p.add_argument("--region", help="default: the profile's region, else us-east-1")
    p.add_argument(
        "--submit", action="store_true", help="with --profile: submit the jobs (costs money)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo locally (moto) or on AWS (``--profile``) and print where its outputs are."""
    if args.submit and not args.profile:
        raise ValidationError(
            ["--submit only applies to a real AWS run (--profile)"], what="demo options"
        )
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        if args.profile:
            _aws_config(args, args.region or REGION)  # refuse missing options before any call
            session = boto3.session.Session(profile_name=args.profile, region_name=args.region)
            config = _aws_config(args, session.region_name or REGION)
            # boto3's stubs type client() per service literal; the demo picks services at run time
            session_client: Callable[..., Any] = session.client
            steps = run_demo(config, clients=lambda svc: session_client(svc))
        else:
            config = _local_config(args)
            with local_aws() as endpoint:
                make_client: Callable[..., Any] = boto3.client
                print(f"local AWS: moto server on {endpoint} (nothing leaves this machine)")
                steps = run_demo(
                    config,
                    clients=lambda svc: make_client(
                        svc, endpoint_url=endpoint, region_name=config.region
                    ),
                )
    except (ClientError, BotoCoreError) as exc:
        raise StorageError(" ".join(str(exc).split())) from exc
    print(_summary(steps, config.out_dir))
    return 0

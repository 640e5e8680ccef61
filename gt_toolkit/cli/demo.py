"""``make demo``: the whole flow on the shipped samples, against a local AWS, in one command.

What it runs is told once, in :data:`DESCRIPTION` (``gt-convert demo --help`` prints it). The
steps live in :mod:`gt_toolkit.cli.demo_flow`, imported only when the demo runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gt_toolkit.errors import GtToolkitError, StorageError, ValidationError

if TYPE_CHECKING:
    from gt_toolkit.cli.demo_flow import DemoConfig, DemoStep

__all__ = [
    "DESCRIPTION",
    "aws_config",
    "how_to_run",
    "local_aws",
    "local_config",
    "register",
    "run",
    "summary",
]

DESCRIPTION = (
    "The whole flow on the shipped samples, in one command. Without --profile it starts "
    "moto's server on 127.0.0.1 (nothing leaves the machine) and runs every step a team runs "
    "for real: upload the images, list them into an input manifest, draw a seeded sample, "
    "render the worker template and its offline preview, package and deploy the Lambdas and "
    "build the labeling-job request, answer the tasks with the crowd simulator, run the "
    "post-annotation Lambda on Ground Truth's consolidation payload, assemble output.manifest, "
    "convert it to training channels, submit training and tuning, evaluate the consolidated "
    "labels against the samples' truth, write the review report, and consolidate a Label "
    "Studio export and measure its agreement. Each step prints where its output is. With "
    "--profile the same code runs against real AWS; it then stops short of anything that "
    "costs money (labeling, training and tuning jobs are built and validated, not submitted) "
    "unless --submit is given."
)
# What the steps read from --samples (a checkout's samples/ folder).
SAMPLE_FILES = ("images", "truth.manifest", "examples", "crowd/label-studio.json")

REPO = Path(__file__).resolve().parents[2]
_FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "demo",
    "AWS_SECRET_ACCESS_KEY": "demo",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextlib.contextmanager
def local_aws() -> Iterator[str]:
    """Start moto's server on 127.0.0.1 on a free port, with fake credentials for this process."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # pragma: no cover - the demo extra is missing
        raise GtToolkitError("the local demo needs moto: pip install 'gt-toolkit[demo]'") from exc
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    saved = {k: os.environ.get(k) for k in (*_FAKE_ENV, "AWS_ENDPOINT_URL")}
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
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def how_to_run() -> str:
    """How to call ``gt-convert`` from this shell: it is in the virtualenv, maybe not on PATH."""
    bin_dir = Path(sys.executable).parent
    found = shutil.which("gt-convert")
    if found and Path(found).parent.resolve() == bin_dir.resolve():
        return "Next: gt-convert --help (every step above is a subcommand or an API call)"
    with contextlib.suppress(ValueError):
        bin_dir = bin_dir.relative_to(Path.cwd())
    return (
        f"Next: gt-convert is in {bin_dir}, not on your PATH: run `. {bin_dir}/activate` "
        f"first, or call `{bin_dir}/gt-convert --help`"
    )


def summary(steps: Sequence[DemoStep], out: Path) -> str:
    """The one-screen summary printed after the steps."""
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
        "  output.manifest, train.manifest, validation.manifest, channels.json,",
        "  training_request.json, tuning_request.json, evaluation.json/.txt,",
        "  review/report.html, review/contact_sheet.png, label-studio.manifest,",
        "  agreement/agreement.html",
        "",
        how_to_run(),
    ]
    return "\n".join(lines)


def local_config(args: argparse.Namespace) -> DemoConfig:
    """The moto run: fake account, ARNs in the chosen region."""
    from gt_toolkit.cli.demo_flow import ACCOUNT, REGION, DemoConfig

    region = args.region or REGION
    return DemoConfig(
        out_dir=Path(args.out),
        samples=Path(args.samples),
        bucket=args.bucket or "gt-toolkit-demo",
        region=region,
        role_arn=f"arn:aws:iam::{ACCOUNT}:role/GroundTruthDemoRole",
        workteam_arn=f"arn:aws:sagemaker:{region}:{ACCOUNT}:workteam/private-crowd/demo",
    )


def aws_config(args: argparse.Namespace, region: str) -> DemoConfig:
    """The real-AWS run: everything that names an account must come from the user.

    Raises:
        ValidationError: ``--bucket``, ``--role-arn`` or ``--workteam-arn`` is missing.
    """
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
    from gt_toolkit.cli.demo_flow import DemoConfig

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
        description=DESCRIPTION,
    )
    p.add_argument("--out", default="demo-output", help="local output folder (demo-output)")
    p.add_argument(
        "--samples",
        default=str(REPO / "samples"),
        help="the samples folder of a checkout (default: this checkout's samples/)",
    )
    p.add_argument("--profile", help="run against real AWS with this profile")
    p.add_argument("--bucket", help="bucket to upload to (required with --profile)")
    p.add_argument("--role-arn", help="the labeling/training role (required with --profile)")
    p.add_argument("--workteam-arn", help="a private workteam (required with --profile)")
    p.add_argument("--region", help="default: the profile's region, else us-east-1")
    p.add_argument(
        "--submit", action="store_true", help="with --profile: submit the jobs (costs money)"
    )
    p.set_defaults(func=run)


def _check_folders(samples: Path, out: Path) -> None:
    """Refuse a samples folder without the samples, or an --out that is a file, before step 1.

    Installed from a wheel there is no samples/ beside the package: the demo needs a checkout.
    """
    missing = [name for name in SAMPLE_FILES if not (samples / name).exists()]
    if missing:
        raise StorageError(
            f"{samples}: not the samples folder (no {', '.join(missing)}); the demo runs from "
            "a checkout of gt-toolkit, or give its samples/ with --samples"
        )
    if out.exists() and not out.is_dir():
        raise StorageError(f"--out {out}: a file is in the way of the output folder")


def run(args: argparse.Namespace) -> int:
    """Run the demo locally (moto) or on AWS (``--profile``) and print where its outputs are."""
    if args.submit and not args.profile:
        raise ValidationError(
            ["--submit only applies to a real AWS run (--profile)"], what="demo options"
        )
    if args.profile:
        aws_config(args, args.region or "us-east-1")  # refuse missing options before any call
    _check_folders(Path(args.samples), Path(args.out))
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from gt_toolkit.cli.demo_flow import REGION, run_demo

    try:
        if args.profile:
            session = boto3.session.Session(profile_name=args.profile, region_name=args.region)
            config = aws_config(args, session.region_name or REGION)
            # boto3's stubs type client() per service literal; the demo picks services at run time
            session_client: Callable[..., Any] = session.client
            steps = run_demo(config, clients=lambda svc: session_client(svc))
        else:
            config = local_config(args)
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
    print(summary(steps, config.out_dir))
    return 0

"""Every python and bash block of README.md runs as written, against a local moto server.

Blocks run section by section (``## `` headings) in README order, in one working folder that
holds the repository's samples: the python blocks of a section share one namespace, and the
bash blocks run with the virtualenv's ``gt-convert`` on PATH and ``AWS_ENDPOINT_URL`` pointing
at moto. The README's own "Trying the examples" section (which creates and fills the buckets
the examples use) runs first. A block preceded by ``<!-- not-run: reason -->`` is skipped;
a failure names the README line, the section and the block. Every ``--flag`` the README names
is checked against ``gt-convert``'s parser (on the command it is written with), and every
option of every subcommand must be named somewhere in the README; the one-line refusals the
README quotes are run and must print what it quotes; and the limits it states (line lengths,
sizes, counts, defaults) are built from the code's constants and must be in its text.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gt_toolkit.cli import build_parser
from tests.helpers import REGION, REPO

pytestmark = pytest.mark.xdist_group("readme")  # one worker: sections share the moto state

README = REPO / "README.md"
SETUP_SECTION = "Trying the examples"
RUN = ("python", "bash")
NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(?P<reason>.+?)\s*-->$")
# What the working folder borrows from the checkout (the examples use relative paths).
LINKED = ("samples", "Makefile", "pyproject.toml", "gt_toolkit", "lambdas", "templates", ".venv")


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced code block of the README."""

    line: int  # of the opening fence, 1-based
    section: str
    language: str
    code: str
    not_run: str | None

    def where(self) -> str:
        return f"README.md:{self.line} ({self.section!r}, {self.language} block)"


def readme_blocks(text: str) -> list[Block]:
    """The fenced blocks of ``text`` (indented ones too) with their section and marker."""
    blocks: list[Block] = []
    section, previous = "", ""
    fence: tuple[int, str, str, int] | None = None  # line, language, line before, indent
    body: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip()
        if fence is not None:
            if stripped.rstrip() == "```":
                marker = NOT_RUN.match(fence[2])
                code = "\n".join(body) + "\n"
                reason = marker["reason"] if marker else None
                blocks.append(Block(fence[0], section, fence[1], code, reason))
                fence, body = None, []
            else:
                body.append(line[fence[3] :] if line[: fence[3]].isspace() else line)
            continue
        if line.startswith("## "):
            section = line[3:].strip()
        elif stripped.startswith("```"):
            fence = (number, stripped[3:].strip(), previous, len(line) - len(stripped))
        if stripped:
            previous = stripped.rstrip()
    assert fence is None, f"README.md:{fence[0]}: the code block is never closed"
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))
SECTIONS = list(dict.fromkeys(b.section for b in BLOCKS if b.language in RUN and not b.not_run))


def test_the_readme_is_parsed_and_markers_say_why() -> None:
    assert SETUP_SECTION in SECTIONS
    assert len([b for b in BLOCKS if b.language in RUN]) >= 15
    for block in BLOCKS:
        if block.not_run is not None:
            assert block.language in RUN, f"{block.where()}: not-run on a block nothing runs"
            assert len(block.not_run) > 10, f"{block.where()}: say why it cannot run"


# Flags the README names that are no gt-convert option: the program each belongs to, and the
# repository file that defines it (None: another tool's, e.g. ruff's or mypy's).
OTHER_FLAGS: dict[str, tuple[str, str | None]] = {
    "--arch": ("python -m gt_toolkit.sagemaker.lambda_zip", "gt_toolkit/sagemaker/lambda_zip.py"),
    "--data": ("python bench/pedestrians.py", "bench/pedestrians.py"),
    "--tasks": ("python bench/crowd_ingest.py", "bench/crowd_ingest.py"),
    "--check": ("ruff format", None),
    "--strict": ("mypy", None),
}
FLAG = re.compile(r"(?<![\w-])--[a-z0-9][a-z0-9-]*")


def _cli_flags() -> tuple[set[str], dict[str, set[str]]]:
    """``gt-convert``'s own flags, and each subcommand's, as its parser defines them."""
    parser = build_parser()
    top = {s for a in parser._actions for s in a.option_strings}
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    per_command = {
        name: {s for a in sub._actions for s in a.option_strings if s.startswith("--")}
        for name, sub in commands.choices.items()
    }
    return top, per_command


def _command_lines(text: str, commands: set[str]) -> list[list[str]]:
    """Every ``gt-convert CMD ...`` of the README: in code blocks, and in inline spans that
    start with a subcommand (`` `coco -o c.json --summary c.json` ``)."""
    found: list[list[str]] = []
    for block in readme_blocks(text):
        if block.language != "bash":
            continue
        joined = block.code.replace("\\\n", " ")
        for line in joined.splitlines():
            for part in re.split(r"\||&&|;", line.split("  #")[0]):
                words = part.split()
                if "gt-convert" in words:
                    found.append(words[words.index("gt-convert") + 1 :])
    prose = re.sub(r"^\s*```.*?^\s*```", "", text, flags=re.DOTALL | re.MULTILINE)
    for span in re.findall(r"`([^`]+)`", prose):
        words = span.split()
        if words and words[0] == "gt-convert":
            words = words[1:]
        if words and words[0] in commands:
            found.append(words)
    return found


def test_every_flag_the_readme_names_is_the_codes_and_every_flag_is_named() -> None:
    """The README names no flag the parser lacks, nor one on a command that lacks it, and
    every option of every subcommand is named somewhere (the help is not the only manual)."""
    text = README.read_text(encoding="utf-8")
    top, per_command = _cli_flags()
    known = top.union(*per_command.values())
    problems = []
    for flag in sorted(set(FLAG.findall(text)) - known):
        program, path = OTHER_FLAGS.get(flag, ("", None))
        if not program:
            problems.append(f"{flag}: no gt-convert command has it")
        elif path is not None and f'"{flag}"' not in (REPO / path).read_text(encoding="utf-8"):
            problems.append(f"{flag}: {program} ({path}) has no such option")
    for words in _command_lines(text, set(per_command)):
        command = words[0]
        for flag in FLAG.findall(" ".join(words[1:])):
            if flag.split("=")[0] not in per_command[command]:
                problems.append(f"gt-convert {command} has no {flag}: {' '.join(words)}")
    named = set(FLAG.findall(text))
    for command, flags in per_command.items():
        problems.extend(
            f"gt-convert {command} {flag} is never named" for flag in sorted(flags - named)
        )
    assert not problems, "\n".join(problems)


# The one-line refusals the README quotes, each with a run that must print it (in a folder
# holding the samples and the files the README's examples name): the README and the CLI say
# the same. A quote is matched with the README's line breaks read as spaces.
QUOTED: list[tuple[str, str, list[str]]] = [
    (
        "rejects-in-cvat-folder",
        "consolidate cvat --from cvat --image-prefix s3://gt-toolkit-demo/images/"
        " -o out.manifest --rejects cvat/x.xml",
        [
            "is inside the CVAT folder cvat, whose .xml and .zip files the run reads: "
            "give --rejects another path"
        ],
    ),
    (
        "output-is-source",
        "consolidate ls.json --from label-studio -o ls.json",
        ["the output ls.json is also the source: give -o another path"],
    ),
    (
        "output-links-to-input-manifest",
        "consolidate job -o hl.manifest",
        ["the output hl.manifest is also the input manifest job/manifests/output/output.manifest"],
    ),
    (
        "summary-is-output",
        "coco samples/truth.manifest -o c.json --summary c.json",
        ["the summary c.json is also the output: give --summary another path"],
    ),
    (
        "s3-trailing-slash",
        "coco samples/truth.manifest -o s3://b/ds/ --summary s3://b/ds"
        " --endpoint-url http://127.0.0.1:9",
        [
            "the summary s3://b/ds differs from the output s3://b/ds/ only by a trailing '/' "
            "(an object and a folder of one name)"
        ],
    ),
    (
        "summary-through-a-file",
        "coco samples/truth.manifest -o x.json --summary s/x.json",
        ["cannot write s/x.json: s is not a folder"],
    ),
    (
        "default-meets-an-option",
        "template -o t.html --labels ball --short-instructions a --full-instructions b"
        " --write-label-config t.preview.html --preview samples/truth.manifest --offline",
        ["give --preview-out another path"],
    ),
    (
        "images-dir-is-the-copies-folder",
        "coco samples/truth.manifest -o data/x.json --copy-images --images-dir data/images",
        [
            "the images folder data/images, where the run writes a file per image, is also the "
            "--images-dir folder: give -o another path"
        ],
    ),
    (
        "agreement-pages-under-a-file",
        "agreement ls.json --from label-studio -o ls.json",
        ["the output folder ls.json is also the source"],
    ),
    (
        "link-to-a-missing-folder",
        "coco samples/truth.manifest -o y.json --summary s.json",
        [
            "cannot write s.json: it is a link to gone/s.json, whose folder ",
            " does not exist (the link is followed, not replaced)",
        ],
    ),
]


@pytest.mark.parametrize(("command", "quotes"), [q[1:] for q in QUOTED], ids=[q[0] for q in QUOTED])
def test_the_refusals_the_readme_quotes_are_the_clis(
    command: str,
    quotes: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from gt_toolkit.cli import main

    readme = " ".join(README.read_text(encoding="utf-8").split())
    for quote in quotes:
        assert quote in readme, f"README.md no longer quotes {quote!r}: update QUOTED"
    samples = REPO / "samples"
    (tmp_path / "samples").symlink_to(samples)
    shutil.copytree(samples / "crowd" / "cvat", tmp_path / "cvat")
    shutil.copy(samples / "crowd" / "label-studio.json", tmp_path / "ls.json")
    shutil.copytree(samples / "job-output" / "samples-balls", tmp_path / "job")
    (tmp_path / "hl.manifest").symlink_to("job/manifests/output/output.manifest")
    (tmp_path / "s").write_text("a file, not a folder")
    (tmp_path / "s.json").symlink_to("gone/s.json")
    (tmp_path / "data" / "images").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert main(command.split()) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    for quote in quotes:
        assert quote in err, err


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, moto_endpoint: str) -> Iterator[Path]:
    """The folder the examples run in, with the buckets the setup section creates."""
    folder = tmp_path_factory.mktemp("readme")
    for name in LINKED:
        (folder / name).symlink_to(REPO / name)
    (REPO / ".cache").mkdir(exist_ok=True)  # the Lambda wheel cache, shared with make
    (folder / ".cache").symlink_to(REPO / ".cache")
    saved = {k: os.environ.get(k) for k in _aws_env(moto_endpoint)}
    os.environ.update(_aws_env(moto_endpoint))
    try:
        for block in _runnable(SETUP_SECTION):
            _run(block, folder, {})
        yield folder
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _aws_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }


def _runnable(section: str) -> list[Block]:
    return [b for b in BLOCKS if b.section == section and b.language in RUN and not b.not_run]


def _run(block: Block, folder: Path, namespace: dict[str, Any]) -> None:
    if block.language == "bash":
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.code],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode:
            tail = (done.stdout + done.stderr)[-3000:]
            pytest.fail(f"{block.where()} exited {done.returncode}:\n{block.code}\n{tail}")
        return
    here = Path.cwd()
    os.chdir(folder)
    try:
        exec(compile(block.code, block.where(), "exec"), namespace)
    except Exception as exc:  # any failure of an example fails the test
        trace = "".join(traceback.format_exception(exc)[-6:])
        pytest.fail(f"{block.where()} raised {type(exc).__name__}: {exc}\n{trace}")
    finally:
        os.chdir(here)


@pytest.mark.slow
@pytest.mark.parametrize("section", [s for s in SECTIONS if s != SETUP_SECTION])
def test_readme_section_runs(section: str, workdir: Path) -> None:
    namespace: dict[str, Any] = {"__name__": "readme"}
    for block in _runnable(section):
        _run(block, workdir, namespace)


def _readme_numbers() -> list[tuple[str, str]]:
    """(what, the README's phrase built from the code's value) for the limits it states."""
    import inspect

    from gt_toolkit.consolidation import reconsolidate
    from gt_toolkit.convert import images
    from gt_toolkit.evaluation import agreement, review
    from gt_toolkit.formats.manifest import MAX_LINE_CHARS
    from gt_toolkit.handlers import deadline, lambda_response, post_annotation
    from gt_toolkit.sagemaker import labeling_job, lambda_deploy, lambda_zip, regions
    from gt_toolkit.storage import s3
    from gt_toolkit.worker_ui import lint, render

    deploy = inspect.signature(lambda_deploy.deploy_lambdas).parameters
    low_mb, high_mb = lambda_deploy._MEMORY_MB
    low_s, high_s = lambda_deploy._TIMEOUT_S
    threads = post_annotation.PostAnnotationSettings.__dataclass_fields__["fetch_threads"]
    return [
        ("manifest line", f"a line over {MAX_LINE_CHARS:,} characters"),
        ("template size", f"templates over {lint.TEMPLATE_SIZE_LIMIT:,} characters"),
        ("element labels", f"more than {lint.BOUNDING_BOX_ELEMENT_LABEL_LIMIT} labels (the"),
        ("example side", f"shrunk to {render.DEFAULT_MAX_IMAGE_SIDE} px"),
        (
            "automated labeling",
            f"fewer than {labeling_job.AUTOMATED_LABELING_MIN_OBJECTS:,} data objects",
        ),
        ("tasks", f"answers, {labeling_job.DEFAULT_MAX_CONCURRENT_TASKS} by default"),
        ("quota", f"above {labeling_job._CONCURRENT_TASK_QUOTA:,} issues a"),
        ("regions", f"accounts for all {len(regions.BUILTIN_LAMBDA_ACCOUNTS)} regions"),
        ("image regions", f"known for the {len(regions.ALGORITHM_IMAGE_ACCOUNTS)} regions"),
        ("zip", f"Lambda's {lambda_zip.MAX_UNZIPPED_BYTES // 2**20} MiB unzipped limit"),
        ("memory", f"memory ({low_mb}-{high_mb:,} MB), timeout ({low_s}-{high_s} s)"),
        ("variables", f"(strings, {lambda_deploy._MAX_VARIABLES // 1024} KB)"),
        ("timeout", f"({deploy['timeout_s'].default} s as `deploy_lambdas` and"),
        ("deadline", f"{deadline.FAIL_MS:g} ms per object, a {deadline.FLOOR_MS:g} ms floor"),
        ("response", f"within {lambda_response.RESPONSE_BUDGET:,} bytes"),
        ("texts", f"Every diagnostic text is cut to {lambda_response.TEXT_LIMIT:,} characters"),
        ("fetch threads", f"kept at `s3Uri` ({threads.default})"),
        ("body tries", f"({s3._BODY_ATTEMPTS} tries in all, the first GET included)"),
        ("file names", f"a name over {images.MAX_NAME_BYTES} bytes in UTF-8"),
        ("batch", f"consolidates {reconsolidate._CHUNK} images at a time"),
        ("matrix", f"the page's matrix shows the {agreement.MATRIX_ANNOTATORS} who"),
        ("report", f"at most {review._REPORT_WIDTH:,} px wide"),
        ("pictures", f"at most {review._MAX_SIDE:,} px on their longer side"),
        ("sheet", f"shows the {review.SHEET_IMAGES} lowest-agreement images"),
        ("jpeg", f"inlined as a JPEG (quality {review._JPEG_QUALITY},"),
    ]


NUMBERS = _readme_numbers()


@pytest.mark.parametrize(("what", "phrase"), NUMBERS, ids=[what for what, _ in NUMBERS])
def test_the_limits_the_readme_states_are_the_codes(what: str, phrase: str) -> None:
    readme = " ".join(README.read_text(encoding="utf-8").split())
    assert phrase in readme, f"{what}: README.md does not say {phrase!r} (the code's value)"


def test_the_cloudformation_template_deploys_the_timeout_deploy_lambdas_does() -> None:
    """The README gives one timeout for both deployments ("300 s as `deploy_lambdas` and
    `lambdas/template.yaml` deploy it"): the phrase above checks the first, this the second."""
    import inspect

    from gt_toolkit.sagemaker.lambda_deploy import deploy_lambdas

    default = inspect.signature(deploy_lambdas).parameters["timeout_s"].default
    template = (REPO / "lambdas" / "template.yaml").read_text(encoding="utf-8")
    timeouts = re.findall(r"^\s+Timeout: (\d+)$", template, re.MULTILINE)
    assert timeouts and set(timeouts) == {str(default)}, timeouts

"""``gt-convert template``: main([...]) with files, exit codes and stderr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gt_toolkit.cli import main
from gt_toolkit.storage.s3 import S3Store
from tests.helpers import SAMPLES, refused_run

GOOD = str(SAMPLES / "examples" / "good_tight.jpg")
BAD = str(SAMPLES / "examples" / "bad_loose.jpg")
BASE = [
    "--header",
    "Box every ball",
    "--short-instructions",
    "Tight.",
    "--full-instructions",
    "All.",
]


def test_template_with_label_config_and_preview(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "t.liquid.html"
    code = main(
        [
            "template",
            "-o",
            str(out),
            "--labels",
            "ball",
            "cup",
            *BASE,
            "--good",
            GOOD,
            "tight",
            "--bad",
            BAD,
            "loose",
            "--write-label-config",
            str(tmp_path / "labels.json"),
            "--preview",
            str(SAMPLES / "truth.manifest"),
            "--preview-line",
            "2",
            "--images-dir",
            str(SAMPLES / "images"),
            "--offline",
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    text = out.read_text()
    assert 'src="{{ task.input.taskObject | grant_read_access }}"' in text
    assert "[&#34;ball&#34;, &#34;cup&#34;]" in text
    assert json.loads((tmp_path / "labels.json").read_text())["labels"] == [
        {"label": "ball"},
        {"label": "cup"},
    ]
    preview = (tmp_path / "t.liquid.preview.html").read_text()
    assert "img_001.jpg" not in preview  # the image is embedded, not linked
    assert "data:image/jpeg;base64," in preview
    assert f"wrote {out}" in err


def test_label_file_either_version_or_lines(tmp_path: Path) -> None:
    config = tmp_path / "labels.json"
    config.write_text(json.dumps({"document-version": "2021-05-13", "labels": [{"label": "a"}]}))
    lines = tmp_path / "labels.txt"
    lines.write_text("b\n\nc\n")
    out = tmp_path / "t.html"
    code = main(
        [
            "template",
            "-o",
            str(out),
            "--label-file",
            str(config),
            *BASE,
            "--static-labels",
            "--good",
            GOOD,
            "g",
            "--bad",
            BAD,
            "b",
            "--task",
            "image-classifier",
            "--labels",
            "z",
        ]
    )
    assert code == 0
    assert 'categories="[&#34;z&#34;, &#34;a&#34;]"' in out.read_text()
    code = main(
        [
            "template",
            "-o",
            str(out),
            "--label-file",
            str(lines),
            *BASE,
            "--static-labels",
            "--good",
            GOOD,
            "g",
            "--bad",
            BAD,
            "b",
        ]
    )
    assert code == 0
    assert 'labels="[&#34;b&#34;, &#34;c&#34;]"' in out.read_text()


def test_lint_errors_stop_the_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t.html"
    code = main(
        ["template", "-o", str(out), "--labels", "a", "a", *BASE, "--good", "missing.jpg", "x"]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert not out.exists()
    assert "label 'a' appears 2 times" in err
    assert "missing.jpg does not exist" in err
    assert "no bad example" in err
    assert "not written" in err


def test_allow_lint_errors_still_reports_render_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "template",
            "-o",
            str(tmp_path / "t.html"),
            "--labels",
            "a",
            *BASE,
            "--good",
            "missing.jpg",
            "x",
            "--allow-lint-errors",
        ]
    )
    assert code == 1
    assert "TemplateError: example image not found: missing.jpg" in capsys.readouterr().err


def test_s3_examples_checked_and_template_uploaded(
    moto_endpoint: str, store: S3Store, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store.put_bytes(f"s3://{bucket}/ex/good.jpg", Path(GOOD).read_bytes())
    aws = ["--endpoint-url", moto_endpoint, "--region", "us-east-1"]
    uri = f"s3://{bucket}/ui/template.liquid.html"
    code = main(
        [
            "template",
            "-o",
            uri,
            "--labels",
            "ball",
            *BASE,
            *aws,
            "--good",
            f"s3://{bucket}/ex/good.jpg",
            "tight",
            "--bad",
            f"s3://{bucket}/ex/nope.jpg",
            "loose",
        ]
    )
    assert code == 1
    assert "does not exist in S3" in capsys.readouterr().err
    store.put_bytes(f"s3://{bucket}/ex/nope.jpg", Path(BAD).read_bytes())
    code = main(
        [
            "template",
            "-o",
            uri,
            "--labels",
            "ball",
            *BASE,
            *aws,
            "--good",
            f"s3://{bucket}/ex/good.jpg",
            "tight",
            "--bad",
            f"s3://{bucket}/ex/nope.jpg",
            "loose",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert f'{{{{ "s3://{bucket}/ex/nope.jpg" | grant_read_access }}}}' in (
        store.get_bytes(uri).decode()
    )


def _full_run(tmp_path: Path, preview: str) -> list[str]:
    return [
        "template",
        "-o",
        str(tmp_path / "t.html"),
        "--labels",
        "ball",
        *BASE,
        "--good",
        GOOD,
        "tight",
        "--bad",
        BAD,
        "loose",
        "--write-label-config",
        str(tmp_path / "labels.json"),
        "--preview",
        preview,
        "--offline",
    ]


def test_a_failed_preview_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(_full_run(tmp_path, str(tmp_path / "missing.manifest")))
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "missing.manifest" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_preview_of_a_long_text_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A text task's source is the text itself: far longer than any file name can be.
    manifest = tmp_path / "text.manifest"
    manifest.write_text(json.dumps({"source": "a long review " * 400}) + "\n")
    code = main(_full_run(tmp_path, str(manifest)))
    err = capsys.readouterr().err
    assert code == 0, err
    assert (tmp_path / "t.preview.html").is_file()
    warning = next(line for line in err.splitlines() if "placeholder" in line)
    assert len(warning) < 200


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--preview-line", "3"], "without --preview nothing reads --preview-line"),
        (["--images-dir", "samples/images", "--offline"], "nothing reads --images-dir, --offline"),
        (
            ["--preview-out", "p.html", "--label-attribute", "truth"],
            "nothing reads --preview-out, --label-attribute",
        ),
    ],
)
def test_preview_options_without_preview_are_refused(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "t.html"
    assert main(["template", "-o", str(out), "--labels", "a", *BASE, *extra]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not out.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["--preview", "samples/truth.manifest", "--preview-line", "0"],
        ["--short-instructions-file", "x.txt"],  # BASE gives --short-instructions
        ["--full-instructions-file", "x.txt"],
    ],
)
def test_contradictory_or_impossible_flags_are_usage_errors(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["template", "-o", str(tmp_path / "t.html"), "--labels", "a", *BASE, *argv])
    err = capsys.readouterr().err
    assert info.value.code == 1 and err.count("\n") == 1 and "error: argument" in err


_BOM = "\ufeff"


@pytest.mark.parametrize(
    ("content", "labels"),
    [
        pytest.param(f"{_BOM}car\r\ntruck\r\n", ["car", "truck"], id="lines-bom-crlf"),
        pytest.param(
            _BOM + json.dumps({"document-version": "2018-11-28", "labels": [{"label": "car"}]}),
            ["car"],
            id="config-bom",
        ),
        # a first label in brackets is a label, not the start of a JSON list
        pytest.param("[unsure]\ncar\n", ["[unsure]", "car"], id="bracketed-label"),
    ],
)
def test_label_file_byte_order_mark_is_not_part_of_a_label(
    tmp_path: Path, content: str, labels: list[str]
) -> None:
    label_file = tmp_path / "labels"
    label_file.write_text(content, encoding="utf-8")
    out = tmp_path / "t.html"
    code = main(
        ["template", "-o", str(out), "--label-file", str(label_file), *BASE, "--static-labels"]
    )
    assert code == 0
    baked = json.dumps(labels).replace('"', "&#34;")
    assert f'labels="{baked}"' in out.read_text()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        pytest.param(b"car\ncaf\xe9\n", "labels:2: not UTF-8 text", id="latin-1"),
        pytest.param(b'{"labels": [{"label": "a"},]}', "label category config", id="bad-json"),
        pytest.param(b'["a", "b"]', "expected a JSON object, got list", id="json-list"),
        pytest.param(b'{\n  "labels": [{"label": "a"}', "not JSON", id="cut-short"),
    ],
)
def test_bad_label_file_is_an_error_not_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, fragment: str
) -> None:
    label_file = tmp_path / "labels"
    label_file.write_bytes(content)
    out = tmp_path / "t.html"
    code = main(["template", "-o", str(out), "--label-file", str(label_file), *BASE])
    err = capsys.readouterr().err
    assert code == 1
    assert fragment in err and "Traceback" not in err
    assert not out.exists()


def test_a_file_that_cannot_be_written_stops_them_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    args = _full_run(tmp_path, str(SAMPLES / "truth.manifest"))
    code = main([*args, "--preview-out", str(blocker / "preview.html")])
    assert code == 1
    assert "cannot write" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


def test_a_file_that_fails_to_appear_takes_back_those_that_did(
    tmp_path: Path, moto_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # the label config lands locally, then the template's upload meets no bucket
    config = tmp_path / "labels.json"
    args = ["template", "-o", "s3://no-such-bucket-gt/t.html", "--labels", "ball", *BASE]
    code = main([*args, "--write-label-config", str(config), "--endpoint-url", moto_endpoint])
    assert code == 1
    assert "no-such-bucket-gt" in capsys.readouterr().err
    assert not config.exists()


def test_an_argument_that_is_not_utf8_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Python turns the byte 0xff of a Latin-1 terminal's argument into "\udcff" (PEP 383).
    out = tmp_path / "t.html"
    code = main(["template", "-o", str(out), "--labels", "ball", *BASE, "--header", "h\udcff"])
    err = capsys.readouterr().err
    assert code == 1
    assert "'\\udcff', not valid Unicode" in err and "Traceback" not in err
    assert not out.exists()


def test_outputs_that_name_one_file_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _full_run(tmp_path, str(SAMPLES / "truth.manifest"))
    said = f"the preview page {tmp_path / 't.html'} is also the template: give --preview-out"
    refused_run([*args, "--preview-out", str(tmp_path / "t.html")], said, capsys)
    assert list(tmp_path.iterdir()) == []


def test_an_empty_element_name_is_refused_not_defaulted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "t.html"
    code = main(["template", "-o", str(out), "--labels", "ball", *BASE, "--element-name", ""])
    assert code == 1
    assert "element name '' must be" in capsys.readouterr().err
    assert not out.exists()


def test_labels_that_look_alike_stop_the_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A label file saved by one editor as 'café' (precomposed) and pasted from another as
    'cafe' + a combining accent, or with a zero-width space, gave a template whose two
    buttons read the same and a label config with two classes workers split at random."""
    labels = tmp_path / "labels.txt"
    labels.write_text("caf\u00e9\ncafe\u0301\nball\nball\u200b\n", encoding="utf-8")
    out = tmp_path / "t.html"
    config = tmp_path / "labels.json"
    args = ["template", "-o", str(out), "--label-file", str(labels), *BASE]
    code = main([*args, "--write-label-config", str(config)])
    err = capsys.readouterr().err
    assert code == 1
    assert "'caf\\xe9' and 'cafe\\u0301' differ" in err
    assert "'ball' and 'ball\\u200b' differ" in err
    assert not out.exists()
    assert not config.exists()


def test_offline_preview_reads_an_s3_manifest_through_the_given_endpoint(
    moto_endpoint: str,
    store: S3Store,
    bucket: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--offline keeps the images off S3; the manifest named by --preview was read with no
    store at all, so --endpoint-url (and --profile, --region) were ignored: the run went to
    https://<bucket>.s3.amazonaws.com and failed (or read another account's object)."""
    line = (SAMPLES / "truth.manifest").read_text().splitlines()[1]
    store.put_bytes(f"s3://{bucket}/m/in.manifest", f"{{}}\n{line}\n".encode())
    out = tmp_path / "t.html"
    aws = ["--endpoint-url", moto_endpoint, "--region", "us-east-1"]
    preview = ["--preview", f"s3://{bucket}/m/in.manifest", "--preview-line", "2", "--offline"]
    code = main(["template", "-o", str(out), "--labels", "ball", *BASE, *preview, *aws])
    err = capsys.readouterr().err
    assert code == 0, err
    assert (tmp_path / "t.preview.html").exists()
    # line 2's image, not fetched (--offline): the page shows a placeholder for it
    assert f"placeholder for {json.loads(line)['source-ref']}" in err


@pytest.mark.parametrize(
    ("content", "labels"),
    [
        ("{other}\nball\n", ["{other}", "ball"]),
        ("{ unsure }\nball\n", ["{ unsure }", "ball"]),
        ("[unsure]\nball\n", ["[unsure]", "ball"]),
    ],
)
def test_a_first_label_in_braces_stays_a_label(
    tmp_path: Path, content: str, labels: list[str]
) -> None:
    """A one-per-line label file whose first label is '{other}' was taken for a broken JSON
    config: 'not JSON: unexpected character, expected a string key', exit 1."""
    label_file = tmp_path / "labels.txt"
    label_file.write_text(content, encoding="utf-8")
    out = tmp_path / "t.html"
    args = ["template", "-o", str(out), "--label-file", str(label_file), *BASE]
    assert main([*args, "--static-labels"]) == 0
    baked = json.dumps(labels).replace('"', "&#34;").replace("{", "&#123;").replace("}", "&#125;")
    assert f'labels="{baked}"' in out.read_text()


def test_a_broken_config_named_json_is_reported_not_read_as_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    label_file = tmp_path / "labels.json"
    label_file.write_text("{labels: [car]}\n", encoding="utf-8")
    code = main(
        ["template", "-o", str(tmp_path / "t.html"), "--label-file", str(label_file), *BASE]
    )
    assert code == 1
    assert "label category config" in capsys.readouterr().err

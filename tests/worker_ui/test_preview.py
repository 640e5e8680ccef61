from __future__ import annotations

import base64
import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from gt_toolkit import render_bounding_box_template, render_liquid, write_preview
from gt_toolkit.errors import ManifestError, TemplateError
from gt_toolkit.storage.image_mirror import ImageMirror
from gt_toolkit.storage.s3 import S3Store
from gt_toolkit.worker_ui.preview import (
    ImageResolver,
    build_preview_page,
    load_task_input,
    s3_uri_from_url,
    task_input_from_line,
)
from tests.helpers import SAMPLES

IMG0 = SAMPLES / "images" / "img_000.jpg"
TRUTH_LINE = (SAMPLES / "truth.manifest").read_text().splitlines()[0]


def data_bytes(uri: str) -> bytes:
    assert uri.startswith("data:"), uri[:40]
    return base64.b64decode(uri.split(",", 1)[1])


def test_render_liquid_has_ground_truth_filters_and_autoescape() -> None:
    template = (
        "{{ task.input.a }}|{{ task.input.a | escape_once }}|{{ task.input.list | to_json }}|"
        "{{ task.input.html | skip_autoescape }}|{{ task.input.uri | grant_read_access }}"
    )
    out = render_liquid(
        template,
        {"a": "x & <y>", "list": ["q'", 1], "html": "<b>b</b>", "uri": "s3://b/k.jpg"},
        grant_read_access=lambda uri: f"signed:{uri}",
    )
    assert out == (
        "x &amp; &lt;y&gt;|x &amp; &lt;y&gt;|[&#34;q&#39;&#34;, 1]|<b>b</b>|signed:s3://b/k.jpg"
    )


def test_render_liquid_syntax_error_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="Liquid error"):
        render_liquid("{% if x %}", {})


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://b/k.jpg", "s3://b/k.jpg"),
        ("https://s3.amazonaws.com/my-bucket/a/b c.jpg", "s3://my-bucket/a/b c.jpg"),
        ("https://my-bucket.s3.amazonaws.com/a/b.jpg", "s3://my-bucket/a/b.jpg"),
        ("https://my-bucket.s3.us-west-2.amazonaws.com/a%20b.jpg", "s3://my-bucket/a b.jpg"),
        ("https://s3.eu-west-1.amazonaws.com/bkt/x.png", "s3://bkt/x.png"),
        ("https://example.com/a.jpg", None),
        ("http://s3.amazonaws.com/b/k", None),
        ("data:image/png;base64,AA", None),
    ],
)
def test_s3_uri_from_url(url: str, expected: str | None) -> None:
    assert s3_uri_from_url(url) == expected


def test_resolver_prefers_the_mirror_then_reports_missing() -> None:
    resolver = ImageResolver(mirror=ImageMirror(SAMPLES / "images"))
    assert data_bytes(resolver("s3://any-bucket/deep/prefix/img_000.jpg")) == IMG0.read_bytes()
    assert resolver("s3://any-bucket/nope.jpg").startswith("data:image/svg+xml;base64,")
    assert resolver("https://example.com/a.jpg") == "https://example.com/a.jpg"
    assert data_bytes(resolver(str(IMG0))) == IMG0.read_bytes()
    assert resolver.missing == ["s3://any-bucket/nope.jpg"]


def test_resolver_reads_s3_through_the_store(store: S3Store, bucket: str) -> None:
    store.put_bytes(f"s3://{bucket}/img/a.jpg", IMG0.read_bytes())
    resolver = ImageResolver(store=store)
    embedded = resolver(f"s3://{bucket}/img/a.jpg")
    assert embedded.startswith("data:image/jpeg;base64,")
    assert data_bytes(embedded) == IMG0.read_bytes()
    assert resolver(f"https://s3.amazonaws.com/{bucket}/img/a.jpg") == embedded
    resolver(f"s3://{bucket}/img/missing.jpg")
    assert resolver.missing == [f"s3://{bucket}/img/missing.jpg"]


def test_resolver_presigns_urls_that_work(store: S3Store, bucket: str) -> None:
    store.put_bytes(f"s3://{bucket}/img/a.jpg", IMG0.read_bytes())
    url = ImageResolver(store=store, presign=True)(f"s3://{bucket}/img/a.jpg")
    assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(url) as response:
        assert response.read() == IMG0.read_bytes()


def test_task_input_from_a_labelled_line_carries_initial_boxes() -> None:
    data = json.loads(TRUTH_LINE)
    task_input = task_input_from_line(data)
    assert task_input["taskObject"] == data["source-ref"]
    expected = [
        {"label": "ball", **{k: a[k] for k in ("left", "top", "width", "height")}}
        for a in data["truth"]["annotations"]
    ]
    assert task_input["initialValue"] == expected
    assert task_input_from_line(data, label_attribute="truth") == task_input


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"source-ref": "s3://b/k.jpg"}, {"taskObject": "s3://b/k.jpg"}),
        ({"source": "some text"}, {"taskObject": "some text"}),
        ({"taskObject": "s3://b/k", "labels": ["x"]}, {"taskObject": "s3://b/k", "labels": ["x"]}),
    ],
    ids=["source-ref", "source", "task-input"],
)
def test_task_input_shapes(data: dict[str, Any], expected: dict[str, Any]) -> None:
    assert task_input_from_line(data) == expected


@pytest.mark.parametrize(
    ("data", "kwargs", "fragment"),
    [
        ({"other": 1}, {}, "no 'source-ref' or 'source'"),
        ({"source-ref": "s3://b/k"}, {"label_attribute": "boxes"}, "no label attribute 'boxes'"),
        ({"source-ref": "s3://b/k", "boxes": {"x": 1}}, {"label_attribute": "boxes"}, "not a"),
        (
            {
                "source-ref": "s3://b/k",
                "boxes": {
                    "annotations": [
                        {"class_id": float("inf"), "left": 1, "top": 1, "width": 1, "height": 1}
                    ]
                },
            },
            {"label_attribute": "boxes"},
            "not a",
        ),
    ],
    ids=["no-source", "missing-attribute", "not-boxes", "infinite-class-id"],
)
def test_task_input_errors(data: dict[str, Any], kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(TemplateError) as info:
        task_input_from_line(data, **kwargs)
    assert fragment in str(info.value)


def test_load_task_input_from_text_and_manifest(tmp_path: Path) -> None:
    assert load_task_input('{"source-ref": "s3://b/k.jpg"}') == {"taskObject": "s3://b/k.jpg"}
    manifest = SAMPLES / "input.manifest"
    second = json.loads(manifest.read_text().splitlines()[1])
    assert load_task_input(manifest, line_no=2) == {"taskObject": second["source-ref"]}
    with pytest.raises(ManifestError, match="fewer lines"):
        load_task_input(manifest, line_no=10_000)
    with pytest.raises(ManifestError, match="line numbers start at 1"):
        load_task_input(manifest, line_no=0)
    bad = tmp_path / "bad.manifest"
    bad.write_text('[1]\n{"source-ref": \n')
    with pytest.raises(ManifestError, match="expected a JSON object"):
        load_task_input(bad)
    with pytest.raises(ManifestError, match=r"bad\.manifest:2: not a JSON object"):
        load_task_input(bad, line_no=2)


def _template() -> str:
    return render_bounding_box_template(
        ["ball", "</script><b>x</b>"],
        "Box {{ every }} ball",
        "Tight boxes.",
        "All balls.",
        [(SAMPLES / "examples" / "good_tight.jpg", "tight")],
        [("s3://gt-toolkit-demo/examples/bad_loose.jpg", "loose")],
    )


def test_preview_page_replaces_the_crowd_script_with_the_shim() -> None:
    resolver = ImageResolver(mirror=ImageMirror(SAMPLES))
    page = build_preview_page(
        _template(), task_input_from_line(json.loads(TRUTH_LINE)), grant_read_access=resolver
    )
    assert "assets.crowd.aws" not in page
    assert page.count("<script") == 1  # the inline shim only
    assert "Content-Security-Policy" in page
    assert "Box &#123;&#123; every &#125;&#125; ball" in page
    srcs = re.findall(r'src="([^"]+)"', page)
    assert all(s.startswith("data:image/") for s in srcs), [s[:40] for s in srcs]
    # the s3:// example resolved through the mirror (samples/examples/bad_loose.jpg)
    assert resolver.missing == []


def test_write_preview_to_s3_and_local(tmp_path: Path, store: S3Store, bucket: str) -> None:
    out = tmp_path / "p.html"
    result = write_preview(_template(), SAMPLES / "truth.manifest", out, line_no=2)
    page = out.read_text()
    assert "crowd-bounding-box" in page
    assert len(result.task_input["initialValue"]) == 3
    assert sorted(result.missing_images) == [
        "s3://gt-toolkit-demo/examples/bad_loose.jpg",
        "s3://gt-toolkit-demo/images/img_001.jpg",
    ]
    uri = f"s3://{bucket}/previews/p.html"
    write_preview(_template(), json.loads(TRUTH_LINE), uri, store=store, images_dir=SAMPLES)
    assert b"crowd-bounding-box" in store.get_bytes(uri)


def test_preview_page_escapes_its_title() -> None:
    from gt_toolkit.worker_ui.preview import build_preview_page

    hostile = '</title><script>alert("x")</script>'
    page = build_preview_page("<p>[task]</p>", {"taskObject": "s3://b/a.jpg"}, title=hostile)
    assert "<script>alert" not in page
    assert "&lt;/title&gt;&lt;script&gt;" in page
    assert "<p>[task]</p>" in page  # the rendered task itself is the page's HTML


def test_a_local_file_that_is_not_an_image_is_never_embedded(tmp_path: Path) -> None:
    """A manifest line {"source": "/home/me/.aws/credentials"} previewed with an image
    template embedded that file, base64, in the page (which is written next to the template,
    on S3 too, and shared): the resolver read any local path the manifest named."""
    secret = tmp_path / "credentials"
    secret.write_text("[default]\naws_secret_access_key = abc123SECRET\n")
    line = json.dumps({"source": str(secret)})
    out = tmp_path / "p.html"
    result = write_preview(_template(), line, out)
    page = out.read_text()
    encoded = base64.b64encode(secret.read_bytes()).decode()
    assert encoded not in page
    assert "abc123SECRET" not in page
    assert str(secret) in result.missing_images
    # a local image named the same way is still shown
    assert (
        ImageResolver()(str(IMG0))
        == "data:image/jpeg;base64," + base64.b64encode(IMG0.read_bytes()).decode()
    )

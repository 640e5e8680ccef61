"""Offline preview: render a worker template as Ground Truth would and show it in a browser.

Ground Truth evaluates the template's Liquid per task with ``task.input`` set to the
pre-annotation Lambda's ``taskInput``, HTML-escaping every ``{{ }}`` output and offering the
filters ``grant_read_access``, ``to_json``, ``escape``, ``escape_once`` and
``skip_autoescape`` (``docs/ground-truth-formats.md`` section 4). We do the same with
python-liquid, a real Liquid engine, so a template that breaks there breaks here first.

The crowd elements' script (``assets.crowd.aws``) is not reachable offline, so the preview
page replaces it with a small inline shim (``templates/preview/``) that reads the same
attributes and lays out what a worker sees. Images are embedded as data URIs, which makes the
page one self-contained file.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from markupsafe import Markup

from gt_toolkit.errors import ManifestError, StorageError, TemplateError
from gt_toolkit.formats.detection_label import parse_detection_label
from gt_toolkit.formats.label_attributes import LabelKind, detect_label_attributes
from gt_toolkit.storage.files import Location, atomic_output, iter_raw_lines
from gt_toolkit.storage.image_mirror import ImageMirror, data_uri, read_image_size
from gt_toolkit.storage.s3 import S3Store, is_s3_uri, parse_s3_uri
from gt_toolkit.templating import render_page

__all__ = [
    "GrantReadAccess",
    "ImageResolver",
    "PreviewPage",
    "PreviewResult",
    "build_preview_page",
    "liquid_environment",
    "load_task_input",
    "prepare_preview",
    "render_liquid",
    "s3_uri_from_url",
    "task_input_from_line",
    "write_preview",
]

GrantReadAccess = Callable[[str], str]
"""Maps an S3 URI (or any image reference) to a URL a browser can load."""

_CROWD_SCRIPT_RE: Final = re.compile(
    r"<script\b[^>]*\bsrc=[\"']https://assets\.crowd\.aws/[^\"']*[\"'][^>]*>\s*</script>",
    re.IGNORECASE,
)
_VIRTUAL_HOSTED_RE: Final = re.compile(r"^(?P<bucket>.+)\.s3[.-](?:[a-z0-9-]+\.)?amazonaws\.com$")
_PATH_STYLE_RE: Final = re.compile(r"^s3[.-](?:[a-z0-9-]+\.)?amazonaws\.com$|^s3\.amazonaws\.com$")


def s3_uri_from_url(value: str) -> str | None:
    """The ``s3://bucket/key`` behind an S3 URI or an S3 https URL; ``None`` for anything else.

    Ground Truth documents ``grant_read_access`` on both ``s3://`` URIs (``taskObject``)
    and ``https://s3.amazonaws.com/<bucket>/<key>`` URLs (instruction images).
    """
    if is_s3_uri(value):
        return value
    if not value.startswith("https://"):
        return None
    parts = urlsplit(value)
    host = parts.hostname or ""
    path = unquote(parts.path).lstrip("/")
    if match := _VIRTUAL_HOSTED_RE.match(host):
        return f"s3://{match['bucket']}/{path}" if path else None
    if _PATH_STYLE_RE.match(host) and "/" in path:
        return f"s3://{path}"
    return None


def _placeholder(uri: str) -> str:
    """An SVG data URI that says which image could not be shown offline."""
    text = html.escape(f"image not available offline: {uri}"[:200])
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="640" height="360">'
        '<rect width="100%" height="100%" fill="#d5dbdb"/>'
        f'<text x="20" y="180" font-size="16" font-family="sans-serif">{text}</text></svg>'
    )
    return data_uri(svg.encode(), "image/svg+xml")


def _is_file(path: Path) -> bool:
    """``path.is_file()``, but False for names no file system holds (too long, NUL bytes).

    A text task's ``taskObject`` is the ``source`` text itself, of any length, not a path.
    """
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


@dataclass
class ImageResolver:
    """The preview's ``grant_read_access``: turns image references into loadable URLs.

    Order for an S3 reference: its copy in ``mirror`` (a local folder of the images),
    then the object through ``store`` (embedded, or a presigned URL with ``presign``), else a
    placeholder image; every reference that fell back is listed in :attr:`missing`.
    ``https``/``data:`` URLs pass through; a local path is embedded when it is an image
    file (any other file, however named, is a placeholder: the page is often shared).

    Args:
        store: where to read S3 images; ``None`` keeps the preview fully offline.
        mirror: local copies of the images (``--images-dir``/``--images-prefix``).
        presign: link to presigned URLs instead of embedding the bytes.
        expires_in: presigned URL lifetime in seconds.
    """

    store: S3Store | None = None
    mirror: ImageMirror | None = None
    presign: bool = False
    expires_in: int = 3600
    missing: list[str] = field(default_factory=list)
    _cache: dict[str, str] = field(default_factory=dict, repr=False)

    def __call__(self, value: object) -> str:
        """Resolve one reference (the Liquid filter calls this)."""
        text = "" if value is None else str(value)
        if text not in self._cache:
            self._cache[text] = self._resolve(text)
        return self._cache[text]

    def _resolve(self, text: str) -> str:
        if not text:
            self.missing.append("(empty image reference)")
            return _placeholder("(empty)")
        uri = s3_uri_from_url(text)
        if uri is None:
            if text.startswith(("https://", "http://", "data:")):
                return text
            path = Path(text)
            # only an image: a manifest's source or taskObject may name any file on this
            # machine (~/.aws/credentials), and the page carries what it embeds
            if _is_file(path) and read_image_size(path) is not None:
                return data_uri(path.read_bytes(), name=path.name)
            self.missing.append(text)
            return _placeholder(text)
        _bucket, key = parse_s3_uri(uri)
        local = self.mirror.local_path(uri) if self.mirror is not None else None
        if local is not None:
            return data_uri(local.read_bytes(), name=local.name)
        if self.store is not None:
            if self.presign:
                return self.store.presign(uri, expires_in=self.expires_in)
            try:
                return data_uri(self.store.get_bytes(uri), name=key)
            except StorageError:
                pass
        self.missing.append(uri)
        return _placeholder(uri)


def _to_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _skip_autoescape(value: object) -> Markup:
    return Markup("" if value is None else str(value))


def liquid_environment(*, grant_read_access: GrantReadAccess | None = None) -> Any:
    """A python-liquid environment that behaves like Ground Truth's: autoescape and GT filters.

    ``escape`` and ``escape_once`` are Liquid built-ins; ``to_json``, ``skip_autoescape``
    and ``grant_read_access`` (default: an offline :class:`ImageResolver`) are added.
    """
    from liquid import Environment

    env = Environment(autoescape=True)
    env.filters["grant_read_access"] = grant_read_access or ImageResolver()
    env.filters["to_json"] = _to_json
    env.filters["skip_autoescape"] = _skip_autoescape
    return env


def render_liquid(
    template_text: str,
    task_input: Mapping[str, Any],
    *,
    grant_read_access: GrantReadAccess | None = None,
) -> str:
    """Render a worker template for one task, as Ground Truth would.

    Raises:
        TemplateError: the Liquid does not parse or fails to render.
    """
    from liquid.exceptions import LiquidError

    env = liquid_environment(grant_read_access=grant_read_access)
    try:
        return str(env.from_string(template_text).render(task={"input": dict(task_input)}))
    except LiquidError as exc:
        raise TemplateError(f"Liquid error in the worker template: {exc}") from exc


def task_input_from_line(
    data: Mapping[str, Any], *, label_attribute: str | None = None
) -> dict[str, Any]:
    """The ``taskInput`` a pre-annotation Lambda would send for a manifest line.

    A mapping that already has ``taskObject`` is taken as a ``taskInput`` itself. Otherwise
    ``taskObject`` is the line's ``source-ref`` (or ``source``), and boxes of an existing
    bounding-box label (``label_attribute``, or the newest one found) become ``initialValue``
    in the crowd-bounding-box ``initial-value`` shape.

    Raises:
        TemplateError: no ``taskObject``, ``source-ref`` or ``source``, or a named label
            attribute that is missing or not a bounding-box label.
    """
    if "taskObject" in data:
        return dict(data)
    source = data.get("source-ref", data.get("source"))
    if source is None:
        raise TemplateError("the manifest line has no 'source-ref' or 'source' (nor 'taskObject')")
    task_input: dict[str, Any] = {"taskObject": source}
    names = [label_attribute] if label_attribute else _detection_attributes(data)
    for name in names:
        value = data.get(name)
        if not isinstance(value, Mapping):
            raise TemplateError(f"the manifest line has no label attribute {name!r}")
        try:
            _size, boxes = parse_detection_label(value, data.get(f"{name}-metadata"))
        except (ValueError, ArithmeticError) as exc:  # an Infinity class_id overflows int()
            raise TemplateError(
                f"label attribute {name!r} is not a bounding-box label: {exc}"
            ) from exc
        task_input["initialValue"] = [box.worker_box() for box in boxes]
        break
    return task_input


def _detection_attributes(data: Mapping[str, Any]) -> list[str]:
    """Bounding-box label attributes of a line, newest first, found as the output reader does."""
    return [
        attr.name
        for attr in detect_label_attributes(data)
        if attr.kind is LabelKind.DETECTION
        and not attr.failed
        and isinstance(data.get(attr.name), Mapping)
    ]


def load_task_input(
    source: str | os.PathLike[str],
    *,
    line_no: int = 1,
    label_attribute: str | None = None,
    store: S3Store | None = None,
) -> dict[str, Any]:
    """A ``taskInput`` from JSON text (manifest line or taskInput) or a manifest's line ``line_no``.

    Raises:
        ManifestError: the chosen line is not a JSON object, or the manifest is too short
            (or ``line_no`` is below 1).
    """
    text = os.fspath(source)
    if text.lstrip().startswith("{"):
        raw, origin, number = text.encode(), "<argument>", 1
    elif line_no < 1:
        raise ManifestError(text, line_no, "line numbers start at 1")
    else:
        raw, origin, number = b"", text, line_no
        for index, line in enumerate(iter_raw_lines(text, store=store), start=1):
            if index == line_no:
                raw = line
                break
        else:
            raise ManifestError(text, line_no, "the manifest has fewer lines than that")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(origin, number, f"not a JSON object: {exc}") from exc
    if not isinstance(data, dict):
        raise ManifestError(origin, number, f"expected a JSON object, got {type(data).__name__}")
    return task_input_from_line(data, label_attribute=label_attribute)


def build_preview_page(
    template_text: str,
    task_input: Mapping[str, Any],
    *,
    grant_read_access: GrantReadAccess | None = None,
    title: str = "Worker task preview",
) -> str:
    """A self-contained HTML page showing the rendered task with an offline crowd-element shim.

    The crowd-html-elements script tag is dropped (it cannot load offline); a Content Security
    Policy runs inline scripts only (the shim, and any the template holds, as Ground Truth
    would), so the page never fetches code from the network.
    The page is ``templates/preview/page.html.j2``; ``title`` is escaped there.
    """
    body = render_liquid(template_text, task_input, grant_read_access=grant_read_access)
    body = _CROWD_SCRIPT_RE.sub(
        "<!-- crowd-html-elements.js replaced by the offline shim -->", body
    )
    # The rendered task is the page's content: HTML by design, escaped by Liquid already.
    return render_page("preview/page.html.j2", {"title": title, "body": Markup(body)})


@dataclass(frozen=True, slots=True)
class PreviewPage:
    """A rendered preview page, not written yet, and which images it could not show."""

    html: str
    task_input: dict[str, Any]
    missing_images: list[str]


@dataclass(frozen=True, slots=True)
class PreviewResult:
    """What :func:`write_preview` wrote and which images it could not show."""

    output: str
    task_input: dict[str, Any]
    missing_images: list[str]


def prepare_preview(
    template_text: str,
    source: str | os.PathLike[str] | Mapping[str, Any],
    *,
    line_no: int = 1,
    label_attribute: str | None = None,
    store: S3Store | None = None,
    images_dir: str | os.PathLike[str] | None = None,
    images_prefix: str | None = None,
    presign: bool = False,
) -> PreviewPage:
    """Render ``template_text`` for one manifest line into a preview page, writing nothing.

    Args:
        source: a manifest line or taskInput (mapping or JSON text), or a manifest location.
        line_no: which line of a manifest (1-based).
        store: reads S3 images (and ``source`` when it is an S3 URI).
        images_dir: a local folder of the images, for fully offline previews.
        images_prefix: the ``s3://`` prefix ``images_dir`` mirrors (see
            :class:`~gt_toolkit.storage.image_mirror.ImageMirror`).
        presign: link presigned URLs instead of embedding images.
    """
    if isinstance(source, Mapping):
        task_input = task_input_from_line(source, label_attribute=label_attribute)
    else:
        task_input = load_task_input(
            source, line_no=line_no, label_attribute=label_attribute, store=store
        )
    mirror = ImageMirror(images_dir, images_prefix) if images_dir is not None else None
    resolver = ImageResolver(store=store, mirror=mirror, presign=presign)
    page = build_preview_page(template_text, task_input, grant_read_access=resolver)
    return PreviewPage(page, task_input, list(resolver.missing))


def write_preview(
    template_text: str,
    source: str | os.PathLike[str] | Mapping[str, Any],
    output: Location,
    *,
    line_no: int = 1,
    label_attribute: str | None = None,
    store: S3Store | None = None,
    images_dir: str | os.PathLike[str] | None = None,
    images_prefix: str | None = None,
    presign: bool = False,
) -> PreviewResult:
    """:func:`prepare_preview`, then write the page to ``output`` (local or S3) atomically."""
    page = prepare_preview(
        template_text,
        source,
        line_no=line_no,
        label_attribute=label_attribute,
        store=store,
        images_dir=images_dir,
        images_prefix=images_prefix,
        presign=presign,
    )
    with atomic_output(output, store=store) as fh:
        fh.write(page.html.encode("utf-8"))
    return PreviewResult(os.fspath(output), page.task_input, page.missing_images)

"""The one Jinja environment: worker templates and the HTML pages people open.

Every page the toolkit writes (the crowd-HTML worker template, the offline preview page, the
review report) is a ``.j2`` file in ``templates/`` rendered here, never HTML built by string
formatting, so every value reaches the page through one autoescape rule. Delimiters are
``[[ ]]``, ``[% %]`` and ``[# #]`` because worker templates *produce* Liquid, whose ``{{ }}``
must pass through untouched; the pages use the same ones so there is one syntax to read.

Pass trusted HTML (a rendered worker template, our own CSS and scripts) as
:class:`markupsafe.Markup`; everything else is escaped. The worker templates add a
``finalize`` hook (``gt_toolkit.worker_ui.render.liquid_inert``) that also neutralises Liquid
delimiters in user text.

Jinja itself is imported on first use, so importing this module costs nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gt_toolkit.errors import TemplateError
from gt_toolkit.text import not_utf8_at

if TYPE_CHECKING:
    import jinja2

__all__ = ["find_template_dir", "jinja_environment", "render_page"]


def find_template_dir() -> Path:
    """The folder of ``.j2`` templates: in the installed package, else the checkout.

    A wheel carries them as ``gt_toolkit/templates`` (pyproject force-include); an editable
    install or a plain checkout finds the repository's ``templates/``.

    Raises:
        TemplateError: neither folder holds the templates (a broken install).
    """
    here = Path(__file__).resolve().parent  # the gt_toolkit package
    for candidate in (here / "templates", here.parent / "templates"):
        if (candidate / "bounding_box.html.j2").is_file():
            return candidate
    raise TemplateError(
        f"templates not found in {here / 'templates'} or {here.parent / 'templates'}; "
        "reinstall gt-toolkit"
    )


@functools.cache
def jinja_environment(
    template_dir: Path | None = None, *, finalize: Callable[[Any], Any] | None = None
) -> jinja2.Environment:
    """The environment for ``template_dir`` (default: the packaged templates), built once.

    Autoescape is on for ``.html``/``.j2`` files and undefined names are errors, so a typo in
    a template fails its test instead of printing nothing.
    """
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir or find_template_dir()),
        variable_start_string="[[",
        variable_end_string="]]",
        block_start_string="[%",
        block_end_string="%]",
        comment_start_string="[#",
        comment_end_string="#]",
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        finalize=finalize,
        keep_trailing_newline=True,
    )


def render_page(
    name: str,
    context: Mapping[str, Any],
    *,
    template_dir: Path | None = None,
    finalize: Callable[[Any], Any] | None = None,
) -> str:
    """Render template ``name`` with ``context``.

    Raises:
        TemplateError: the template is missing, does not parse, or uses an undefined name; or
            a value holds a lone surrogate, which no file can store as UTF-8.
    """
    import jinja2

    environment = jinja_environment(template_dir, finalize=finalize)
    try:
        page = environment.get_template(name).render(**context)
    except jinja2.TemplateError as exc:
        raise TemplateError(f"cannot render {name}: {exc}") from exc
    at = not_utf8_at(page)
    if at is not None:
        # Python decodes a non-UTF-8 byte in a command-line argument to one (PEP 383), and JSON
        # can spell one ("\udcff"); say where, rather than fail later when the page is written.
        before = page[max(at - 40, 0) : at]
        raise TemplateError(
            f"cannot render {name}: a value holds {page[at]!r}, not valid Unicode "
            f"(a lone surrogate), after {before!r}; was an argument or file not UTF-8?"
        )
    return page

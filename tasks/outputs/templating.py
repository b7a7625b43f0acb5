"""The Jinja2 environment of the run report and the dataset card (tasks/outputs/templates).

HTML templates (`*.html.j2`, and any name not known to be Markdown) are autoescaped, and every
value they print also has its URLs defanged (`https://` shown as `https&#58;//`), so text from
documents is safe by construction: it cannot add markup, and it holds no link to click. A
value that is `None` prints as nothing there.

Markdown templates (`*.md.j2`) are not HTML: nothing is escaped for them, and the template
neutralises what Markdown would misread (see the `md` filter of `tasks.outputs.publish`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2 import (
    Environment,
    PackageLoader,
    StrictUndefined,
    pass_eval_context,
    select_autoescape,
)
from jinja2.nodes import EvalContext
from markupsafe import Markup, escape

TEMPLATES = "templates"  # package data of `tasks.outputs` (pyproject: package-data)


@pass_eval_context
def _finalize(ctx: EvalContext, value: Any) -> Any:
    """Applied to every `{{ ... }}`: in HTML, escape and defang; elsewhere, leave as is."""
    if not ctx.autoescape:
        return value
    if value is None:
        return ""
    return escape(value).replace("://", Markup("&#58;//"))


def environment(**filters: Callable[..., Any]) -> Environment:
    """A fresh environment over tasks/outputs/templates, with `filters` added to Jinja's own."""
    env = Environment(
        loader=PackageLoader("tasks.outputs", TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2"),
                                     disabled_extensions=("md", "md.j2"), default=True),
        finalize=_finalize,
        undefined=StrictUndefined,  # a misspelt name fails the render, never prints ""
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(filters)
    return env

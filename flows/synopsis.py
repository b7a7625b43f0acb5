"""The command synopsis of docs/configuration.md, generated from the CLI itself.

`python -m flows.synopsis` prints it; `tests/test_cli.py` checks that docs/configuration.md
holds exactly this text, so the docs cannot fall behind an option.
"""

from __future__ import annotations

import textwrap
from typing import Any

import typer

WIDTH = 96
_METAVARS = {"int": "N", "float": "X", "Path": "PATH", "str": "TEXT"}


def _annotation(param: Any) -> str:
    kind = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    return getattr(kind, "__name__", str(kind))


def _option(param: Any, ctx: Any) -> str:
    """One parameter as usage text. Typer carries its own copy of click: duck-typed."""
    if param.param_type_name == "argument":
        name = param.metavar or param.name.upper()
        return name if param.required else f"[{name}]"
    longest = max(param.opts, key=len)
    if param.is_flag:
        if param.secondary_opts:
            return f"[{longest}/{max(param.secondary_opts, key=len)}]"
        return f"[{longest}]"
    value = param.metavar or _METAVARS.get(_annotation(param), "TEXT")
    return f"{longest} {value}" if param.required else f"[{longest} {value}]"


def _commands(group: Any, prefix: str, ctx: Any):
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        sub = command.context_class(command, info_name=name, parent=ctx)
        if hasattr(command, "list_commands"):
            yield from _commands(command, f"{prefix} {name}", sub)
        else:
            params = [p for p in command.params if "--help" not in p.opts]
            yield f"{prefix} {name}", [_option(p, sub) for p in params]


def synopsis() -> str:
    """One usage block per command, wrapped under the command name."""
    from flows.cli import app

    group = typer.main.get_command(app)
    ctx = group.context_class(group, info_name="textdigest")
    lines = []
    for head, parts in _commands(group, "textdigest", ctx):
        # a no-break space inside each part: lines wrap between options, never inside one
        text = " ".join([head, *(part.replace(" ", "\u00a0") for part in parts)])
        lines += [line.replace("\u00a0", " ") for line in textwrap.wrap(
            text, WIDTH, subsequent_indent=" " * (len(head) + 1), break_long_words=False,
            break_on_hyphens=False)]
    return "\n".join(lines)


if __name__ == "__main__":
    print(synopsis())

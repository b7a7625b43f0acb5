"""`textdigest run` and `DigestConfig` cannot drift: every field has its option, same default.

The README's synopsis is generated from the CLI (tests/test_cli.py), so with this test the
config, the command line and the README say the same thing.
"""

from __future__ import annotations

import typer

from flows.cli import app
from flows.config import DigestConfig
from tasks.models.names import ModelNames

# Config fields spelt differently on the command line.
RENAMED = {"show_progress": "progress", "torch_threads": "threads"}
# Fields the command line leaves out on purpose, and why.
NOT_ON_THE_COMMAND_LINE = {
    # `textdigest publish` publishes a dataset; these chain a publish to a scheduled digest
    # run (prefect.yaml parameters), where no one is at a terminal to run it.
    "publish_repo_id", "publish_dry_run", "publish_branch", "publish_license",
    "publish_private",
}
# Options that are not config fields (how the command prints, not what the run does).
CLI_ONLY = {"verbose"}
# On the command line 0 means "none" where the config takes None.
ZERO_IS_NONE = {"batch_chars", "max_model_chars", "near_dup_threshold"}


def _run_options() -> dict[str, object]:
    command = typer.main.get_command(app).commands["run"]
    return {p.name: p for p in command.params if p.name != "help"}


def test_every_config_field_is_an_option_with_the_same_default():
    options = _run_options()
    fields = DigestConfig.model_fields
    missing = sorted(RENAMED.get(f, f) for f in fields
                     if f not in NOT_ON_THE_COMMAND_LINE and RENAMED.get(f, f) not in options)
    assert missing == [], f"config fields with no `textdigest run` option: {missing}"
    unknown = sorted(set(options) - {RENAMED.get(f, f) for f in fields} - CLI_ONLY)
    assert unknown == [], f"options that are not config fields: {unknown}"
    for name, field in fields.items():
        option = options.get(RENAMED.get(name, name))
        if option is None:
            continue
        expected = field.default
        given = option.default
        if name in ZERO_IS_NONE and given == 0:
            given = None
        assert given == expected, f"--{option.name.replace('_', '-')}: CLI default {given!r}, " \
                                  f"config default {expected!r}"


def test_the_model_defaults_agree_with_the_config():
    """Code that builds ModelNames() directly (benches, tests) runs what the product runs."""
    assert DigestConfig().model_names() == ModelNames()

"""`textdigest run` and `DigestConfig` cannot drift: every field has its option, same default.

The synopsis in docs/configuration.md is generated from the CLI (tests/test_cli.py), so with
this test the config, the command line and the docs say the same thing.
"""

from __future__ import annotations

import typer

from flows.cli import app
from flows.config import FLAT, GROUPS, DigestConfig
from tasks.models.chosen import ChosenModels

# Config fields spelt differently on the command line (flat name -> option name).
RENAMED = {"show_progress": "progress", "torch_threads": "threads", "wait_s": "wait"}
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


def test_the_flat_names_cover_every_nested_field_once():
    nested = {(group, name) for group, model in GROUPS.items() for name in model.model_fields}
    assert sorted(FLAT.values()) == sorted(nested)
    assert set(DigestConfig.model_fields) == set(GROUPS)


def test_every_config_field_is_an_option_with_the_same_default():
    options = _run_options()
    missing = sorted(RENAMED.get(f, f) for f in FLAT
                     if f not in NOT_ON_THE_COMMAND_LINE and RENAMED.get(f, f) not in options)
    assert missing == [], f"config fields with no `textdigest run` option: {missing}"
    unknown = sorted(set(options) - {RENAMED.get(f, f) for f in FLAT} - CLI_ONLY)
    assert unknown == [], f"options that are not config fields: {unknown}"
    for flat, (group, name) in FLAT.items():
        option = options.get(RENAMED.get(flat, flat))
        if option is None:
            continue
        expected = GROUPS[group].model_fields[name].default
        given = option.default
        if flat in ZERO_IS_NONE and given == 0:
            given = None
        assert given == expected, f"--{option.name.replace('_', '-')}: CLI default {given!r}, " \
                                  f"config {group}.{name} default {expected!r}"


def test_a_flat_mapping_and_the_nested_form_are_one_config():
    flat = DigestConfig(input="in.jsonl", batch_size=8, near_dup_threshold=0,
                        publish_repo_id="org/name", sentiment_model="minilm-head")
    nested = DigestConfig.model_validate({
        "input": {"path": "in.jsonl"}, "runtime": {"batch_size": 8},
        "output": {"near_dup_threshold": None}, "publish": {"repo_id": "org/name"},
        "models": {"sentiment_model": "minilm-head"}})
    assert flat == nested
    assert flat.updated(output="elsewhere").output.path.name == "elsewhere"
    assert flat.updated(output="elsewhere").runtime.batch_size == 8  # the rest kept


def test_the_model_defaults_agree_with_the_config():
    """Code that builds ChosenModels() directly (benches, tests) runs what the product runs."""
    assert DigestConfig().model_names() == ChosenModels()


def test_run_option_defaults_are_digestconfigs():
    """Each default has one home: `textdigest run` with no option builds DigestConfig(), and
    the options that DigestConfig names otherwise (or where 0 means none) still reach it."""
    import inspect

    from flows import cli

    defaults = {k: p.default for k, p in inspect.signature(cli.run).parameters.items()}
    assert cli.run_config(defaults) == DigestConfig()
    changed = cli.run_config({**defaults, "threads": 3, "wait": 5.0, "batch_chars": 0,
                              "near_dup_threshold": 0, "batch_size": 64})
    assert changed == DigestConfig(torch_threads=3, wait_s=5.0, batch_chars=None,
                                   near_dup_threshold=None, batch_size=64)

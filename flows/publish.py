"""The `publish` Prefect flow: a digest output becomes (or updates) a Hugging Face dataset.

Staging, the card and validation are local and deterministic, so they are never retried: a
failed check is a finding, not bad luck. Only the network push is retried, and only on
transient errors (dropped connections, timeouts, 429/5xx). The token is resolved inside the
push and handed to the Hub client alone; it is never a flow parameter, so Prefect never
stores it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tasks.io.output_lock import hold_output
from tasks.io.verify import check_undamaged
from tasks.outputs import publish as hub_dataset
from tasks.runtime.secrets import install_redaction

# Workers import this module without the CLI: tokens stay out of their logs too.
install_redaction()

REPO_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


class PublishConfig(BaseModel):
    """Where and how a digest output is published."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path = Field(Path("data"), description="The digest output folder.")
    repo_id: str = Field(..., description="Dataset repo on the Hub, ORG/NAME.")
    private: bool = Field(False, description="Create the repo private (if it is created).")
    branch: str = Field("main", min_length=1, description="Branch to commit to.")
    license: str = Field(hub_dataset.DEFAULT_LICENSE, pattern=r"^[a-z0-9][a-z0-9.+-]*$",
                         description="Licence id in the card (Hub licence identifiers).")
    dry_run: bool = Field(False, description="Stage, describe and validate; no network.")
    staging_dir: Path | None = Field(
        None, description="Upload folder (default: beside data_dir, never inside it).")

    @field_validator("repo_id")
    @classmethod
    def _repo_id(cls, value: str) -> str:
        if not REPO_ID_RE.match(value) or ".." in value or len(value) > 96:
            raise ValueError(f"expected ORG/NAME (letters, digits, - _ .), got {value!r}")
        return value

    def staging(self) -> Path:
        return self.staging_dir or hub_dataset.default_staging_dir(self.data_dir)


@task(name="stage-dataset", cache_policy=NO_CACHE)
def stage_task(config: PublishConfig) -> hub_dataset.Staged:
    # The output's lock, as a run takes it: a run still writing is never staged half-way,
    # and no run starts writing while the shards are read (tasks.io.output_lock).
    with hold_output(config.data_dir, f"publish-{config.repo_id}", reader=True):
        check_undamaged(config.data_dir)  # a damaged shard is never staged
        shards = hub_dataset.local_shards(config.data_dir)
        staging = config.staging()
        staged = hub_dataset.stage(config.data_dir, staging, shards)
        card = hub_dataset.build_card(config.repo_id, shards, license=config.license,
                                branch=config.branch)
    hub_dataset.write_card(staging, card)
    return staged


@task(name="validate-staged", cache_policy=NO_CACHE)
def validate_task(staged: hub_dataset.Staged) -> dict[str, dict[str, int]]:
    return hub_dataset.validate_staged(staged.folder, staged.shards)


def _retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - the failed state re-raises its exception
        return hub_dataset.is_transient(exc)
    return False


@task(name="push-to-hub", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[5, 20, 60],
      retry_condition_fn=_retry_transient)
def push_task(config: PublishConfig, staged: hub_dataset.Staged,
              make_api: Callable[[str], hub_dataset.HubApi] | None) -> dict[str, Any]:
    token = hub_dataset.hub_token()
    if make_api is None:
        from huggingface_hub import HfApi

        api: hub_dataset.HubApi = HfApi(token=token)
    else:
        api = make_api(token)
    return hub_dataset.push(api, config.repo_id, staged.folder, staged, branch=config.branch,
                      private=config.private)


@flow(name="publish", log_prints=False)
def publish(config: PublishConfig,
            make_api: Callable[[str], hub_dataset.HubApi] | None = None) -> dict[str, Any]:
    """Publish `config.data_dir` to the Hub dataset `config.repo_id` (or rehearse it).

    `make_api` builds the Hub client from the token (default `HfApi(token=...)`); tests pass
    a recording client, since the Hub is out of reach there.
    """
    logger = get_run_logger()
    if not config.dry_run:  # fail before staging: no Hub or no token, no point
        hub_dataset.preflight(check_network=make_api is None)
    staged = stage_task(config)
    logger.info("staged %d shard(s) in %s (%d linked, %d copied, %d unchanged)",
                len(staged.shards), staged.folder, staged.linked, staged.copied, staged.kept)
    checked = validate_task(staged)
    logger.info("load_dataset round trip: %s", ", ".join(
        f"{k} {v['rows']} rows" for k, v in checked.items()))
    record = hub_dataset.record_path(config.data_dir, config.repo_id, config.branch)
    result: dict[str, Any] = {"repo_id": config.repo_id, "branch": config.branch,
                              "staging": str(staged.folder), "validated": checked,
                              "dry_run": config.dry_run, "record": str(record)}
    if config.dry_run:
        plan = hub_dataset.plan_commit(staged, hub_dataset.read_record(record)["files"])
        result.update(would_upload=list(plan.files), new_shards=list(plan.new_shards),
                      already=plan.already, message=plan.message)
        logger.info("dry run: %s", plan.message)
        return result
    pushed = push_task(config, staged, make_api)
    hub_dataset.write_record(record, config.repo_id, config.branch, staged.files,
                       {"oid": pushed["oid"], "message": pushed["message"],
                        "files": pushed["uploaded"]})
    if pushed["remote_only"]:
        logger.warning("the repo holds %d shard(s) that are not in %s (left in place): %s",
                       len(pushed["remote_only"]), config.data_dir,
                       ", ".join(pushed["remote_only"][:5]))
    logger.info("pushed %s: %s", config.repo_id, pushed["commit_url"] or pushed["message"])
    result.update(pushed)
    return result

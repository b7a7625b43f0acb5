"""The scheduled `digest` deployment: its spec lives in prefect.yaml, read here for `serve`.

`prefect deploy` registers the deployment for a work pool and its workers; `textdigest serve`
runs the same schedule with no worker or work pool (Prefect's `flow.serve`). Both take the
cron and the default parameters from the one `digest` entry in prefect.yaml, and both need a
Prefect server (PREFECT_API_URL): the temporary API Prefect starts without one schedules
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from flows.config import DigestConfig

DEPLOYMENT = "digest"
PREFECT_YAML = "prefect.yaml"
LOCAL_API = "http://127.0.0.1:4200/api"  # what `prefect server start` serves by default
NO_SERVER = (f"textdigest serve needs a Prefect server: start one with `prefect server start` "
             f"and set PREFECT_API_URL={LOCAL_API} (or `prefect config set "
             f"PREFECT_API_URL={LOCAL_API}`)")


class ScheduleError(ValueError):
    """prefect.yaml is missing, or has no usable `digest` deployment."""


@dataclass(frozen=True)
class DeploymentSpec:
    name: str
    cron: str
    config: DigestConfig


def find_prefect_yaml(start: Path | None = None) -> Path:
    """prefect.yaml in the working directory, else beside the installed package (a checkout)."""
    for folder in (start or Path.cwd(), Path(__file__).resolve().parents[1]):
        if (folder / PREFECT_YAML).is_file():
            return folder / PREFECT_YAML
    raise ScheduleError(f"no {PREFECT_YAML} in {start or Path.cwd()} or the textdigest checkout;"
                        " pass --prefect-yaml PATH or --cron")


def read_spec(path: Path, name: str = DEPLOYMENT) -> DeploymentSpec:
    """The cron and the parameters of deployment `name` in `path`, validated."""
    try:
        doc: Any = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ScheduleError(f"cannot read {path}: {exc}") from None
    found = [d for d in (doc or {}).get("deployments") or [] if d.get("name") == name]
    if not found:
        raise ScheduleError(f"{path} has no deployment named {name!r}")
    deployment = found[0]
    crons = [s["cron"] for s in deployment.get("schedules") or [] if s.get("cron")]
    if len(crons) != 1:
        raise ScheduleError(f"deployment {name!r} in {path} needs exactly one cron schedule, "
                            f"has {len(crons)}")
    params = deployment.get("parameters") or {}
    try:
        config = DigestConfig.model_validate(params.get("config") or {})
    except ValueError as exc:
        raise ScheduleError(f"deployment {name!r} in {path}: bad config parameters: {exc}"
                            ) from None
    return DeploymentSpec(name=name, cron=crons[0], config=config)


def require_server() -> str:
    """The configured Prefect API URL (environment, .env or the active profile, as Prefect
    reads it). Without one Prefect would serve against a temporary in-process API that runs no
    scheduler, so the schedule would never fire: ScheduleError instead."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url or not url.strip():
        raise ScheduleError(NO_SERVER)
    return url


def serve_digest(config: DigestConfig, name: str, cron: str) -> None:
    """Register `name` (cron, `config` as its default parameters) and run its flow runs here
    until interrupted; one run at a time, as a work pool's concurrency limit of 1 would."""
    from flows.digest import digest

    _resolve_annotations(digest.fn)
    digest.serve(name=name, cron=cron, limit=1,
                 parameters={"config": config.model_dump(mode="json")})


def _resolve_annotations(fn: Any) -> None:
    """Turn the string annotations of `fn` (`from __future__ import annotations`) into the
    types they name, in place.

    `flow.serve` runs each flow run in a spawned process from a cloudpickled copy of the flow.
    cloudpickle copies the flow's function by value (its module attribute is the Flow, not the
    function), keeping only the globals its code uses; the string "DigestConfig" then names
    nothing there, and Prefect's parameter validation fails every run ("`DigestModel` is not
    fully defined"). Resolved here, the annotations travel as classes (pickled by reference).
    """
    import typing

    fn.__annotations__ = typing.get_type_hints(fn)

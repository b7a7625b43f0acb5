"""What a digest run leaves for people to look at: the HTML report and Prefect artifacts.

Prefect users look for a run's outcome in the UI, not in runs/<run_id>.json: each run
publishes a markdown summary (counts, rejects by reason, docs/s, models), tables of rejects
by reason and of per-step timings, and, when a report was written, a link to it. All of it
is built from the manifest the run has just written, so the UI and the file cannot disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NO_CACHE

from flows.config import DigestConfig

# Artifact keys: lowercase letters, digits and dashes (Prefect's rule); the same key on every
# run makes the UI show them as versions of one artifact.
SUMMARY_KEY = "digest-summary"
REJECTS_KEY = "digest-rejects"
TIMINGS_KEY = "digest-timings"
REPORT_KEY = "digest-report"


def _cell(value: Any) -> str:
    """A markdown table cell: no pipes or line breaks from the data."""
    return " ".join(str(value).split()).replace("|", "\\|")


def _code(value: Any) -> str:
    return f"`{_cell(value).replace('`', '')}`"


def rejects_table(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"reason": k, "rejects": v} for k, v in manifest["rejects_by_reason"].items()]


def timings_table(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"step": k, "seconds": v} for k, v in manifest["timings_s"].items()]


def summary_markdown(manifest: dict[str, Any], manifest_path: Path,
                     report_path: Path | None) -> str:
    """The run at a glance, from its manifest."""
    c = manifest["counts"]
    docs_per_s = manifest.get("docs_per_s")
    lines = [
        f"# textdigest run {_code(manifest['run_id'])}",
        "",
        f"**Status:** {_cell(manifest['status'])}"
        + (f" ({_cell(manifest['error'])})" if manifest.get("error") else ""),
        "",
        "| documents read | written | rejected | skipped (already in output) | docs/s |",
        "|---:|---:|---:|---:|---:|",
        f"| {c['read']} | {c['written']} | {c['rejected']} | {c['skipped_existing']} "
        f"| {'–' if docs_per_s is None else f'{docs_per_s:.2f}'} |",
        "",
        "## Rejects by reason",
        "",
    ]
    reasons = manifest["rejects_by_reason"]
    if reasons:
        lines += ["| reason | rejects |", "|---|---:|"]
        lines += [f"| {_cell(k)} | {v} |" for k, v in reasons.items()]
    else:
        lines.append("No rejects.")
    models = [(role, m) for role, m in (manifest.get("models") or {}).items()
              if isinstance(m, dict)]
    if models:
        lines += ["", "## Models", "", "| role | name | revision |", "|---|---|---|"]
        lines += [f"| {_cell(role)} | {_code(m.get('name'))} | {_code(m.get('revision'))} |"
                  for role, m in models]
    lines += ["", f"- Output: {_code(manifest['config']['output']['path'])}",
              f"- Manifest: {_code(manifest_path)}"]
    if report_path is not None:
        lines.append(f"- Report: {_code(report_path)}")
    return "\n".join(lines) + "\n"


@task(name="report", cache_policy=NO_CACHE)
def report_task(output: Path) -> Path:
    """Render OUTPUT/report.html (a task, so the UI shows its time and any failure)."""
    from tasks.outputs.report import write_report

    return write_report(output)


def publish_run(config: DigestConfig, manifest: dict[str, Any],
                manifest_path: Path) -> Path | None:
    """Write the report if asked, then publish the artifacts; returns the report's path.

    Called at the end of every run, failed checks included (their artifacts say why). A
    report that cannot be written fails the run: it was asked for. Artifacts that cannot be
    published only log a warning: the dataset is written and the manifest holds it all.
    """
    logger = get_run_logger()
    report_path = report_task(config.output.path) if config.output.report else None
    run_id = manifest["run_id"]
    try:
        create_markdown_artifact(
            key=SUMMARY_KEY, markdown=summary_markdown(manifest, manifest_path, report_path),
            description=f"textdigest run {run_id}: counts, rejects, throughput, models")
        create_table_artifact(key=REJECTS_KEY, table=rejects_table(manifest),
                              description=f"Rejects by reason, run {run_id}")
        create_table_artifact(key=TIMINGS_KEY, table=timings_table(manifest),
                              description=f"Seconds per step, run {run_id} (steps summed "
                                          "over batches, which overlap)")
        if report_path is not None:
            create_link_artifact(key=REPORT_KEY, link=Path(report_path).resolve().as_uri(),
                                 link_text=Path(report_path).name,
                                 description=f"HTML report of {config.output.path}, run {run_id}")
    except Exception as exc:  # noqa: BLE001 - the UI view is optional, the data is written
        logger.warning("could not publish the run's artifacts: %s: %s",
                       type(exc).__name__, exc)
    return report_path
